"""A run as files for readers outside the dashboard: one self-contained HTML report (a manager
opens it from a ticket, offline), JUnit XML (a CI system's test results: one testcase per
verdict rule) and a Markdown summary (a pull-request comment, against the baseline).

The CLI writes them (`--report`, `--junit`, `--summary-md`), the run page and the API hand
them out; all three are made here, from the stored run, so that they always agree.

Everything a run carries may be attacker-controlled text (its name, step names, error
samples from the target's answers): the HTML goes through Django's autoescaping and
`json_script`, the XML through ElementTree, and the Markdown through `markdown_text`.
"""

from __future__ import annotations

import functools
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from django.conf import settings
from django.template.loader import render_to_string
from django.utils import timezone

from loadtests import agentpage, compare, pages, reports, runjson, secrets
from loadtests.models import LoadTestRun, RunStatus
from offgridperf.panels import report_panels

CHARTJS = Path("vendor/chartjs/chart.umd.min.js")
REPORT_JS = Path("loadtests/report.js")
# The formats and the file names the run page's download and the API give them.
FORMATS = {
    "html": ("text/html; charset=utf-8", "run-{id}-report.html"),
    "junit": ("application/xml; charset=utf-8", "run-{id}-junit.xml"),
    "markdown": ("text/markdown; charset=utf-8", "run-{id}-summary.md"),
}


class ReportScriptUnsafe(Exception):
    """A script to inline holds `</script`, which would end its element early."""


@functools.cache
def inline_script(relative: Path) -> str:
    """A file under static/ as the text of an inline <script>, read once per process."""
    text = (Path(settings.BASE_DIR) / "static" / relative).read_text(encoding="utf-8")
    if "</script" in text.lower():
        raise ReportScriptUnsafe(f"static/{relative} holds '</script' and cannot be inlined")
    return text


# -- the baseline ------------------------------------------------------------------------------


def baseline_comparison(run: LoadTestRun) -> dict[str, Any] | None:
    """The run against its definition's baseline, as the compare page judges it (None for an
    ad hoc run, or when there is no baseline): the deltas, the verdict, and the regressions
    named (the verdict's reasons, and per step what the agent saw grow)."""
    if run.definition is None:
        return None
    baseline = pages.baseline_of(run.definition, before=run, full=True).run
    if baseline is None:
        return None
    values_a, values_b = pages.summary_values(baseline), pages.summary_values(run)
    history = pages.noise_history(baseline, exclude=[run.pk])
    verdict = compare.verdict(values_a, values_b, compare.noise(history))
    causes = agentpage.causes_by_step(
        agentpage.step_deltas(baseline.steps_summary, run.steps_summary)
    )
    named = list(verdict.reasons) if verdict.outcome == "regression" else []
    named += [f"step {step}: {cause}" for step, cause in causes.items()]
    return {
        "baseline": baseline,
        "deltas": compare.deltas(values_a, values_b),
        "verdict": verdict,
        "confidence": compare.confidence_text(len([v for v in history if v is not None])),
        "regressions": named,
    }


# -- HTML --------------------------------------------------------------------------------------


def chart_data(run: LoadTestRun) -> dict[str, Any]:
    """The report's charts: percentiles, throughput and errors per second, and the latency
    distribution, in the run page's shapes."""
    timeline = pages.timeline(pages.interval_columns(run))
    return {
        "timeline": {"x": timeline["x"], "series": timeline["series"]},
        "distribution": pages.histogram_charts(run.latency_histogram)["distribution"],
    }


def report_context(
    run: LoadTestRun, *, user: Any = None, base_url: str | None = None
) -> dict[str, Any]:
    """What the HTML report shows; `user` None (the CLI) sees every app's panel."""
    context = pages.summary_context(run)
    context.update(
        {
            "url": runjson.run_url(run, base_url),
            "generated_at": timezone.now(),
            "comparison": baseline_comparison(run),
            "thresholds": run.threshold_results or [],
            "panels": report_panels(run, user),
            "charts": chart_data(run),
            "chartjs": inline_script(CHARTJS),
            "report_js": inline_script(REPORT_JS),
        }
    )
    return context


def html_report(run: LoadTestRun, *, user: Any = None, base_url: str | None = None) -> str:
    """The run as one HTML file with its styles, scripts and data inside: no network needed."""
    return render_to_string(
        "loadtests/report.html", report_context(run, user=user, base_url=base_url)
    )


# -- JUnit XML ---------------------------------------------------------------------------------

# XML 1.0 has no way to write these, escaped or not; an error sample may hold them.
NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
NOT_JUDGED_CASE = "run completed"


def xml_text(value: Any) -> str:
    return NOT_XML.sub("\ufffd", str(value))


def _testcase(suite: ET.Element, classname: str, name: str, time_s: float = 0.0) -> ET.Element:
    return ET.SubElement(
        suite, "testcase", classname=xml_text(classname), name=xml_text(name), time=f"{time_s:.3f}"
    )


def junit_xml(run: LoadTestRun, *, base_url: str | None = None) -> str:
    """One <testsuite> for the run, one <testcase> per verdict rule; a failed rule carries a
    <failure> whose message names the figure, the limit and the rule. A run that was not
    judged (it ended as error, cancelled, interrupted) is one testcase with an <error>."""
    results = run.threshold_results or []
    judged = bool(results) and run.status in reports.FINISHED_EXIT_CODES
    failures = sum(1 for item in results if not item["passed"]) if judged else 0
    duration = float(run.duration_s or 0.0)
    root = ET.Element("testsuites", name="offgridperf load tests", time=f"{duration:.3f}")
    suite = ET.SubElement(
        root,
        "testsuite",
        name=xml_text(f"loadtest {run.name} (run #{run.pk})"),
        tests=str(len(results) if judged else 1),
        failures=str(failures),
        errors="0" if judged else "1",
        skipped="0",
        time=f"{duration:.3f}",
        timestamp=(run.started_at or run.created_at).strftime("%Y-%m-%dT%H:%M:%S"),
    )
    for name in ("tests", "failures", "errors"):
        root.set(name, suite.get(name, "0"))
    properties = ET.SubElement(suite, "properties")
    for name, value in _properties(run, base_url):
        ET.SubElement(properties, "property", name=name, value=xml_text(value))
    classname = f"loadtest.{run.name}"
    if judged:
        for item in results:
            case = _testcase(suite, classname, f"{item['name']}: {reports.rule_text(item)}")
            if not item["passed"]:
                message = reports.failure_text(item, int(run.requests or 0))
                failure = ET.SubElement(
                    case, "failure", message=xml_text(message), type=xml_text(item["name"])
                )
                failure.text = xml_text(message)
    else:
        case = _testcase(suite, classname, NOT_JUDGED_CASE, duration)
        reason = secrets.redact_config_text(run.status_reason, run.config) or run.status
        message = f"The run ended as {run.status} and was not judged: {reason}"
        error = ET.SubElement(case, "error", message=xml_text(message), type=xml_text(run.status))
        error.text = xml_text(message)
    ET.SubElement(suite, "system-out").text = xml_text(summary_line(run, base_url))
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def _properties(run: LoadTestRun, base_url: str | None) -> list[tuple[str, Any]]:
    figures = [
        ("run.id", run.pk),
        ("run.status", run.status),
        ("run.url", runjson.run_url(run, base_url)),
        ("requests", run.requests),
        ("errors", run.errors),
        ("throughput_rps", run.throughput_rps),
        ("latency_p50_ms", run.latency_p50_ms),
        ("latency_p95_ms", run.latency_p95_ms),
        ("latency_p99_ms", run.latency_p99_ms),
    ]
    return [(name, value) for name, value in figures if value is not None]


def summary_line(run: LoadTestRun, base_url: str | None = None) -> str:
    latency = run.percentiles("latency")
    return (
        f"run #{run.pk} {run.status}: {run.requests} requests, {run.errors} errors, "
        f"{run.throughput_rps or 0:.1f} req/s, p50 {latency['p50']} ms, p95 {latency['p95']} ms, "
        f"p99 {latency['p99']} ms\n{runjson.run_url(run, base_url)}\n"
    )


# -- Markdown ----------------------------------------------------------------------------------

# Characters Markdown (GitHub's, GitLab's) gives a meaning, and raw HTML's angle brackets.
MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()<>#+!|~&])")
OUTCOME_MARK = {
    RunStatus.PASSED: "✅",
    RunStatus.FAILED: "❌",
    RunStatus.ABORTED: "❌",
}


def markdown_text(value: Any) -> str:
    """`value` as literal text in Markdown, on one line: every special character escaped."""
    return MARKDOWN_SPECIAL.sub(r"\\\1", " ".join(str(value).split()))


def _number(value: Any, digits: int = 2) -> str:
    return "–" if value is None else f"{value:,.{digits}f}"


def _errors_cell(run: LoadTestRun) -> str:
    if run.error_rate_pct is None:
        return str(run.errors or 0)
    return f"{run.errors or 0} ({run.error_rate_pct:.2f}%)"


def _change(delta: dict[str, Any]) -> str:
    if delta["no_data"]:
        return delta["no_data"]
    if delta["change_pct"] is not None:
        return f"{delta['change_pct']:+.1f}%"
    return f"{delta['change']:+g}"


def _figures_table(run: LoadTestRun, comparison: dict[str, Any] | None) -> list[str]:
    if comparison is None:
        lines = ["| | this run |", "|---|--:|"]
        rows = [
            ("p50 (ms)", _number(run.latency_p50_ms)),
            ("p95 (ms)", _number(run.latency_p95_ms)),
            ("p99 (ms)", _number(run.latency_p99_ms)),
            ("throughput (req/s)", _number(run.throughput_rps, 1)),
            ("errors", _errors_cell(run)),
        ]
        return lines + [f"| {label} | {value} |" for label, value in rows]
    baseline = comparison["baseline"]
    lines = [f"| | this run | baseline (run #{baseline.pk}) | change |", "|---|--:|--:|--:|"]
    for delta in comparison["deltas"]:
        digits = 1 if delta["key"] == "throughput_rps" else 2
        value_a = getattr(baseline, delta["key"])
        value_b = getattr(run, delta["key"])
        lines.append(
            f"| {delta['label']} | {_number(value_b, digits)} | {_number(value_a, digits)} "
            f"| {_change(delta)} |"
        )
    lines.append(f"| errors | {_errors_cell(run)} | {_errors_cell(baseline)} | |")
    return lines


def _rules_table(results: list[dict[str, Any]]) -> list[str]:
    lines = ["| rule | limit | actual | result |", "|---|--:|--:|---|"]
    for item in results:
        sign = "≥" if item.get("kind") == "min" else "≤"
        actual = "–" if item["actual"] is None else f"{item['actual']:g}"
        result = "pass" if item["passed"] else "**fail**"
        lines.append(
            f"| {markdown_text(item['label'])} (`{item['name']}`) | {sign} {item['limit']:g} "
            f"| {actual} | {result} |"
        )
    return lines


def summary_markdown(run: LoadTestRun, *, base_url: str | None = None) -> str:
    """A pull-request comment: the verdict and why, p50/p95/p99, req/s and errors against the
    baseline's, the regressions named, and the rules."""
    comparison = baseline_comparison(run)
    mark = OUTCOME_MARK.get(RunStatus(run.status), "⚠️")
    url = runjson.run_url(run, base_url)
    reason = secrets.redact_config_text(run.status_reason, run.config)
    lines = [
        f"### {mark} Load test {markdown_text(run.name)}: {run.status} (run #{run.pk})",
        "",
    ]
    if reason:
        lines += [markdown_text(reason), ""]
    lines += [*_figures_table(run, comparison), ""]
    if comparison is None:
        lines += [
            "No baseline to compare with (no chosen baseline and no earlier passing run).",
            "",
        ]
    else:
        verdict = comparison["verdict"]
        lines += [
            f"**Against the baseline:** {verdict.outcome}. "
            + markdown_text(" ".join(verdict.reasons))
            + f" {markdown_text(comparison['confidence'])}",
            "",
        ]
        if comparison["regressions"]:
            lines += ["**Regressions:**", ""]
            lines += [f"- {markdown_text(text)}" for text in comparison["regressions"]]
            lines.append("")
    if run.threshold_results:
        lines += ["<details><summary>Verdict rules</summary>", ""]
        lines += [*_rules_table(run.threshold_results), "", "</details>", ""]
    lines.append(f"[Run page]({url})")
    return "\n".join(lines) + "\n"


def render(kind: str, run: LoadTestRun, *, user: Any = None, base_url: str | None = None) -> str:
    """The report `kind` (a FORMATS key) of `run`."""
    if kind == "html":
        return html_report(run, user=user, base_url=base_url)
    if kind == "junit":
        return junit_xml(run, base_url=base_url)
    return summary_markdown(run, base_url=base_url)
