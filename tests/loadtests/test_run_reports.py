"""A run as files for CI and people: `--report` (one self-contained HTML file), `--junit` (one
testcase per verdict rule, valid against the JUnit schema Jenkins and GitLab read) and
`--summary-md` (against the baseline), written whatever the verdict; the run page's download
and the API's report endpoints, behind the run's view permission."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.test import Client
from django.utils import timezone
from lxml import etree

from loadtests import lifecycle, runreports, services
from loadtests.models import LoadTestDefinition, LoadTestRun, RunStatus
from tests.loadtests.test_api import grant, token_for
from tests.loadtests.test_runs import run_cli

pytestmark = pytest.mark.django_db

SCHEMA = Path(__file__).parent / "schemas" / "junit.xsd"
HOSTILE = '</script><script>alert("pwned")</script><!--'


def junit_schema() -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(SCHEMA)))


def valid_junit(text: str) -> etree._Element:
    document = etree.fromstring(text.encode("utf-8"))
    schema = junit_schema()
    assert schema.validate(document), schema.error_log
    return document


class Scripts(HTMLParser):
    """The page's <script> elements as the browser would split them: (attributes, text)."""

    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[tuple[dict[str, str | None], str]] = []
        self._open: dict[str, str | None] | None = None
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "script":
            self._open = dict(attrs)
            self.scripts.append((self._open, ""))
        for name, value in attrs:
            if name in ("src", "href") and value:
                self.links.append(value)

    def handle_data(self, data: str) -> None:
        if self._open is not None:
            attrs, text = self.scripts[-1]
            self.scripts[-1] = (attrs, text + data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._open = None


def scripts_of(html: str) -> Scripts:
    parser = Scripts()
    parser.feed(html)
    return parser


def test_url_writes_all_three_files_when_a_threshold_fails_and_still_exits_1(
    target_url: str, tmp_path: Path
) -> None:
    report, junit, summary = tmp_path / "run.html", tmp_path / "results.xml", tmp_path / "s.md"
    code, out, err = run_cli(
        "url", f"{target_url}/ok", "--rate", "40", "--duration", "1",
        "--threshold", "p95<0.001", "--threshold", "errors<1%",
        "--report", str(report), "--junit", str(junit), "--summary-md", str(summary),
    )  # fmt: skip
    assert code == 1, err
    run = LoadTestRun.objects.get()
    assert run.status == RunStatus.FAILED

    html = report.read_text()
    page = scripts_of(html)
    # Self-contained: the data, Chart.js and the drawing script inline, nothing fetched.
    assert [attrs.get("id") for attrs, _ in page.scripts] == ["report-data", None, None]
    assert not [link for link in page.links if not link.startswith("#")]
    static = Path(settings.BASE_DIR) / "static"
    assert page.scripts[1][1] == (static / "vendor/chartjs/chart.umd.min.js").read_text()
    assert page.scripts[2][1] == (static / "loadtests/report.js").read_text()
    data = json.loads(page.scripts[0][1])
    assert data["timeline"]["x"] and data["distribution"]
    for section in ('id="verdict"', 'id="percentiles"', 'id="steps"', 'id="errors"'):
        assert section in html
    assert 'data-rule="p95_ms"' in html and "Threshold not met" in html

    cases = valid_junit(junit.read_text()).findall(".//testcase")
    by_rule = {case.get("name").split(":")[0]: case for case in cases}
    assert set(by_rule) == {"any_success", "p95_ms", "error_rate_pct"}
    failure = by_rule["p95_ms"].find("failure")
    assert failure is not None and by_rule["error_rate_pct"].find("failure") is None
    message = failure.get("message")
    assert "p95 latency (ms) is" in message and "above 0.001" in message
    assert "(rule p95_ms)" in message

    markdown = summary.read_text()
    assert markdown.startswith("### ❌ Load test ") and f"failed (run #{run.pk})" in markdown
    assert "| p95 (ms) |" in markdown and "| throughput (req/s) |" in markdown
    assert "No baseline to compare with" in markdown
    assert "wrote" in err


def test_a_local_run_summary_names_the_baseline_and_its_figures(
    definition: LoadTestDefinition, tmp_path: Path
) -> None:
    baseline = lifecycle.execute(services.create_run(definition).pk)
    assert baseline.status == RunStatus.PASSED
    summary, junit = tmp_path / "summary.md", tmp_path / "junit.xml"
    code, _, err = run_cli(
        "run", "smoke", "--local", "--summary-md", str(summary), "--junit", str(junit)
    )
    assert code == 0, err
    markdown = summary.read_text()
    assert f"| | this run | baseline (run #{baseline.pk}) | change |" in markdown
    for row in ("p50 (ms)", "p95 (ms)", "p99 (ms)", "throughput (req/s)", "errors"):
        assert f"| {row} |" in markdown
    assert "**Against the baseline:**" in markdown
    suite = valid_junit(junit.read_text()).find("testsuite")
    assert suite.get("failures") == "0" and suite.get("errors") == "0"
    assert int(suite.get("tests")) == len(LoadTestRun.objects.latest("id").threshold_results)


def hostile_run(definition: LoadTestDefinition) -> LoadTestRun:
    """A failed run whose name, step names and error sample came from an attacker."""
    now = timezone.now()
    run = services.create_run(definition)
    LoadTestRun.objects.filter(pk=run.pk).update(
        name=f"smoke {HOSTILE}",
        status=RunStatus.FAILED,
        started_at=now,
        finished_at=now,
        duration_s=1.0,
        requests=10,
        errors=10,
        error_rate_pct=100.0,
        status_reason=f"Threshold not met {HOSTILE}",
        errors_by_class={f"http_500{HOSTILE}": {"count": 10, "sample": f"body {HOSTILE}\x07"}},
        steps_summary={f"step {HOSTILE}": {"requests": 10, "errors": 10, "p95_ms": 1.0}},
        threshold_results=[
            {
                "name": "error_rate_pct",
                "label": "error rate (%)",
                "limit": 1,
                "actual": 100,
                "kind": "max",
                "passed": False,
                "implicit": False,
            },
        ],  # fmt: skip
    )
    return LoadTestRun.objects.select_related("definition").get(pk=run.pk)


def test_a_script_end_tag_in_a_name_step_or_error_sample_cannot_break_out(
    definition: LoadTestDefinition,
) -> None:
    run = hostile_run(definition)
    html = runreports.html_report(run)
    page = scripts_of(html)
    assert len(page.scripts) == 3  # nothing the attacker wrote became a script
    assert "pwned" not in "".join(text for _, text in page.scripts)
    assert "&lt;/script&gt;&lt;script&gt;alert(&quot;pwned&quot;)" in html

    junit = runreports.junit_xml(run)
    failure = valid_junit(junit).find(".//failure")
    assert failure is not None and "error rate (%) is 100, above 1" in failure.get("message")

    markdown = runreports.summary_markdown(run)
    # Every angle bracket the attacker wrote is escaped: only the summary's own tags remain.
    tags = set(re.findall(r"(?<!\\)<[^>]*>", markdown))
    assert tags == {"<details>", "<summary>", "</summary>", "</details>"}
    assert r"\</script\>\<script\>alert" in markdown


def test_a_run_that_did_not_complete_is_one_testcase_with_an_error(
    definition: LoadTestDefinition,
) -> None:
    run = services.create_run(definition)
    LoadTestRun.objects.filter(pk=run.pk).update(
        status=RunStatus.ERROR, status_reason="no worker took it", finished_at=timezone.now()
    )
    run.refresh_from_db()
    suite = valid_junit(runreports.junit_xml(run)).find("testsuite")
    assert (suite.get("tests"), suite.get("errors"), suite.get("failures")) == ("1", "1", "0")
    error = suite.find("testcase/error")
    assert "ended as error" in error.get("message") and "no worker took it" in error.get("message")


@pytest.mark.parametrize(
    ("flag", "where", "message"),
    [
        ("--report", "missing/run.html", "the directory 'TMP/missing' does not exist"),
        ("--junit", "", "that is a directory; give a file name"),
        # A name no file system takes: refused as root too, unlike a read-only directory.
        ("--summary-md", "s" * 300 + ".md", "cannot write it (File name too long)"),
    ],
)
def test_a_bad_path_exits_2_naming_the_flag_before_the_run_starts(
    target_url: str, tmp_path: Path, flag: str, where: str, message: str
) -> None:
    path = tmp_path / where if where else tmp_path
    code, _, err = run_cli(
        "url", f"{target_url}/ok", "--rate", "10", "--duration", "1", flag, str(path)
    )
    assert code == 2
    assert err.startswith(f"{flag} '{path}': ")
    assert message.replace("TMP", str(tmp_path)) in err
    assert not LoadTestRun.objects.exists()


def test_run_refuses_a_report_of_a_run_it_does_not_wait_for(
    definition: LoadTestDefinition, tmp_path: Path
) -> None:
    code, _, err = run_cli("run", "smoke", "--junit", str(tmp_path / "j.xml"))
    assert code == 2
    assert "--junit needs --wait or --local" in err
    assert not LoadTestRun.objects.exists()


def test_the_run_page_offers_the_report_to_whoever_may_see_the_run(
    definition: LoadTestDefinition, admin_client: Client, no_permission_user: Any
) -> None:
    run = hostile_run(definition)
    url = f"/runs/{run.pk}/report.html"
    assert url in admin_client.get(f"/runs/{run.pk}/").content.decode()
    response = admin_client.get(url)
    assert response.status_code == 200
    assert response["Content-Disposition"] == f'attachment; filename="run-{run.pk}-report.html"'
    assert len(scripts_of(response.content.decode()).scripts) == 3
    refused = Client()
    refused.force_login(no_permission_user)
    assert refused.get(url).status_code == 403
    anonymous = Client().get(url)
    assert anonymous.status_code == 302 and "/accounts/login/" in anonymous["Location"]


def test_the_api_hands_out_each_report_to_a_token_that_may_see_runs(
    definition: LoadTestDefinition, django_user_model: Any
) -> None:
    run = hostile_run(definition)
    user = django_user_model.objects.create_user("ci", "ci@example.com", "pw-ci-12345")
    token = token_for(user)
    auth = {"HTTP_AUTHORIZATION": f"Bearer {token}"}
    api = Client()
    assert api.get(f"/api/v1/runs/{run.pk}/junit.xml", **auth).status_code == 403
    grant(user, "view_loadtestrun")
    junit = api.get(f"/api/v1/runs/{run.pk}/junit.xml", **auth)
    assert junit.status_code == 200 and junit["Content-Type"].startswith("application/xml")
    valid_junit(junit.content.decode())
    markdown = api.get(f"/api/v1/runs/{run.pk}/summary.md", **auth).content.decode()
    assert re.search(r"^### ❌ Load test smoke ", markdown)
    html = api.get(f"/api/v1/runs/{run.pk}/report.html", **auth).content.decode()
    assert 'id="verdict"' in html
    assert api.get("/api/v1/runs/999999/summary.md", **auth).status_code == 404


def test_the_report_shows_memory_verdicts_and_top_cpu_functions_to_who_may_see_profiles(
    definition: LoadTestDefinition, settings: Any, tmp_path: Path, django_user_model: Any
) -> None:
    from profiling.models import ProfileTarget
    from tests.profiling.pages.conftest import cpu_capture, memory_capture

    settings.PROFILING_ARTEFACT_DIR = tmp_path / "profiles"
    run = hostile_run(definition)
    target = ProfileTarget.objects.create(name="emissions target", pid=4242)
    cpu_capture(target=target, run=run)
    memory_capture(target=target, run=run)

    html = runreports.html_report(run)  # the CLI: every panel
    assert 'id="panel-profiles"' in html
    assert "Top CPU functions of emissions target" in html and "work_hot" in html
    assert "Leak" in html or "leak" in html
    assert len(scripts_of(html).scripts) == 3  # the panel adds no script

    runs_only = django_user_model.objects.create_user("runs-only", "r@example.com", "pw-r-12345")
    grant(runs_only, "view_loadtestrun")
    runs_only = django_user_model.objects.get(pk=runs_only.pk)  # a fresh permission cache
    assert 'id="panel-profiles"' not in runreports.html_report(run, user=runs_only)


@pytest.mark.django_db(transaction=True)
def test_the_cli_client_fetches_each_report_from_the_server(
    live_server: Any, definition: LoadTestDefinition, django_user_model: Any
) -> None:
    from loadtests.client import ApiClient

    run = hostile_run(definition)
    user = django_user_model.objects.create_user("ci", "ci@example.com", "pw-ci-12345")
    grant(user, "view_loadtestrun")
    client = ApiClient(live_server.url, token_for(user))
    valid_junit(client.get_report(run.pk, "junit.xml"))
    assert f"(run #{run.pk})" in client.get_report(run.pk, "summary.md")
    assert len(scripts_of(client.get_report(run.pk, "report.html")).scripts) == 3


def agent_step(p95_ms: float, queries: float) -> dict[str, Any]:
    return {
        "requests": 100, "errors": 0, "p95_ms": p95_ms, "mean_ms": p95_ms / 2,
        "server_p50_ms": p95_ms / 3, "server_p95_ms": p95_ms / 2, "server_ms_mean": p95_ms / 3,
        "db_ms_mean": 1.0, "queries_per_request": queries, "queries_max": int(queries),
        "cache_calls_per_request": 0.0, "n_plus_one": [], "top_sql": [],
    }  # fmt: skip


def finished(definition: LoadTestDefinition, p95_ms: float, queries: float) -> LoadTestRun:
    now = timezone.now()
    run = services.create_run(definition)
    LoadTestRun.objects.filter(pk=run.pk).update(
        status=RunStatus.PASSED, started_at=now, finished_at=now, duration_s=10.0,
        requests=100, errors=0, error_rate_pct=0.0, throughput_rps=10.0,
        latency_p50_ms=p95_ms / 2, latency_p95_ms=p95_ms, latency_p99_ms=p95_ms * 2,
        steps_summary={"ok": agent_step(p95_ms, queries)},
    )  # fmt: skip
    return LoadTestRun.objects.select_related("definition").get(pk=run.pk)


def test_the_summary_names_the_regressions_and_the_report_shows_the_agent_figures(
    definition: LoadTestDefinition,
) -> None:
    baseline = finished(definition, p95_ms=10.0, queries=1.0)
    run = finished(definition, p95_ms=30.0, queries=3.0)

    markdown = runreports.summary_markdown(run)
    assert "| p95 (ms) | 30.00 | 10.00 | +200.0% |" in markdown
    assert f"baseline (run #{baseline.pk})" in markdown
    assert "**Against the baseline:** regression." in markdown
    assert "- p95 worse by 20.0 ms" in markdown
    assert r"- step ok: \+2 queries per request" in markdown

    html = runreports.html_report(run)
    assert 'id="agent-steps"' in html and 'id="regressions"' in html
    assert "+2 queries per request" in html
