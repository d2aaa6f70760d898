"""The site catalog: sites join and leave a running worker (``chuteflow worker --catalog``).

In memory: the processor serves a new site at once and a changed one from its next day; the
follower turns records into changes and refuses bad ones with a logged reason, never raising.
Through the real broker: a worker started with no site flags serves what ``chuteflow site add``
publishes while it runs, each replayed day decided exactly as the twin decides it, and
``chuteflow site remove`` drops one site and its table state while the other is still decided.

A worker builds only the sites of the partitions it is assigned: in memory, the follower keeps
every entry and builds or drops sites as partitions come and go; through the broker, two
catalog workers each build their own partitions' sites, and when one is killed mid-day the
survivor builds the rest and every site's day still equals the twin's.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import signal
import time
import urllib.request
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor, wait
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from chuteflow.cli import main
from chuteflow.cli.site import _site_text
from contracts.codec import decode, encode
from contracts.events import AllocationDecided, DayStarted, IntervalClosed
from contracts.sites import SiteCatalogEntry, encode_entry, make_entry
from contracts.topics import (
    ALLOCATIONS,
    DEAD_LETTER,
    PARTITIONS,
    SITES,
    kafka_partition,
    message_key,
)
from decision.build import build_engine
from floor.daytypes import default_groups
from floor.guardrails import load_guardrails
from floor.scenario import Scenario, load_scenario
from floor.site import load_site
from replay.loop import ReplayResult, day_type_group, replay_day, replay_day_key
from replay.publisher import KafkaPublisher
from replay.workers import start_worker, stop_worker
from stream.clients import KafkaClientConfig
from stream.deadletter import original_value
from stream.inputs import INPUT_TOPICS
from stream.processor import SiteRuntime, StreamProcessor
from stream.site_catalog import CatalogFollower, publish_sites, remove_site
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


def _ids_on_distinct_partitions(prefix: str, n: int) -> dict[str, int]:
    """``n`` site ids of ``prefix`` whose records land on ``n`` different input partitions."""
    sites: dict[str, int] = {}
    k = 0
    while len(sites) < n:
        site_id = f"{prefix}{k}"
        partition = kafka_partition(message_key(site_id), PARTITIONS)
        if partition not in sites.values():
            sites[site_id] = partition
        k += 1
    return sites


def _record(site_id: str, text: str, offset: int, revision: int = 1) -> Record:
    entry = _entry(site_id, text.replace("site-f", site_id), revision)
    return Record(SITES.name, 0, offset, site_id.encode(), entry, 0)


def test_a_follower_builds_only_the_sites_of_its_partitions_and_keeps_every_entry() -> None:
    text, _ = _site_text("small", "site-f")
    sites = _ids_on_distinct_partitions("site-own-", 3)
    (a, pa), (b, pb), (c, pc) = sites.items()
    built: list[tuple[str, int]] = []

    def build(entry: SiteCatalogEntry) -> SiteRuntime:
        built.append((entry.site_id, entry.revision))
        return build_site(entry, fetch=None)

    follower = CatalogFollower(KafkaClientConfig("127.0.0.1:1"), build, owned=())
    records = [_record(site_id, text, i) for i, site_id in enumerate(sites)]
    # nothing is assigned: every entry is kept, none built
    assert follower.apply(records) == [] and built == []
    assert sorted(follower.entries) == sorted(sites) and follower.revisions == {}

    changes = follower.assign({pa, pb})
    assert [(ch.site_id, ch.site is not None, ch.assigned) for ch in changes] == [
        (a, True, True),
        (b, True, True),
    ]
    assert follower.drain() == changes and sorted(built) == sorted([(a, 1), (b, 1)])
    # an entry of an owned site is built at once (a changed one), one of another is kept
    changes = follower.apply([_record(a, text, 3, revision=2), _record(c, text, 4, revision=2)])
    assert [(ch.site_id, ch.revision, ch.assigned) for ch in changes] == [(a, 2, False)]
    assert follower.entries[c].revision == 2 and c not in follower.revisions
    # a day that started under revision 1 and is taken over mid-day ends on revision 1
    older = follower.build_revision(a, 1)
    assert older is not None and older.catalog_revision == 1
    assert older.snapshot()["catalog_revision"] == 1
    assert follower.build_revision(a, 7) is None

    # a rebalance: b's partition goes elsewhere, c's comes; a (kept) is not built again
    built.clear()
    changes = follower.assign({pa, pc})
    assert [(ch.site_id, ch.site is not None, ch.revision) for ch in changes] == [
        (b, False, 0),
        (c, True, 2),
    ]
    assert built == [(c, 2)] and follower.revisions == {a: 2, c: 2}
    # the dropped site's entry stays: when its partition returns it builds without a read
    assert follower.entries[b].revision == 1
    assert [ch.site_id for ch in follower.assign({pa, pb, pc}) if ch.site] == [b]

    # a latest entry that does not build: the one before it serves (what the last owner kept)
    follower.apply([_record(b, text.replace("eject_chutes: 10", "eject_chutes: 0"), 5, 2)])
    assert follower.revisions[b] == 1
    follower.assign({pa})
    rebuilt = follower.assign({pa, pb})
    assert [(ch.site_id, ch.revision) for ch in rebuilt] == [(b, 1)]

    # a tombstone deletes the entry everywhere, built or not
    changes = follower.apply(
        [
            Record(SITES.name, 0, 6, c.encode(), None, 0),
            Record(SITES.name, 0, 7, b.encode(), None, 0),
        ]
    )
    assert [(ch.site_id, ch.site, ch.assigned) for ch in changes] == [
        (c, None, False),
        (b, None, False),
    ]
    assert sorted(follower.entries) == [a] and sorted(follower.revisions) == [a]


def test_a_site_built_for_an_assignment_is_served_and_a_dropped_one_dead_lettered() -> None:
    processor = StreamProcessor({})
    scenario = _small("site-moved")
    processor.add_site("site-moved", make_site(scenario, "proportional", None))
    assert _policies(processor, _day(scenario, 0)) == ["proportional"]
    assert processor.remove_site("site-moved")
    out = processor.handle("chuteflow.intervals.v1", b"site-moved", encode(_day(scenario, 1)))
    assert [original_value(r.value)[0].split(":")[0] for r in out] == ["unknown_site"]


# --- through the broker ------------------------------------------------------------------


def _wait_log(log: Path, text: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while text not in log.read_text(errors="replace"):
        assert time.monotonic() < deadline, (
            f"worker never logged {text!r}:\n" + (log.read_text(errors="replace")[-3000:])
        )
        time.sleep(0.2)


@pytest.fixture
def catalog_worker(
    kafka_topics: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, str, Path]]:
    """A worker started with no site flags, only ``--catalog``; stopped after its test (a
    catalog worker of another group would decide the next test's sites too)."""
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


# --- two catalog workers: each builds its own partitions' sites ----------------------------

PROBE = b"\xff catalog probe"


def _probe(bootstrap: str, sites: dict[str, int], timeout_s: float = 45.0) -> None:
    """A garbage record per site and input topic, re-sent until each comes back dead-lettered:
    a fresh group (``latest``) fixes a partition's start offset on its first fetch, after its
    ready file is written, so this shows every site's partitions are consumed."""
    publisher = KafkaPublisher(bootstrap)
    dead = TopicReader(bootstrap, DEAD_LETTER)
    missing = {(site_id, spec.name) for site_id in sites for spec in INPUT_TOPICS}
    deadline = time.monotonic() + timeout_s
    try:
        while missing and time.monotonic() < deadline:
            for site_id, topic in sorted(missing):
                publisher.produce(topic, site_id.encode(), PROBE)
            publisher.flush()
            resend = time.monotonic() + 2.0
            while missing and time.monotonic() < min(resend, deadline):
                for key, value in dead.read_until(lambda r: False, timeout_s=0.2):
                    body = json.loads(value)
                    if base64.b64decode(body["value_base64"]) == PROBE:
                        missing.discard((key.decode(), body["topic"]))
                dead.records.clear()
    finally:
        dead.close()
    assert not missing, f"probes not consumed within {timeout_s:g} s: {sorted(missing)}"


def _ready(path: Path) -> dict[str, object] | None:
    with contextlib.suppress(FileNotFoundError, json.JSONDecodeError):
        body = json.loads(path.read_text())
        return body if isinstance(body, dict) else None
    return None


def _owned(body: dict[str, object]) -> set[int]:
    assigned = body["assigned"]
    assert isinstance(assigned, dict)
    return set(assigned[INPUT_TOPICS[0].name])


def _wait_split(
    ready: list[Path], logs: list[Path], want: int, timeout_s: float = 60.0
) -> list[dict[str, object]]:
    """The ready files of ``want`` workers, once they show disjoint partitions covering all."""
    deadline = time.monotonic() + timeout_s
    bodies: list[dict[str, object]] = []
    while time.monotonic() < deadline:
        bodies = [b for b in (_ready(path) for path in ready) if b is not None]
        owned = [_owned(b) for b in bodies]
        if (
            len(bodies) == want
            and all(owned)
            and sum(len(o) for o in owned) == PARTITIONS
            and set().union(*owned) == set(range(PARTITIONS))
        ):
            return bodies
        time.sleep(0.1)
    tails = "\n".join(log.read_text(errors="replace")[-2000:] for log in logs)
    raise AssertionError(f"no complete split over {want} workers: {bodies}\n{tails}")


def _sites_built(port: int) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return float(
        next(
            line for line in text.splitlines() if line.startswith("chuteflow_sites_built ")
        ).split()[1]
    )


@pytest.mark.kafka
def test_two_catalog_workers_build_only_their_partitions_sites_and_the_survivor_the_rest(
    kafka_topics: str, tmp_path: Path
) -> None:
    from localkafka import free_port

    bootstrap = kafka_topics
    run = uuid.uuid4().hex[:8]
    sites = _ids_on_distinct_partitions(f"own-{run}-", 4)  # any 3+3 split gives both some
    text, _ = _site_text("small", "site-f")
    publish_sites(
        bootstrap,
        [make_entry(s, text.replace("site-f", s), revision=1, added_at=WHEN) for s in sites],
    )
    app_id = f"catalog-pair-{run}"
    ports = [free_port(), free_port()]
    workdirs = [tmp_path / f"worker{i}" for i in range(2)]
    extra = ["--catalog", "--session-timeout-seconds", "6"]
    with ThreadPoolExecutor(2) as pool:
        futures = [
            pool.submit(
                start_worker,
                bootstrap,
                [],
                workdir,
                app_id=app_id,
                extra=[*extra, "--metrics-port", str(port)],
            )
            for workdir, port in zip(workdirs, ports, strict=True)
        ]
        wait(futures)
    processes = [f.result() for f in futures if f.exception() is None]
    ready = [w / f"{app_id}.ready" for w in workdirs]
    logs = [w / f"{app_id}.log" for w in workdirs]
    try:
        assert len(processes) == 2, [f.exception() for f in futures]
        bodies = _wait_split(ready, logs, 2)
        by_pid = {int(str(b["pid"])): b for b in bodies}
        for process, port in zip(processes, ports, strict=True):
            body = by_pid[process.pid]
            owned, served = _owned(body), body["sites"]
            assert isinstance(served, list)
            # every site it built is on its partitions (other tests' catalog sites included)
            assert all(kafka_partition(message_key(s), PARTITIONS) in owned for s in served)
            assert sorted(set(served) & set(sites)) == sorted(
                s for s, p in sites.items() if p in owned
            ), (owned, served)
            assert _sites_built(port) == len(served)
        log_texts = [log.read_text(errors="replace") for log in logs]
        assert all("catalog sites built here" in t for t in log_texts), log_texts

        _probe(bootstrap, sites)
        days = {}
        for i, site_id in enumerate(sites):
            scenario = _small(site_id)
            groups = default_groups(scenario)
            demand = sample_day(groups, i % groups.probs.shape[0], scenario, seed=60 + i)
            engine = build_engine(load_site(scenario, load_guardrails("small")), "proportional")
            key = replay_day_key(site_id, demand, run)
            reference = run_day(engine, demand, seed=60 + i, day=key)
            days[site_id] = (demand, day_type_group(groups, demand), reference)

        # kill -9 the owner of the first site once its day is a third through
        victim = next(p for p in processes if sites[next(iter(sites))] in _owned(by_pid[p.pid]))
        survivor = next(p for p in processes if p is not victim)
        first = next(iter(sites))
        n = _small(first).n_intervals
        killed: list[float] = []

        def kill_mid_day(allocation: AllocationDecided) -> None:
            if not killed and allocation.interval_index == n // 3:
                killed.append(time.monotonic())
                os.kill(victim.pid, signal.SIGKILL)

        with ThreadPoolExecutor(len(days)) as pool:
            replays = {
                site_id: pool.submit(
                    replay_day,
                    demand,
                    60 + i,
                    bootstrap,
                    group,
                    speed=None,
                    allocation_timeout_s=90.0,
                    run_id=run,
                    on_allocation=kill_mid_day if site_id == first else None,
                )
                for i, (site_id, (demand, group, _)) in enumerate(days.items())
            }
            results: dict[str, ReplayResult] = {}
            for site_id, future in replays.items():
                try:
                    results[site_id] = future.result()
                except Exception as error:
                    tails = "\n".join(log.read_text(errors="replace")[-3000:] for log in logs)
                    raise AssertionError(f"replay of {site_id}: {error}\n{tails}") from error
        assert killed, "the victim was never killed"
        victim.wait(10)
        for site_id, (_, _, reference) in days.items():
            assert results[site_id].kpis == reference.kpis, site_id
            assert [a.chute_map for a in results[site_id].allocations] == [
                d.event.chute_map for d in reference.decisions
            ], site_id

        # the survivor now owns every partition and has built every one of the sites
        index = processes.index(survivor)
        (body,) = _wait_split(ready[index : index + 1], logs[index : index + 1], 1)
        served = body["sites"]
        assert isinstance(served, list) and set(sites) <= set(served), served
        assert _sites_built(ports[index]) == len(served)
        assert survivor.poll() is None
    finally:
        for process in processes:
            stop_worker(process)
        for site_id in sites:
            remove_site(bootstrap, site_id)
