"""Faults mid-day against a real broker: kill -9, SIGTERM, broker restart, rebalance.

CI runs one of each on the small site. The full suite (10 runs of each on the large site, at
random intervals) is one command: ``scripts/reliability`` (see its header); it writes one JSON
line per run to ``$RELIABILITY_OUT``.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from floor.scenario import load_scenario
from tests.reliability.harness import MODES, Broker, FaultResult, own_broker, run_fault

RUNS = int(os.environ.get("RELIABILITY_RUNS", "1"))
SCENARIO = os.environ.get("RELIABILITY_SCENARIO", "small")
OUT = os.environ.get("RELIABILITY_OUT")
HANDOVER_TARGET_S = 10.0

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    if os.environ.get("CHUTEFLOW_SKIP_KAFKA") == "1":
        pytest.skip("CHUTEFLOW_SKIP_KAFKA=1")
    with own_broker(tmp_path_factory.mktemp("reliability-kafka")) as running:
        yield running


def _record(result: FaultResult) -> None:
    print(result.to_json())
    if OUT:
        with Path(OUT).open("a") as handle:
            handle.write(result.to_json() + "\n")


@pytest.mark.parametrize("run", range(RUNS))
@pytest.mark.parametrize("mode", MODES)
def test_fault_mid_day_loses_nothing_and_counts_nothing_twice(
    broker: Broker, mode: str, run: int, tmp_path: Path
) -> None:
    scenario = load_scenario(SCENARIO)
    rng = random.Random(f"{mode}-{run}")
    fault_at = rng.randrange(1, scenario.n_intervals - 2)
    group = rng.randrange(0, 5)
    result = run_fault(
        broker, mode, tmp_path, scenario_name=SCENARIO, group=group, seed=run, fault_at=fault_at
    )
    _record(result)
    assert result.kpis_equal, result.kpi_diff
    assert not result.lost_intervals, result.lost_intervals
    assert not result.conflicting_intervals, result.conflicting_intervals
    if mode in ("kill9", "sigterm"):
        assert result.handover_s is not None and result.handover_s <= HANDOVER_TARGET_S, result
