"""The alert rules and the Grafana dashboard under deploy/ name only what /metrics exposes."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[2]
ALERT_RULES = ROOT / "deploy" / "prometheus" / "alerts.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "offgridperf.json"
# Series that come from Prometheus itself or the blackbox exporter, not from /metrics.
FROM_PROMETHEUS = {"up", "probe_success"}

PROMQL_WORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or",
    "unless", "offset", "inf", "nan",
}  # fmt: skip
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_MATCHERS = re.compile(r"\{[^}]*\}")
_RANGE = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_NAME = re.compile(r"(?<![\w:])[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL_VALUES = re.compile(r"label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*,\s*\w+\s*\)")


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads (functions, labels and keywords left out)."""
    text = _STRING.sub('""', expr)
    text = _MATCHERS.sub("", text)
    text = _RANGE.sub("", text)
    text = _GROUPING.sub("", text)
    text = re.sub(r"\$\w+|(?<![\w:])\d+(\.\d+)?[a-z]*", " ", text)
    names = set()
    for match in _NAME.finditer(text):
        end = match.end()
        if text[end:].lstrip().startswith("("):
            continue  # a function
        if match.group() not in PROMQL_WORDS:
            names.add(match.group())
    return names


def exposed(client: Any) -> set[str]:
    """The series names /metrics exposes (a counter's with _total), samples or not yet."""
    text = client.get("/metrics").content.decode()
    return {
        family.name + ("_total" if family.type == "counter" else "")
        for family in text_string_to_metric_families(text)
    }


def dashboard_queries() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    for variable in dashboard["templating"]["list"]:
        query = variable.get("query")
        if isinstance(query, dict):
            exprs.append(query["query"])
    return exprs


def test_the_name_parser_reads_metrics_not_functions_or_labels() -> None:
    expr = 'sum by (strategy) (rate(a_total{result="hit|x"}[5m])) / on (x) b > 0 and c'
    assert metric_names(expr) == {"a_total", "b", "c"}


def test_every_dashboard_query_names_only_metrics_the_product_exposes(client: Any, db: Any) -> None:
    available = exposed(client)
    named: set[str] = set()
    for expr in dashboard_queries():
        found = _LABEL_VALUES.fullmatch(expr)
        names = {found.group(1)} if found else metric_names(expr)
        assert names, f"no metric in {expr!r}"
        missing = names - available
        assert not missing, f"{expr!r} names {sorted(missing)}, which /metrics does not expose"
        named |= names
    # Every family the product exposes is on the dashboard.
    families = {name.removesuffix("_total") for name in available}
    assert families <= {name.removesuffix("_total") for name in named}


def test_the_alert_rules_name_only_exposed_metrics(client: Any, db: Any) -> None:
    available = exposed(client) | FROM_PROMETHEUS
    rules = ALERT_RULES.read_text()
    exprs = re.findall(r"^\s*expr:\s*(.+)$", rules, re.MULTILINE)
    assert len(exprs) >= 5
    for expr in exprs:
        assert metric_names(expr) <= available, expr


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.fail("promtool is not installed: `make test` installs Debian's package prometheus")
    return found


def test_promtool_checks_and_lints_the_alert_rules() -> None:
    done = subprocess.run(
        [promtool(), "check", "rules", "--lint=all", "--lint-fatal", str(ALERT_RULES)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 6 rules found" in done.stdout


@pytest.mark.parametrize(
    "alert",
    [
        "OffgridperfNoLoadgenWorker",
        "OffgridperfScheduledRunFailed",
        "OffgridperfRegressionOpen",
        "OffgridperfCacheErrors",
        "OffgridperfHealthzDown",
    ],
)
def test_the_rules_cover_what_must_page(alert: str) -> None:
    assert f"alert: {alert}\n" in ALERT_RULES.read_text()
