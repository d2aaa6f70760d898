"""The monitoring that ships in deploy/: Prometheus config and alert rules, their promtool unit
tests, the Grafana dashboard and its provisioning, and docs/runbook.md.

What keeps them true without a running stack: promtool (Debian's ``prometheus`` package,
``scripts/system-deps``) checks the config, the rules and every dashboard query, and runs the
rule unit tests; the metric names they use must be ones the worker exports (or the named
shadow exporter's); each alert links a runbook section whose commands parse with the real CLI.
tests/deploy/test_prometheus_live.py runs all of it against a real worker.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import require_tool

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = ROOT / "deploy/prometheus"
GRAFANA = ROOT / "deploy/grafana"
RUNBOOK = ROOT / "docs/runbook.md"

WORKER_METRICS = {
    "chuteflow_decision_latency_seconds",
    "chuteflow_decisions_total",
    "chuteflow_fallbacks_total",
    "chuteflow_records_total",
    "chuteflow_allocations_total",
    "chuteflow_dead_letters_total",
    "chuteflow_inducted_total",
    "chuteflow_recirculated_total",
    "chuteflow_recirculation_ratio",
    "chuteflow_serving_policy_info",
    "chuteflow_route_revision",
    "chuteflow_last_allocation_timestamp_seconds",
    "chuteflow_last_allocation_age_seconds",
    "chuteflow_allocation_spacing_seconds",
    "chuteflow_day_open",
    "chuteflow_consumer_lag_records",
    "chuteflow_ready",
    "chuteflow_redelivered_skipped_total",
}
"""What ``chuteflow worker --metrics-port`` exports (stream/metrics.py)."""
SHADOW_EXPORTER_METRICS = {
    "chuteflow_shadow_twin_recirculation_ratio",
    "chuteflow_shadow_twin_inducted",
}
"""Counterfactual (twin) KPIs of the served and shadow policies: the worker runs no twin, so
these come from the process that computes the shadow report (docs/runbook.md
#chuteflowshadowfarworse). Not exported by anything yet: ChuteflowShadowFarWorse waits for it."""
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")
DASHBOARD_ROWS = (
    "Decisions and latency",
    "Allocations on time",
    "Recirculation",
    "Fallbacks",
    "Dead letters",
    "Shadow",
    "Consumer lag and readiness",
)
GRAFANA_VARIABLES = {"$__rate_interval": "5m"}
"""Grafana's interval variables, replaced by a duration so promtool can parse the query."""


def _promtool(*args: str, cwd: Path = ROOT) -> str:
    promtool = require_tool("promtool")
    done = subprocess.run(
        [promtool, *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"promtool {' '.join(args)}:\n{output}"
    return output


def _alert_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def _dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((GRAFANA / "dashboards/chuteflow.json").read_text())
    return data


def _dashboard_exprs() -> list[str]:
    return [t["expr"] for p in _dashboard()["panels"] for t in p.get("targets", [])]


def _metric_names(expr: str) -> set[str]:
    names = set()
    for name in re.findall(r"\bchuteflow_[a-z0-9_]+", expr):
        for suffix in HISTOGRAM_SUFFIXES:
            base = name.removesuffix(suffix)
            if base != name and base in WORKER_METRICS:
                name = base
        names.add(name)
    return names


def _anchors(markdown: str) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to dashes."""
    anchors = set()
    for heading in re.findall(r"^#+ (.+)$", markdown, flags=re.MULTILINE):
        anchor = re.sub(r"[^a-z0-9 _-]", "", heading.strip().lower()).replace(" ", "-")
        anchors.add(anchor)
    return anchors


# --- Prometheus --------------------------------------------------------------------------


def test_prometheus_config_and_its_rules_pass_promtool_checks() -> None:
    output = _promtool("check", "config", str(PROMETHEUS / "prometheus.yml"))
    assert "alerts.yml" in output  # the config loads the rules
    _promtool("check", "rules", str(PROMETHEUS / "alerts.yml"))


def test_alert_rules_pass_their_promtool_unit_tests() -> None:
    output = _promtool("test", "rules", "alerts.test.yml", cwd=PROMETHEUS)
    assert "SUCCESS" in output


def test_every_alert_has_a_firing_and_a_quiet_unit_test() -> None:
    tests = yaml.safe_load((PROMETHEUS / "alerts.test.yml").read_text())
    assert tests["rule_files"] == ["alerts.yml"]
    firing: set[str] = set()
    quiet: set[str] = set()
    for case in tests["tests"]:
        for check in case["alert_rule_test"]:
            (firing if check.get("exp_alerts") else quiet).add(check["alertname"])
    alerts = {rule["alert"] for rule in _alert_rules()}
    assert alerts == firing, f"no firing case: {alerts - firing}; unknown: {firing - alerts}"
    assert alerts == quiet, f"no quiet case: {alerts - quiet}; unknown: {quiet - alerts}"


def test_the_issue_s_alerts_are_all_there() -> None:
    alerts = {rule["alert"] for rule in _alert_rules()}
    assert {
        "ChuteflowWorkerDown",
        "ChuteflowAllocationLate",
        "ChuteflowFallbackSurge",
        "ChuteflowDeadLetterSurge",
        "ChuteflowConsumerLag",
        "ChuteflowShadowFarWorse",
    } <= alerts


def test_every_alert_has_for_severity_annotations_and_a_runbook_section() -> None:
    anchors = _anchors(RUNBOOK.read_text())
    for rule in _alert_rules():
        name = rule["alert"]
        assert re.fullmatch(r"\d+[smh]", rule.get("for", "")), name
        assert rule["labels"]["severity"] in ("critical", "warning"), name
        annotations = rule["annotations"]
        assert annotations["summary"] and annotations["description"], name
        url = annotations["runbook_url"]
        assert url == f"docs/runbook.md#{name.lower()}", name
        assert name.lower() in anchors, f"docs/runbook.md has no section ## {name}"


def test_every_runbook_alert_section_is_a_rule() -> None:
    sections = set(re.findall(r"^## (Chuteflow\w+)$", RUNBOOK.read_text(), flags=re.MULTILINE))
    assert sections == {rule["alert"] for rule in _alert_rules()}


# --- metric names --------------------------------------------------------------------------


def test_rules_and_dashboard_use_only_metrics_that_are_exported() -> None:
    exprs = [rule["expr"] for rule in _alert_rules()] + _dashboard_exprs()
    used = set().union(*(_metric_names(expr) for expr in exprs))
    unknown = used - WORKER_METRICS - SHADOW_EXPORTER_METRICS
    assert not unknown, f"not exported by anything: {sorted(unknown)}"
    assert used & WORKER_METRICS == WORKER_METRICS - {"chuteflow_redelivered_skipped_total"}, (
        "a worker metric on neither a panel nor a rule: "
        f"{sorted(WORKER_METRICS - used - {'chuteflow_redelivered_skipped_total'})}"
    )


def test_the_worker_defines_every_worker_metric() -> None:
    """A source-level check (the live test checks the real exposition): each name, without
    ``_total`` (prometheus_client adds it), is written in stream/metrics.py, whole or as the
    part after ``chuteflow_`` of a name built there."""
    source = (ROOT / "stream/metrics.py").read_text()
    for name in sorted(WORKER_METRICS):
        base = name.removesuffix("_total")
        short = base.removeprefix("chuteflow_")
        assert f'"{base}"' in source or f'"{short}"' in source, f"{name} not in stream/metrics.py"


# --- Grafana -----------------------------------------------------------------------------


def test_dashboard_has_one_row_per_concern_and_every_panel_queries() -> None:
    dashboard = _dashboard()
    panels = dashboard["panels"]
    rows = [p["title"] for p in panels if p["type"] == "row"]
    assert tuple(rows) == DASHBOARD_ROWS
    assert panels[0]["type"] == "row"
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))
    for panel in panels:
        if panel["type"] == "row":
            continue
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["expr"].strip(), panel["title"]
            assert target["datasource"]["uid"] == "${datasource}", panel["title"]
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["query"] == "prometheus"
    assert "site" in variables


def test_every_dashboard_query_parses_with_promtool(tmp_path: Path) -> None:
    rules = []
    for i, expr in enumerate(_dashboard_exprs()):
        for variable, value in GRAFANA_VARIABLES.items():
            expr = expr.replace(variable, value)
        assert "$" not in expr.replace('"$site"', "").replace('"$site|unknown"', ""), expr
        rules.append({"record": f"dashboard:query{i}", "expr": expr})
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    output = _promtool("check", "rules", str(path))
    assert f"SUCCESS: {len(rules)} rules found" in output


def test_grafana_provisioning_points_at_compose_prometheus_and_the_dashboards() -> None:
    datasources = yaml.safe_load((GRAFANA / "provisioning/datasources/prometheus.yml").read_text())[
        "datasources"
    ]
    (prometheus,) = datasources
    assert prometheus["type"] == "prometheus"
    assert prometheus["url"] == "http://prometheus:9090"
    variables = {v["name"]: v for v in _dashboard()["templating"]["list"]}
    assert variables["datasource"]["current"]["value"] == prometheus["uid"]
    (provider,) = yaml.safe_load((GRAFANA / "provisioning/dashboards/chuteflow.yml").read_text())[
        "providers"
    ]
    assert provider["type"] == "file"
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"


# --- runbook -----------------------------------------------------------------------------


def _runbook_commands() -> list[str]:
    text = RUNBOOK.read_text()
    commands = re.findall(r"`(chuteflow [^`]+)`", text)
    for block in re.findall(r"```sh\n(.*?)```", text, flags=re.DOTALL):
        commands += [line for line in block.splitlines() if line.startswith("chuteflow ")]
    return commands


def test_runbook_commands_parse_with_the_cli() -> None:
    """Every ``chuteflow ...`` command in the runbook is a verb with flags the CLI accepts
    (parsed, not run: they need a live broker)."""
    from chuteflow.cli import build_parser

    commands = _runbook_commands()
    verbs = {" ".join(shlex.split(c)[1:3]) for c in commands}
    assert {"policy rollback", "policy routes", "shadow report", "policy history"} <= verbs
    parser = build_parser()
    for command in commands:
        argv = shlex.split(command)[1:]
        try:
            parser.parse_args(argv)
        except SystemExit as error:
            pytest.fail(f"runbook command does not parse ({error.code}): {command}")
