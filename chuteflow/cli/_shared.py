"""What several verb modules share: the subparsers type, output helpers and the day source."""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from floor.daytypes import DayTypeGroups
    from floor.scenario import Scenario
    from stream.clients import KafkaClientConfig
    from twin.day import DayDemand


class Subparsers(Protocol):
    """What ``ArgumentParser.add_subparsers()`` returns, as far as a verb module uses it
    (argparse's own class is private)."""

    def add_parser(self, name: str, **kwargs: Any) -> argparse.ArgumentParser: ...


class Verb(Protocol):
    """A verb module of ``chuteflow``."""

    NAME: str

    def register(self, sub: Subparsers) -> None:
        """Add the verb's parser to ``sub`` and set ``func(args) -> int`` on it."""


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


def kafka_client(args: argparse.Namespace) -> KafkaClientConfig:
    """The verb's Kafka connection: ``--bootstrap``, then ``--kafka-config``, then ``KAFKA_*``
    environment variables, per key (:meth:`stream.clients.KafkaClientConfig.load`)."""
    from stream.clients import KafkaClientConfig

    return KafkaClientConfig.load(bootstrap=args.bootstrap, config_file=args.kafka_config)


def print_json(payload: object) -> None:
    print(json.dumps(payload, sort_keys=True))


def print_result(result: Mapping[str, object], as_json: bool, width: int = 20) -> None:
    """One JSON object, or one ``key value`` line per entry."""
    if as_json:
        print_json(result)
    else:
        for key, value in result.items():
            print(f"{key:{width}s} {value}")


def add_day_source(parser: argparse.ArgumentParser, default_scenario: str, day_help: str) -> None:
    """``--scenario``, ``--group`` | ``--day`` (one required) and ``--seed``."""
    parser.add_argument(
        "--scenario", default=default_scenario, help="small, large or a scenario YAML"
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--group", type=int, help="sample a day of this day-type group")
    source.add_argument("--day", help=day_help)
    parser.add_argument("--seed", type=int, default=0, help="seed of the sampled day and twin")


def load_day(args: argparse.Namespace) -> tuple[Scenario, DayTypeGroups, DayDemand]:
    """The scenario (with ``--site`` as its site id, where the verb has that flag), its
    day-type groups and the day of :func:`add_day_source`'s arguments."""
    from floor.daytypes import default_groups
    from floor.errors import ChuteflowError
    from floor.scenario import load_scenario
    from twin.dayfile import read_day_csv
    from twin.groups import sample_day

    scenario = load_scenario(args.scenario)
    site = getattr(args, "site", None)
    if site and site != scenario.site_id:
        scenario = scenario.model_copy(update={"site_id": site})
    groups = default_groups(scenario)
    if args.day is not None:
        return scenario, groups, read_day_csv(Path(args.day), scenario, groups=groups)
    n_groups = groups.probs.shape[0]
    if not 0 <= args.group < n_groups:
        raise ChuteflowError(f"--group {args.group}: {scenario.name} has groups 0..{n_groups - 1}")
    return scenario, groups, sample_day(groups, args.group, scenario, seed=args.seed)
