"""The layering of the rooms, enforced on the code itself.

Layers, lowest first; a module may import its own package and any *lower* layer, never a
peer or a higher one:

    0 contracts                 the events on the wire
    1 floor                     what a site is (scenario, guardrails, day types, seeds, errors)
    2 decision                  features -> policy -> projection -> allocation
    3 twin | stream             the simulated floor | the worker's Kafka I/O (peers: neither
                                imports the other, so the worker never loads the simulator)
    4 replay | evaluation | localkafka | rollout
    5 training | ops            MARL/DRMARL training | the live operations page
    6 onboarding                a new site to a gated policy bundle (trains, picks, evaluates)
    7 chuteflow                 the CLI

Every import counts, including the ones inside functions: a lazy import still ties the rooms
together. The module graph (same parse) must have no cycle. Heavy dependencies stay where they
are needed: the decision path never loads faust or Kafka clients, and nothing loads torch.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LAYERS: dict[str, int] = {
    "contracts": 0,
    "floor": 1,
    "decision": 2,
    "twin": 3,
    "stream": 3,
    "replay": 4,
    "evaluation": 4,
    "localkafka": 4,
    "rollout": 4,
    "training": 5,
    "ops": 5,
    "onboarding": 6,
    "chuteflow": 7,
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    found = {}
    for package in LAYERS:
        for path in (REPO / package).rglob("*.py"):
            found[_module_name(path)] = path
    return found


MODULES = _modules()


def _imports(name: str, path: Path) -> Iterator[tuple[str, int]]:
    """(imported project module, line) for every import statement in the file."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            # `from pkg import sub` imports the submodule when there is one
            targets = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base
                for alias in node.names
            ]
        else:
            continue
        for target in targets:
            if target.split(".")[0] in LAYERS:
                yield target, node.lineno


GRAPH = {
    name: sorted({target for target, _ in _imports(name, path) if target != name})
    for name, path in MODULES.items()
}


def test_every_package_has_a_layer() -> None:
    top_level = {p.name for p in REPO.iterdir() if (p / "__init__.py").is_file()}
    assert top_level - {"tests"} == set(LAYERS)


def test_no_import_goes_up_or_sideways() -> None:
    wrong = []
    for name, path in MODULES.items():
        own = name.split(".")[0]
        for target, line in _imports(name, path):
            other = target.split(".")[0]
            if other != own and LAYERS[other] >= LAYERS[own]:
                wrong.append(f"{path.relative_to(REPO)}:{line} imports {target}")
    assert not wrong, "\n".join(wrong)


def test_decision_and_stream_never_import_twin_training_evaluation_or_cli() -> None:
    banned = {"twin", "training", "evaluation", "replay", "chuteflow"}
    offenders = [
        f"{name} -> {target}"
        for name, targets in GRAPH.items()
        if name.split(".")[0] in {"decision", "stream", "floor", "contracts"}
        for target in targets
        if target.split(".")[0] in banned
    ]
    assert not offenders, offenders


def _cycle() -> list[str] | None:
    """One import cycle among project modules, or None (iterative DFS, white/grey/black)."""
    colour = dict.fromkeys(GRAPH, 0)
    for root in GRAPH:
        if colour[root]:
            continue
        stack: list[tuple[str, Iterator[str]]] = [(root, iter(GRAPH[root]))]
        colour[root] = 1
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                colour[node] = 2
                stack.pop()
            elif child in GRAPH and colour[child] == 1:
                path = [n for n, _ in stack]
                return [*path[path.index(child) :], child]
            elif child in GRAPH and colour[child] == 0:
                colour[child] = 1
                stack.append((child, iter(GRAPH[child])))
    return None


def test_no_import_cycle() -> None:
    assert _cycle() is None, " -> ".join(_cycle() or [])


def test_the_checks_can_fail() -> None:
    """The cycle finder finds a planted cycle (a check that cannot fail proves nothing)."""
    saved = dict(GRAPH)
    try:
        GRAPH["training.dqn"] = [*GRAPH["training.dqn"], "training.predictor"]
        GRAPH["training.predictor"] = [*GRAPH["training.predictor"], "training.dqn"]
        assert _cycle() is not None
    finally:
        GRAPH.clear()
        GRAPH.update(saved)


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
            "import decision.engine, decision.build, decision.tracker, twin.closed_loop, "
            "training.dqn",
            {"faust", "aiokafka", "confluent_kafka", "torch"},
        ),
        ("import stream.agents, stream.app, stream.processor", {"torch", "twin", "training"}),
        ("import contracts", {"faust", "numpy", "ortools", "torch"}),
        ("import floor.site, floor.daytypes", {"ortools", "onnxruntime", "faust", "decision"}),
    ],
)
def test_modules_do_not_load_heavy_dependencies(statement: str, forbidden: set[str]) -> None:
    assert not (_loaded_after(statement) & forbidden)
