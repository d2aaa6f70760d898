"""What the verb modules share: the parser class every verb's parser is made of, flag
conventions, output helpers and the day source.

The CLI grammar, in one place:

- one flag name per meaning (units in the name: ``--timeout-seconds``,
  ``--inference-deadline-ms``; ``--fallback-policy``; a repeated ``--site``); the spellings
  used before stay as hidden aliases that print a one-line deprecation note
  (:func:`add_deprecated`);
- every default shown in ``--help`` (:class:`HelpFormatter`), and one default scenario,
  :data:`DEFAULT_SCENARIO`, on every verb;
- a usage error is one line and exit code 2 (:meth:`ChuteflowParser.error`); so is a value
  out of range (:func:`non_negative_int`, :func:`positive_int`, ...);
- ``--json`` prints exactly one JSON document (:func:`print_json`); numbers in tables go
  through :func:`format_number` (rates as percentages);
- a Kafka connection is checked once, in at most :data:`CONNECT_TIMEOUT_S`
  (:func:`kafka_client`).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, Protocol, TypeVar

if TYPE_CHECKING:
    from floor.daytypes import DayTypeGroups
    from floor.scenario import Scenario
    from stream.clients import KafkaClientConfig
    from twin.day import DayDemand

DEFAULT_SCENARIO = "large"
"""The scenario of every verb that takes ``--scenario`` and is not given one: the large site,
the one the figures, the demo and the Docker Compose replay are about."""

POLICY_HELP = (
    "a built-in (static, proportional, lookahead), PATH.onnx, a shipped name (drmarl, "
    "drmarl-large, ...: the files of decision/policies/) or a store version NAME@VERSION, "
    "NAME@latest, NAME@ALIAS, sha256:HEX (rollout/refs.py)"
)
"""The policy grammar in one line, for every ``--policy``-like flag's help."""

CONNECT_TIMEOUT_S = 3.0
"""How long a verb waits for a broker to answer before it says it cannot reach it (with the
process's start and the client's teardown, an unreachable broker costs at most 5 s)."""


class Subparsers(Protocol):
    """What ``ArgumentParser.add_subparsers()`` returns, as far as a verb module uses it
    (argparse's own class is private)."""

    def add_parser(self, name: str, **kwargs: Any) -> argparse.ArgumentParser: ...


class Verb(Protocol):
    """A verb module of ``chuteflow``."""

    NAME: str

    def register(self, sub: Subparsers) -> None:
        """Add the verb's parser to ``sub`` and set ``func(args) -> int`` on it."""


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows ``(default: X)`` after every option's help, unless the help already says its
    default or there is none to show (None, False, an empty list)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        if "default" in text or default is None or default is False or default == []:
            return text
        if default == argparse.SUPPRESS:
            return text
        if action.option_strings or action.nargs in (argparse.OPTIONAL, argparse.ZERO_OR_MORE):
            return text + " (default: %(default)s)"
        return text


class ChuteflowParser(argparse.ArgumentParser):
    """Every parser of ``chuteflow`` (subcommands inherit the class): defaults in ``--help``
    and usage errors as one line with exit code 2."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)
        self.required_after: list[tuple[str, str]] = []
        """(dest, flag) required but satisfiable through a deprecated alias: checked after
        parsing (argparse's own ``required`` would refuse the alias)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        parsed, extras = super().parse_known_args(args, namespace)
        for dest, flag in self.required_after:
            if getattr(parsed, dest, None) in (None, []):
                self.error(f"the following arguments are required: {flag}")
        return parsed, extras


def add_deprecated(
    parser: argparse.ArgumentParser,
    old: str,
    new: str,
    dest: str,
    *,
    extend: bool = False,
    **kwargs: Any,
) -> None:
    """A hidden flag ``old`` that sets ``dest`` as ``new`` does and prints one line saying
    ``new`` replaces it. ``extend``: its values are added to ``dest``'s list (``--sites a b``
    for a repeated ``--site``)."""

    class Deprecated(argparse.Action):
        def __call__(
            self,
            parser: argparse.ArgumentParser,
            namespace: argparse.Namespace,
            values: Any,
            option_string: str | None = None,
        ) -> None:
            print(f"chuteflow: {old} is deprecated; use {new}", file=sys.stderr)
            if extend:
                items = list(getattr(namespace, self.dest, None) or [])
                items.extend(values if isinstance(values, list) else [values])
                setattr(namespace, self.dest, items)
            else:
                setattr(namespace, self.dest, values)

    parser.add_argument(
        old,
        dest=dest,
        action=Deprecated,
        help=argparse.SUPPRESS,
        default=argparse.SUPPRESS,
        **kwargs,
    )


def require(parser: argparse.ArgumentParser, dest: str, flag: str) -> None:
    """``flag`` is required, but may come through a deprecated alias of it."""
    if isinstance(parser, ChuteflowParser):
        parser.required_after.append((dest, flag))


Number = TypeVar("Number", int, float)


def _bounded(
    kind: Callable[[str], Number],
    low: float,
    what: str,
    *,
    strict: bool = False,
    high: float = math.inf,
) -> Callable[[str], Number]:
    """An argparse type: ``kind`` at or above ``low`` (above it where ``strict``), at most
    ``high``, finite.

    Why finite: ``float("nan")`` compares false with every bound, so ``--minutes nan`` passed a
    plain ``< low`` check and reached the planner."""

    def parse(text: str) -> Number:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
        if not math.isfinite(value) or not low <= value <= high or (strict and value == low):
            raise argparse.ArgumentTypeError(f"{text} is not {what}")
        return value

    parse.__name__ = what  # argparse names the type in its messages
    return parse


non_negative_int = _bounded(int, 0, "an integer >= 0")
positive_int = _bounded(int, 1, "an integer >= 1")
non_negative_float = _bounded(float, 0.0, "a number >= 0")
positive_float = _bounded(float, 0.0, "a number > 0", strict=True)


port = _bounded(int, 0, "a port (0-65535)", high=65535)
"""A TCP port, 0 (any free one) to 65535: ``--port 99999`` got as far as the socket (or, on
``ops serve``, the broker) before it failed."""


def add_scenario(parser: argparse.ArgumentParser, **kwargs: Any) -> None:
    """``--scenario`` with the one default of every verb."""
    kwargs.setdefault("help", "small, large or a scenario YAML")
    parser.add_argument("--scenario", default=DEFAULT_SCENARIO, **kwargs)


BOOTSTRAP_HELP = (
    "Kafka bootstrap servers host:port[,...] (default: bootstrap.servers of --kafka-config, "
    "else $KAFKA_BOOTSTRAP_SERVERS, else 127.0.0.1:9092)"
)
KAFKA_CONFIG_HELP = (
    "librdkafka-style client properties (key=value lines as in client.properties: "
    "bootstrap.servers, security.protocol, sasl.mechanism, sasl.username, sasl.password, "
    "ssl.ca.location, ...); KAFKA_* environment variables (e.g. KAFKA_SASL_PASSWORD) fill "
    "the keys it leaves out"
)


def add_kafka_options(
    parser: argparse.ArgumentParser, bootstrap_help: str = BOOTSTRAP_HELP
) -> None:
    """``--bootstrap`` and ``--kafka-config FILE``: how the verb's Kafka clients connect."""
    parser.add_argument("--bootstrap", default=None, help=bootstrap_help)
    parser.add_argument("--kafka-config", metavar="FILE", default=None, help=KAFKA_CONFIG_HELP)


def broker_given(args: argparse.Namespace) -> bool:
    """Whether the user named a broker (``--bootstrap``, ``--kafka-config`` or
    ``$KAFKA_BOOTSTRAP_SERVERS``): offline verbs read the policy store only then."""
    return bool(
        getattr(args, "bootstrap", None)
        or getattr(args, "kafka_config", None)
        or os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    )


def kafka_client(args: argparse.Namespace, *, check: bool = True) -> KafkaClientConfig:
    """The verb's Kafka connection: ``--bootstrap``, then ``--kafka-config``, then ``KAFKA_*``
    environment variables, per key (:meth:`stream.clients.KafkaClientConfig.load`).

    ``check``: ask the broker for its metadata once, so an unreachable broker or refused
    credentials are one line within :data:`CONNECT_TIMEOUT_S` rather than a later client's
    own timeout (30 s and more).
    """
    from stream.clients import KafkaClientConfig, connect_admin

    client = KafkaClientConfig.load(bootstrap=args.bootstrap, config_file=args.kafka_config)
    if check:
        connect_admin(client, timeout_s=CONNECT_TIMEOUT_S)
    return client


def print_json(payload: object) -> None:
    """One JSON document on stdout (what every ``--json`` prints, once per command)."""
    print(json.dumps(payload, sort_keys=True))


def format_number(key: str, value: object) -> str:
    """A number as every table of chuteflow shows it: rates (``*_rate``, a share between 0
    and 1) as a percentage with three decimals, counts with thousands separators, other
    numbers with two decimals."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if key.endswith("_rate") and isinstance(value, float):
        return f"{100 * value:.3f}%"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:,.2f}"


def print_result(result: Mapping[str, object], as_json: bool, width: int = 22) -> None:
    """One JSON object, or one ``key value`` line per entry (numbers by :func:`format_number`)."""
    if as_json:
        print_json(result)
    else:
        for key, value in result.items():
            print(f"{key:{width}s} {format_number(key, value)}")


def add_day_source(parser: argparse.ArgumentParser, day_help: str) -> None:
    """``--scenario``, ``--group`` | ``--day`` (one required) and ``--seed``."""
    add_scenario(parser)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--group", type=non_negative_int, help="sample a day of this day-type group"
    )
    source.add_argument("--day", help=day_help)
    parser.add_argument(
        "--seed", type=non_negative_int, default=0, help="seed of the sampled day and twin"
    )


def load_day(args: argparse.Namespace) -> tuple[Scenario, DayTypeGroups, DayDemand]:
    """The scenario (with ``--site`` as its site id, where the verb has that flag), its
    day-type groups and the day of :func:`add_day_source`'s arguments."""
    from floor.daytypes import default_groups

    scenario, groups, demand = load_day_without_groups(args)
    return scenario, groups or default_groups(scenario), demand


def load_day_without_groups(
    args: argparse.Namespace,
) -> tuple[Scenario, DayTypeGroups | None, DayDemand]:
    """:func:`load_day`, except that a ``--day`` file on a site that has no day-type groups
    yet (a new site file before onboarding) gives ``None`` for them: the day then plans with
    its own mix (``twin.closed_loop.day_plan``). Sampling a ``--group`` day still needs them."""
    from floor.daytypes import GroupsError, default_groups
    from floor.errors import ChuteflowError
    from floor.scenario import load_scenario
    from twin.dayfile import read_day_csv
    from twin.groups import sample_day

    scenario = load_scenario(args.scenario)
    site = getattr(args, "site", None)
    if site and site != scenario.site_id:
        scenario = scenario.model_copy(update={"site_id": site})
    if args.day is not None:
        try:
            found: DayTypeGroups | None = default_groups(scenario)
        except GroupsError:
            found = None
        return scenario, found, read_day_csv(Path(args.day), scenario, groups=found)
    groups = default_groups(scenario)
    n_groups = groups.probs.shape[0]
    if not 0 <= args.group < n_groups:
        raise ChuteflowError(f"--group {args.group}: {scenario.name} has groups 0..{n_groups - 1}")
    return scenario, groups, sample_day(groups, args.group, scenario, seed=args.seed)
