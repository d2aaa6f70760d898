"""The operations page in a real browser, against a real broker, worker and replayed day.

A worker serves a fresh small site (proportional); ``chuteflow ops serve`` runs as its own
process on a free port; Debian's headless Chromium, driven by Playwright, keeps the page open
while the day is replayed at 2 s an interval (``GATE_SPEED``) and, one interval in, an operator
opens a canary of a bad candidate (it prefers no chutes at all) with ``chuteflow policy
canary``, whose gate rolls it back. The page must show the gate's checks as they come and the
rollback in the route history; then the operator opens a second canary and aborts it from the
page itself (token, typed confirmation, the ``policy abort`` verb, the worker's answer). A
screenshot of the page after the rollback is kept as a test artifact
(``out/test-artifacts/ops-rollback.png``).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from contracts.control import PolicyRef
from contracts.events import AllocationDecided
from floor.scenario import load_scenario
from replay.workers import chuteflow_command, start_worker, stop_worker
from stream.routing import new_route, publish_routes, read_routes
from tests.conftest import require_tool
from tests.stream.test_live_ops import (
    GATE_SPEED,
    _register,
    _replay,
    _site_scenario,
    _starving_policy,
)

pytestmark = pytest.mark.kafka
REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "out" / "test-artifacts"
TOKEN = "ops-test-token"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_http(url: str, process: subprocess.Popen[bytes], log: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"{url}: process exited {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=1.0) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    pytest.fail(f"{url} did not answer within {timeout_s:g} s:\n{log.read_text()[-3000:]}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(10)


@pytest.fixture()
def live(kafka_topics: str, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A worker on a fresh site and the ops page following the broker."""
    scenario_path = _site_scenario(tmp_path)
    metrics_port = _free_port()
    worker = start_worker(
        kafka_topics,
        [str(scenario_path)],
        tmp_path / "worker",
        app_id=f"ops-{uuid.uuid4().hex[:8]}",
        extra=["--inference-deadline-ms", "2000", "--metrics-port", str(metrics_port)],
    )
    port = _free_port()
    log = tmp_path / "ops.log"
    with log.open("wb") as out:
        page = subprocess.Popen(
            [chuteflow_command(), "ops", "serve", "--port", str(port), "--bootstrap",
             kafka_topics, "--worker-metrics", f"http://127.0.0.1:{metrics_port}",
             "--token", TOKEN, "--scenario", str(scenario_path)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        _wait_http(f"http://127.0.0.1:{port}/healthz", page, log, 60.0)
        yield {
            "bootstrap": kafka_topics,
            "scenario_path": scenario_path,
            "scenario": load_scenario(scenario_path),
            "url": f"http://127.0.0.1:{port}/",
            "log": log,
            "tmp": tmp_path,
        }
    finally:
        _stop(page)
        stop_worker(worker)


def _canary(live: dict[str, Any], policy: str, *extra: str) -> subprocess.Popen[bytes]:
    """``chuteflow policy canary`` as the operator runs it (its own process)."""
    site = live["scenario"].site_id
    log = (live["tmp"] / f"canary-{uuid.uuid4().hex[:6]}.log").open("wb")
    command = [chuteflow_command(), "policy", "canary", policy, "--sites", site,
               "--scenario", str(live["scenario_path"]), "--bootstrap", live["bootstrap"],
               *extra]  # fmt: skip
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    log.close()
    return process


def _wait_route(bootstrap: str, site: str, action: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        route = read_routes(bootstrap).get(site)
        if route is not None and route.action == action:
            return
        time.sleep(0.2)
    pytest.fail(f"site {site}: no {action} route within {timeout_s:g} s")


def test_the_page_shows_a_canary_its_gate_checks_and_its_rollback_live(
    live: dict[str, Any], record_property: Any
) -> None:
    from playwright.sync_api import sync_playwright

    chromium = require_tool("chromium")
    bootstrap, scenario = live["bootstrap"], live["scenario"]
    site = scenario.site_id
    levels = scenario.max_chutes_per_destination + 1
    bad = _register(bootstrap, f"starve-{levels}", _starving_policy(levels))
    current = read_routes(bootstrap).get(site)  # the worker routes its --policy itself
    base = new_route(current, site, serving=PolicyRef(name="proportional"), action="route")
    assert publish_routes(bootstrap, [base], wait_applied=True)[site].startswith("applied")
    gate = ["--window", "6", "--failure-limit", "2", "--min-inductions", "50"]
    watchers: list[subprocess.Popen[bytes]] = []

    seen: list[tuple[int, int, int]] = []  # (interval, check rows, rollback rows) on the page

    def operate(allocation: AllocationDecided) -> None:
        if allocation.interval_index == 1:  # mid-day: the candidate serves from interval 2
            watchers.append(_canary(live, f"{bad.name}@{bad.sha256}", *gate))
            _wait_route(bootstrap, site, "canary", 60.0)
        # what the open page shows while the day runs (the browser polls on its own)
        checks = card.locator("div.canary tr.check").count()
        rollbacks = card.locator('tr.route-row[data-action="rollback"]').count()
        seen.append((allocation.interval_index, checks, rollbacks))

    started = time.monotonic()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(live["url"])
            card = page.locator(f'article[data-site="{site}"]')
            card.wait_for(timeout=20_000)  # the base route is on the page
            assert "proportional" in card.locator("table.route").inner_text()

            result = _replay(bootstrap, scenario, operate, speed=GATE_SPEED)
            (watcher,) = watchers
            code = watcher.wait(120)
            assert code == 1, f"the gate did not fail the bad candidate (exit {code})"
            print(f"\n(interval, check rows, rollback rows) on the page as it ran: {seen}")
            # live: the checks showed while the day was still being replayed
            assert any(checks for k, checks, _ in seen if k < scenario.n_intervals - 1), seen

            # the rollback reaches the page: route history row and the canary's end
            rollback = card.locator('tr.route-row[data-action="rollback"]')
            rollback.wait_for(timeout=15_000)
            assert "canary gate failed" in rollback.inner_text()
            episode = card.locator('div.canary[data-state="rollback"]')
            episode.wait_for(timeout=10_000)
            assert bad.name in episode.inner_text()
            # the gate's own checks (chuteflow.canary.v1), failing ones marked
            page.wait_for_function(
                "sel => document.querySelectorAll(sel).length >= 2",
                arg=f'article[data-site="{site}"] div.canary tr.check.failed',
                timeout=15_000,
            )
            checks = episode.locator("tr.check").all_inner_texts()
            assert any("FAIL" in row for row in checks), checks
            # the whole day, worker health and dead letters (the worker's start-up probes)
            last = scenario.n_intervals - 1
            card.locator(f'p.day[data-closed-through="{last}"]').wait_for(timeout=30_000)
            assert card.locator("table.intervals tr[data-interval]").count() > 0
            assert "ready" in page.locator("#workers").inner_text()
            assert page.locator('#dead tr.dead-kind[data-kind="decode"]').count() == 1
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            shot = ARTIFACTS / "ops-rollback.png"
            page.screenshot(path=str(shot), full_page=True)
            record_property("screenshot", str(shot))
            print(f"\nscreenshot of the rolled-back canary: {shot}")
            seconds_to_rollback = time.monotonic() - started

            # an operator aborts a second canary from the page: token, typed site, the verb
            second = _canary(live, "static", "--no-watch")
            assert second.wait(60) == 0
            abort = card.locator("button", has_text="abort canary")
            abort.wait_for(timeout=15_000)
            page.fill("#token", TOKEN)
            answers = iter([site, "aborted in the browser test"])
            page.on("dialog", lambda dialog: dialog.accept(next(answers)))
            abort.click()
            row = card.locator('tr.route-row[data-action="abort"]')
            row.wait_for(timeout=40_000)
            assert "aborted in the browser test" in row.inner_text()
            toast = page.locator("#toast").inner_text()
            assert "abort exit 0" in toast and "applied by" in toast, toast
            assert errors == [], errors
        finally:
            browser.close()
    route = read_routes(bootstrap)[site]
    assert route.action == "abort" and route.serving == PolicyRef(name="proportional")
    state = json.loads(urllib.request.urlopen(live["url"] + "api/state").read())
    (shown,) = [s for s in state["sites"] if s["site_id"] == site]
    assert [h["action"] for h in shown["history"]][-4:] == ["canary", "rollback", "canary", "abort"]
    # the page's floor counts are the replayed day's own KPIs, exactly
    day = shown["day"]
    assert (day["inducted"], day["recirculated"]) == (
        result.kpis.inducted,
        result.kpis.recirculated,
    )
    assert sum(row["sorted"] for row in day["intervals"]) == result.kpis.sorted
    print(f"page live through a replayed day and a rollback in {seconds_to_rollback:.1f} s")
