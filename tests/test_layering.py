"""Heavy dependencies stay where they are needed: the decision path never loads faust or
Kafka clients, and nothing at runtime loads torch."""

from __future__ import annotations

import subprocess
import sys

import pytest


def _loaded_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print(','.join(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout
    return {name.split(".")[0] for name in out.strip().split(",")}


@pytest.mark.parametrize(
    ("statement", "forbidden"),
    [
        (
            "import decision.engine, decision.tracker, twin.closed_loop, training.dqn",
            {"faust", "aiokafka", "confluent_kafka", "torch"},
        ),
        ("import stream.agents, stream.app, stream.processor", {"torch"}),
        ("import contracts", {"faust", "numpy", "ortools", "torch"}),
    ],
)
def test_modules_do_not_load_heavy_dependencies(statement: str, forbidden: set[str]) -> None:
    assert not (_loaded_after(statement) & forbidden)
