"""The site catalog: sites join and leave a running worker (``chuteflow worker --catalog``).

In memory: the processor serves a new site at once and a changed one from its next day; the
follower turns records into changes and refuses bad ones with a logged reason, never raising.
Through the real broker: a worker started with no site flags serves what ``chuteflow site add``
publishes while it runs, each replayed day decided exactly as the twin decides it, and
``chuteflow site remove`` drops one site and its table state while the other is still decided.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from chuteflow.cli import main
from chuteflow.cli.site import _site_text
from contracts.codec import decode, encode
from contracts.events import AllocationDecided, DayStarted, IntervalClosed
from contracts.sites import encode_entry, make_entry
from contracts.topics import ALLOCATIONS, DEAD_LETTER, SITES
from decision.build import build_engine
from floor.daytypes import default_groups
from floor.guardrails import load_guardrails
from floor.scenario import Scenario, load_scenario
from floor.site import load_site
from replay.loop import day_type_group, replay_day, replay_day_key
from replay.publisher import KafkaPublisher
from replay.workers import start_worker, stop_worker
from stream.clients import KafkaClientConfig
from stream.deadletter import original_value
from stream.processor import StreamProcessor
from stream.site_catalog import CatalogFollower, remove_site
from stream.topic_reader import Record, read_to_end
from stream.worker import build_site, make_site
from tests.stream.readers import TopicReader
from twin.closed_loop import run_day
from twin.groups import sample_day

WHEN = datetime(2025, 1, 6, 5, 0, tzinfo=UTC)


def _small(site_id: str) -> Scenario:
    return load_scenario("small").model_copy(update={"site_id": site_id})


def _day(scenario: Scenario, days: int) -> DayStarted:
    start = scenario.day_start + timedelta(days=days)
    return DayStarted(
        event_id=f"day-{days}",
        event_time=start,
        site_id=scenario.site_id,
        day_start=start,
        day_type_group=0,
    )


def _close(scenario: Scenario, days: int, index: int) -> IntervalClosed:
    start = scenario.interval_start(index, scenario.day_start + timedelta(days=days))
    end = start + timedelta(minutes=scenario.interval_minutes)
    return IntervalClosed(
        event_id=f"close-{days}-{index}",
        event_time=end,
        site_id=scenario.site_id,
        interval_index=index,
        interval_start=start,
        interval_end=end,
    )


def _policies(processor: StreamProcessor, event: DayStarted | IntervalClosed) -> list[str]:
    from stream.inputs import BY_NAME

    topic = next(name for name, spec in BY_NAME.items() if event.event_type in spec.event_types)
    out = processor.handle(topic, event.site_id.encode(), encode(event))
    return [
        e.policy_name
        for e in (decode(r.value) for r in out if r.topic == ALLOCATIONS.name)
        if isinstance(e, AllocationDecided)
    ]


def test_a_changed_site_serves_from_its_next_day_never_mid_day() -> None:
    scenario = _small("site-changing")
    processor = StreamProcessor({})
    assert processor.add_site("site-changing", make_site(scenario, "proportional", None)) == "added"
    assert _policies(processor, _day(scenario, 0)) == ["proportional"]
    assert processor.add_site("site-changing", make_site(scenario, "static", None)) == "pending"
    # the running day ends on the entry it started with
    assert _policies(processor, _close(scenario, 0, 0)) == ["proportional"]
    assert _policies(processor, _close(scenario, 0, 1)) == ["proportional"]
    # a repeated day_started of the running day is refused and swaps nothing
    assert _policies(processor, _day(scenario, 0)) == []
    assert processor.sites["site-changing"].day_start == scenario.day_start
    assert _policies(processor, _day(scenario, 1)) == ["static"]
    assert processor.pending_sites == {} and processor.stats["sites_replaced"] == 1


def test_a_removed_site_is_dead_lettered_and_the_others_are_still_decided() -> None:
    gone, kept = _small("site-gone"), _small("site-kept")
    processor = StreamProcessor({})
    for scenario in (gone, kept):
        processor.add_site(scenario.site_id, make_site(scenario, "proportional", None))
        assert _policies(processor, _day(scenario, 0)) == ["proportional"]
    assert processor.remove_site("site-gone") and not processor.remove_site("site-gone")
    assert "site-gone" not in processor.dirty
    day = _day(gone, 1)
    out = processor.handle("chuteflow.intervals.v1", b"site-gone", encode(day))
    assert [original_value(r.value)[0].split(":")[0] for r in out] == ["unknown_site"]
    assert _policies(processor, _day(kept, 1)) == ["proportional"]


def _entry(site_id: str, text: str, revision: int = 1, groups: bytes | None = None) -> bytes:
    return encode_entry(make_entry(site_id, text, revision=revision, added_at=WHEN, groups=groups))


def test_the_follower_builds_good_entries_and_refuses_bad_ones_with_their_reason(
    caplog: pytest.LogCaptureFixture,
) -> None:
    text, _ = _site_text("small", "site-f")
    bad_layout = text.replace("induction_stations: 3", "induction_stations: 1").replace(
        "station_packages_per_hour: 1000.0", "station_packages_per_hour: 10.0"
    )
    assert bad_layout != text
    large_groups = (Path(__file__).resolve().parents[2] / "floor" / "scenarios").joinpath(
        "groups-large.npz"
    )
    follower = CatalogFollower(
        KafkaClientConfig("127.0.0.1:1"),  # never connected: apply() is fed the records
        lambda entry: build_site(entry, fetch=None),
        pinned={"site-pinned"},
    )
    records = [
        (b"site-f", _entry("site-f", text)),
        (b"site-f", _entry("site-f", text)),  # the same revision again: nothing
        (b"site-y", _entry("site-y", "name: [unclosed\n")),
        (b"site-z", _entry("site-z", bad_layout.replace("site-f", "site-z"))),
        (b"site-g", _entry("site-g", text.replace("site-f", "site-g"), groups=b"not npz")),
        (
            b"site-h",
            _entry("site-h", text.replace("site-f", "site-h"), groups=large_groups.read_bytes()),
        ),
        (b"site-i", _entry("site-i", text)),  # the file names another site
        (b"site-pinned", _entry("site-pinned", text.replace("site-f", "site-pinned"))),
        (b"site-x", b"\xff garbage"),
        (b"site-f", None),
    ]
    with caplog.at_level(logging.INFO):
        changes = follower.apply(
            [Record(SITES.name, 0, i, k, v, 0) for i, (k, v) in enumerate(records)]
        )
    assert [(c.site_id, c.site is not None, c.revision) for c in changes] == [
        ("site-f", True, 1),
        ("site-f", False, 0),
    ]
    assert follower.drain() == changes and follower.drain() == []
    assert follower.next_offset == len(records) and follower.revisions == {}
    refused = [r.getMessage() for r in caplog.records if "catalog entry refused" in r.getMessage()]
    assert len(refused) == 6, refused
    expected = (
        "site site-y revision 1: catalog entry refused: site site-y revision 1: not valid YAML",
        "induction_stations: 1 stations",
        "site-g revision 1: groups: not a day-type groups file",
        "groups for 'large' have shape",
        "site_id: the site file's is 'site-f', not the entry's",
        "site site-x: catalog entry refused: invalid catalog entry",
    )
    for line, reason in zip(refused, expected, strict=True):
        assert reason in line, (reason, line)


# --- through the broker ------------------------------------------------------------------


def _wait_log(log: Path, text: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while text not in log.read_text(errors="replace"):
        assert time.monotonic() < deadline, (
            f"worker never logged {text!r}:\n" + (log.read_text(errors="replace")[-3000:])
        )
        time.sleep(0.2)


@pytest.fixture(scope="module")
def catalog_worker(
    kafka_topics: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, str, Path]]:
    """A worker started with no site flags, only ``--catalog``."""
    app_id = f"catalog-{uuid.uuid4().hex[:8]}"
    workdir = tmp_path_factory.mktemp("catalog-worker")
    process = start_worker(kafka_topics, [], workdir, app_id=app_id, extra=["--catalog"])
    try:
        yield kafka_topics, app_id, workdir / f"{app_id}.log"
    finally:
        stop_worker(process)


def _replay_equals_the_twin(bootstrap: str, site_id: str, seed: int) -> None:
    scenario = _small(site_id)
    groups = default_groups(scenario)
    demand = sample_day(groups, 4, scenario, seed=seed)
    engine = build_engine(load_site(scenario, load_guardrails("small")), "proportional")
    run_id = f"catalog-{uuid.uuid4().hex[:8]}"
    reference = run_day(engine, demand, seed=seed, day=replay_day_key(site_id, demand, run_id))
    result = replay_day(demand, seed, bootstrap, day_type_group(groups, demand), run_id=run_id)
    assert result.kpis == reference.kpis
    assert [a.chute_map for a in result.allocations] == [
        d.event.chute_map for d in reference.decisions
    ]


@pytest.mark.kafka
def test_sites_join_and_leave_a_running_worker(
    catalog_worker: tuple[str, str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    bootstrap, app_id, log = catalog_worker
    run = uuid.uuid4().hex[:8]
    first, second, broken = f"cat-{run}-a", f"cat-{run}-b", f"cat-{run}-x"
    kafka = ["--bootstrap", bootstrap]

    assert main(["site", "add", "--site", "small", "--site-id", first, "--json", *kafka]) == 0
    added = json.loads(capsys.readouterr().out)
    assert added["site_id"] == first and added["revision"] == 1 and added["groups"] == "shipped"
    _wait_log(log, f"site {first}: catalog revision 1 served")
    _replay_equals_the_twin(bootstrap, first, seed=11)

    # a record no worker can use is logged with its reason; the worker goes on
    garbage = KafkaPublisher(bootstrap)
    garbage.produce(SITES.name, broken.encode(), b"\xff not an entry")
    garbage.flush()
    assert main(["site", "add", "--site", "small", "--site-id", second, *kafka]) == 0
    assert f"site {second} revision 1 added" in capsys.readouterr().out
    _wait_log(log, f"site {broken}: catalog entry refused: invalid catalog entry")
    _wait_log(log, f"site {second}: catalog revision 1 served")
    _replay_equals_the_twin(bootstrap, second, seed=12)

    assert main(["site", "list", "--json", *kafka]) == 0
    listed = {row["site_id"]: row for row in json.loads(capsys.readouterr().out)}
    assert listed[first]["revision"] == listed[second]["revision"] == 1
    assert listed[first]["policy"] == "proportional" and listed[first]["name"] == "small"

    assert main(["site", "remove", first, *kafka]) == 0
    _wait_log(log, f"site {first}: removed from the catalog, its state deleted")
    # its state is gone: the table's changelog ends with a tombstone for it
    changelog = f"{app_id}-site-state-changelog"
    latest: dict[bytes, bytes | None] = {}
    for record in read_to_end(bootstrap, [changelog]):
        if record.key is not None:
            latest[record.key] = record.value
    assert latest[json.dumps(first).encode()] is None
    assert latest[json.dumps(second).encode()] is not None
    # and its records are refused, while the other site is still decided
    dead = TopicReader(bootstrap, DEAD_LETTER)
    publisher = KafkaPublisher(bootstrap)
    publisher.publish(_day(_small(first), 40))
    publisher.flush()
    letters = dead.read_until(lambda r: any(k == first.encode() for k, _ in r), timeout_s=20)
    dead.close()
    reasons = [original_value(v)[0] for k, v in letters if k == first.encode()]
    assert reasons and all(reason.startswith("unknown_site") for reason in reasons), reasons
    _replay_equals_the_twin(bootstrap, second, seed=13)

    assert main(["site", "remove", first, *kafka]) == 2  # not in the catalog any more
    assert f"site {first} is not in the site catalog" in capsys.readouterr().err
    assert main(["site", "remove", second, *kafka]) == 0
    remove_site(bootstrap, broken)  # the garbage record's tombstone: compaction drops both


def test_site_add_refuses_a_bad_site_file_in_one_line_before_kafka(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text, _ = _site_text("small", "site-bad")
    bad = tmp_path / "site.yaml"
    bad.write_text(text.replace("eject_chutes: 10", "eject_chutes: 0"))
    # an unreachable broker: the file is refused before any connection is tried
    assert main(["site", "add", "--site", str(bad), "--bootstrap", "127.0.0.1:1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "eject_chutes" in err, err
    missing = tmp_path / "nogroups.yaml"
    missing.write_text(text.replace("name: small", "name: nogroups"))
    assert main(["site", "add", "--site", str(missing), "--bootstrap", "127.0.0.1:1"]) == 2
    assert "no day-type groups" in capsys.readouterr().err


@pytest.mark.kafka
def test_site_add_takes_a_bundles_own_groups(
    kafka_topics: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``site add --bundle`` read the bundle's site file from its text, which has no folder,
    so it never found the ``groups-<name>.npz`` beside it and refused every bundle with "no
    day-type groups". A bundle of a site no worker ships groups for is added with its own."""
    import shutil

    from floor.daytypes import default_groups_path

    site_id = f"site-bundle-{uuid.uuid4().hex[:8]}"
    text, _ = _site_text("small", site_id)
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "site.yaml").write_text(text.replace("name: small", "name: bundled"))
    shutil.copy(default_groups_path("small"), bundle / "groups-bundled.npz")
    manifest = {"site": "bundled", "site_id": site_id, "recommended_policy": "proportional"}
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    kafka = ["--bootstrap", kafka_topics]
    capsys.readouterr()
    assert main(["site", "add", "--bundle", str(bundle), "--json", *kafka]) == 0
    added = json.loads(capsys.readouterr().out)
    assert (added["site_id"], added["name"], added["groups"]) == (site_id, "bundled", "entry")
    assert main(["site", "remove", site_id, *kafka]) == 0
