"""``chuteflow train``: train marl / drmarl / drmarl-exhaustive on the twin, or the paper's
tables. Its flags are built from :class:`training.settings.Settings`, one per field."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chuteflow.cli._shared import DEFAULT_SCENARIO, Subparsers, non_negative_int, positive_int

if TYPE_CHECKING:
    from training.settings import Settings

NAME = "train"


def _field_help() -> dict[str, str]:
    """Each Settings field's docstring (the line after it in the source) becomes its --help."""
    import inspect

    from training.settings import Settings

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


def register(sub: Subparsers) -> None:
    from training.settings import ALGOS, Settings

    parser = sub.add_parser(NAME, help="train marl / drmarl / drmarl-exhaustive on the twin")
    helps = _field_help()
    for f in dataclasses.fields(Settings):
        flag = "--" + f.name.replace("_", "-")
        default = f.default
        if f.name == "algo":
            parser.add_argument(flag, choices=ALGOS, default=default, help=helps.get(f.name))
        elif f.name == "train_group":
            parser.add_argument(
                "--group",
                dest="train_group",
                type=non_negative_int,
                default=None,
                help=helps.get(f.name),
            )
        elif f.name == "scenario":  # the one default scenario of every verb
            parser.add_argument(flag, default=DEFAULT_SCENARIO, help=helps.get(f.name))
        elif isinstance(default, tuple):  # a range: two numbers
            parser.add_argument(
                flag,
                type=float,
                nargs=2,
                default=default,
                metavar=("LOW", "HIGH"),
                help=helps.get(f.name),
            )
        elif isinstance(default, int) and not isinstance(default, bool):
            parser.add_argument(
                flag, type=non_negative_int, default=default, help=helps.get(f.name)
            )
        else:
            parser.add_argument(flag, type=type(default), default=default, help=helps.get(f.name))
    parser.add_argument("--out", required=True, help="directory for the ONNX policy and curves")
    parser.add_argument("--quick", action="store_true", help="tiny settings that run in seconds")
    parser.add_argument(
        "--table",
        action="store_true",
        help="train every policy of the paper's table for --scenario and evaluate them "
        "(small: Table 1, large: Table 2); --algo is ignored",
    )
    parser.add_argument(
        "--eval-seeds", type=positive_int, default=5, help="--table: days per group"
    )
    parser.add_argument(
        "--workers", type=positive_int, default=None, help="--table: local Ray CPUs (1: serial)"
    )
    parser.add_argument(
        "--ray", default=None, metavar="ADDRESS", help="--table: an existing Ray cluster"
    )
    parser.set_defaults(func=run)


def _settings(args: argparse.Namespace) -> Settings:
    from floor.errors import ChuteflowError
    from training.settings import Settings

    values: dict[str, Any] = {f.name: getattr(args, f.name) for f in dataclasses.fields(Settings)}
    try:
        if args.quick:
            defaults = Settings()
            explicit = {k: v for k, v in values.items() if v != getattr(defaults, k)}
            return Settings.quick(**explicit)
        return Settings(**values)
    except ValueError as error:  # a setting that cannot work: one line, exit 2
        raise ChuteflowError(f"train: {error}") from error


def run(args: argparse.Namespace) -> int:
    from chuteflow.progress import Progress

    settings = _settings(args)
    if args.table:
        from training.tables import run_table

        result = run_table(
            settings.scenario,
            Path(args.out),
            settings.episodes,
            args.eval_seeds,
            args.workers,
            args.ray,
        )
        name = "table1.md" if settings.scenario == "small" else "table2.md"
        print((Path(args.out) / name).read_text())
        print(f"wall time {result['wall_seconds']:.0f} s")
        return 0

    from training.dqn import Trainer, write_run

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
        "exported_validation": trained.exported_validation,
        "predictor": trained.predictor_report,
    }
    print(json.dumps(summary, sort_keys=True))
    return 0
