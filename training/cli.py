"""``chuteflow train`` and ``chuteflow bench train``: argparse built from ``Settings``."""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chuteflow.progress import Progress
from training.dqn import ALGOS, Settings, Trainer, write_run

if TYPE_CHECKING:
    SubParsers = argparse._SubParsersAction[argparse.ArgumentParser]


def _field_help() -> dict[str, str]:
    """Each Settings field's docstring (the line after it in the source) becomes its --help."""
    import inspect

    source = inspect.getsource(Settings).splitlines()
    helps: dict[str, str] = {}
    for index, line in enumerate(source):
        stripped = line.strip()
        if ":" in stripped and not stripped.startswith(('"', "#", "@", "def", "class")):
            name = stripped.split(":", 1)[0]
            nxt = source[index + 1].strip() if index + 1 < len(source) else ""
            if nxt.startswith('"""'):
                helps[name] = nxt.strip('"')
    return helps


def add_train_commands(sub: SubParsers) -> None:
    train = sub.add_parser("train", help="train marl / drmarl / drmarl-exhaustive on the twin")
    helps = _field_help()
    for f in dataclasses.fields(Settings):
        flag = "--" + f.name.replace("_", "-")
        default = f.default
        if f.name == "algo":
            train.add_argument(flag, choices=ALGOS, default=default, help=helps.get(f.name))
        elif f.name == "train_group":
            train.add_argument(
                "--group", dest="train_group", type=int, default=None, help=helps.get(f.name)
            )
        else:
            train.add_argument(flag, type=type(default), default=default, help=helps.get(f.name))
    train.add_argument("--out", required=True, help="directory for the ONNX policy and curves")
    train.add_argument("--quick", action="store_true", help="tiny settings that run in seconds")
    train.add_argument(
        "--table",
        action="store_true",
        help="train every policy of the paper's table for --scenario and evaluate them "
        "(small: Table 1, large: Table 2); --algo is ignored",
    )
    train.add_argument("--eval-seeds", type=int, default=5, help="--table: days per group")
    train.add_argument("--workers", type=int, default=None, help="--table: processes")
    train.set_defaults(func=cmd_train)

    bench = sub.choices["bench"]
    assert isinstance(bench, argparse.ArgumentParser)
    bench_sub = next(a for a in bench._actions if isinstance(a, argparse._SubParsersAction))
    b = bench_sub.add_parser("train", help="env steps/s and s/episode per algorithm")
    b.add_argument("--scenario", default="large")
    b.add_argument("--episodes", type=int, default=2)
    b.add_argument("--json", action="store_true")
    b.set_defaults(func=cmd_bench_train)


def _settings(args: argparse.Namespace) -> Settings:
    values: dict[str, Any] = {f.name: getattr(args, f.name) for f in dataclasses.fields(Settings)}
    if args.quick:
        defaults = Settings()
        explicit = {k: v for k, v in values.items() if v != getattr(defaults, k)}
        return Settings.quick(**explicit)
    return Settings(**values)


def cmd_train(args: argparse.Namespace) -> int:
    settings = _settings(args)
    if args.table:
        from training.tables import run_table

        result = run_table(
            settings.scenario, Path(args.out), settings.episodes, args.eval_seeds, args.workers
        )
        name = "table1.md" if settings.scenario == "small" else "table2.md"
        print((Path(args.out) / name).read_text())
        print(f"wall time {result['wall_seconds']:.0f} s")
        return 0
    progress = Progress(settings.episodes, f"train {settings.algo}")

    def on_episode(episode: int, row: dict[str, float]) -> None:
        note = f"recirc {100 * row['recirculation_rate']:.2f}%"
        if "validation_worst" in row:
            note += f" val worst {100 * row['validation_worst']:.2f}%"
        progress.update(episode + 1, note)

    trainer = Trainer(settings, on_episode=on_episode)
    trained = trainer.train()
    progress.close()
    path = write_run(trained, settings, Path(args.out), trainer.scenario)
    summary = {
        "onnx": str(path),
        "wall_seconds": round(trained.wall_seconds, 2),
        "env_steps": trained.env_steps,
        "branch_steps": trained.branch_steps,
        "best_validation": min(
            (v["worst"] if settings.algo != "marl" else v["mean"]) for v in trained.validation
        ),
        "predictor": trained.predictor_report,
    }
    print(json.dumps(summary, sort_keys=True))
    return 0


def bench_train(scenario: str, episodes: int) -> dict[str, object]:
    """Seconds per training episode and env steps per second for each algorithm."""
    out: dict[str, object] = {"scenario": scenario, "episodes": episodes}
    for algo in ALGOS:
        settings = Settings(
            scenario=scenario,
            algo=algo,
            episodes=episodes,
            learning_starts=1,
            validate_every=10**9,
            predictor_episodes=1,
            predictor_epochs=1,
        )
        trainer = Trainer(settings)
        if algo == "drmarl":
            from training.predictor import fit_predictor

            trainer.predictor, _ = fit_predictor(trainer)
        start = time.perf_counter()
        steps_before = trainer.env_steps
        for episode in range(episodes):
            trainer.run_episode(episode)
        wall = time.perf_counter() - start
        steps = trainer.env_steps - steps_before
        out[algo] = {
            "seconds_per_episode": round(wall / episodes, 3),
            "env_steps_per_second": round(steps / wall, 2),
        }
    return out


def cmd_bench_train(args: argparse.Namespace) -> int:
    result = bench_train(args.scenario, args.episodes)
    print(json.dumps(result, sort_keys=True) if args.json else json.dumps(result, indent=2))
    return 0
