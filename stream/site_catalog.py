"""The site catalog's I/O: read it, follow it, write entries and tombstones.

The catalog is the compacted one-partition topic ``contracts.topics.SITES``; its record is
``contracts.sites.SiteCatalogEntry``. Writers (``chuteflow site add|remove``, the fleet bench)
call :func:`publish_site` and :func:`remove_site`. A worker started with ``--catalog`` owns one
:class:`CatalogFollower`:

1. at start, :meth:`CatalogFollower.load` reads the topic from the beginning to its end and
   builds every site (the latest entry per key; a tombstone deletes), before the faust app runs,
   so a restarted worker restores the catalog sites' table snapshots like its ``--scenario``
   ones;
2. then a thread follows the topic from there (:meth:`CatalogFollower.start`). Each new or
   changed entry is built *in that thread* (parsing, groups, ONNX session: never on the event
   loop) and handed over as a :class:`SiteChange`; the faust agent drains them between batches
   (``stream/agents.py``) and the processor serves a new site at once and a changed one from
   its next ``day_started`` (``StreamProcessor.add_site``); a tombstone drops the site and its
   table snapshot.

Every worker of a group reads the whole catalog and builds every site; it decides the sites of
the partitions it owns (``contracts/topics.py``'s partition rule), so a rebalance needs no
catalog read. An entry for a site the worker serves from ``--scenario`` is ignored (the command
line wins). A record a worker cannot use (invalid, bad YAML or layout, groups that do not fit,
a policy it cannot load) is logged with its reason and changes nothing: the worker never
crashes on a catalog record, and keeps serving the entry it had.
"""

from __future__ import annotations

import logging
import queue
import socket
import threading
import uuid
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from contracts.control import PolicyRef, PolicyRoute
from contracts.sites import (
    CatalogError,
    SiteCatalogEntry,
    decode_entry,
    encode_entry,
    make_entry,
)
from contracts.topics import SITES, message_key
from floor.errors import ChuteflowError
from stream.clients import KafkaClientConfig, as_client, produce_all
from stream.topic_reader import Record, TopicReadError, read_to_end

if TYPE_CHECKING:
    from stream.site_runtime import SiteRuntime

log = logging.getLogger("chuteflow.worker.catalog")

PRODUCER_SETTINGS = {"compression.type": "gzip", "message.max.bytes": 1_100_000}
"""An entry with groups is up to ~1 MB of base64: compressed on the wire (the broker checks the
compressed batch against its own limit)."""


class SiteCatalogError(ChuteflowError):
    """The catalog could not be read or written, or an entry is not usable; one line."""


SiteBuilder = Callable[[SiteCatalogEntry], "SiteRuntime"]
"""Turns an entry into the runtime the worker serves (``stream.worker.build_site`` with the worker's
fallback, deadline and policy fetcher); raises on an entry it cannot serve."""


@dataclass(frozen=True)
class SiteChange:
    """A catalog change for the event loop: a site to serve (``site``) or to drop (None)."""

    site_id: str
    site: SiteRuntime | None
    revision: int = 0


# --- reading and writing ----------------------------------------------------------------


@dataclass(frozen=True)
class CatalogRead:
    """The catalog as read from the beginning: the latest entry per site, the records that
    were refused (key, reason) and the offset after the last record read."""

    entries: dict[str, SiteCatalogEntry]
    refused: list[tuple[str, str]]
    next_offset: int


def _ensure(client: KafkaClientConfig, timeout_s: float) -> None:
    from stream.admin import ensure_topics

    ensure_topics(client, [SITES], timeout=timeout_s)


def fold(records: Iterable[Record]) -> CatalogRead:
    """Records of the catalog, in offset order, as compaction keeps them: the latest valid
    entry per key, a tombstone deleting it. A record that does not decode is refused and
    leaves the site's entry as it was."""
    entries: dict[str, SiteCatalogEntry] = {}
    refused: list[tuple[str, str]] = []
    next_offset = 0
    for record in records:
        next_offset = max(next_offset, record.offset + 1)
        key = record.key.decode("utf-8", "replace") if record.key is not None else "unknown"
        if record.value is None:
            entries.pop(key, None)
            continue
        try:
            entry = decode_entry(record.key, record.value)
        except CatalogError as error:
            refused.append((key, error.reason))
            continue
        entries[entry.site_id] = entry
    return CatalogRead(entries, refused, next_offset)


def read_catalog(
    bootstrap: str | KafkaClientConfig, *, timeout_s: float = 30.0, ensure: bool = True
) -> CatalogRead:
    """The catalog, read from the beginning to the end it had when the read started."""
    client = as_client(bootstrap)
    if ensure:
        _ensure(client, timeout_s)
    try:
        records = read_to_end(client, [SITES.name], timeout_s=timeout_s)
    except TopicReadError as error:
        raise SiteCatalogError(f"reading {SITES.name} at {client.bootstrap}: {error}") from None
    return fold(sorted(records, key=lambda r: r.offset))


def publish_site(
    bootstrap: str | KafkaClientConfig, entry: SiteCatalogEntry, *, timeout_s: float = 30.0
) -> None:
    """Write ``entry`` to the catalog and wait until the broker has it."""
    publish_sites(bootstrap, [entry], timeout_s=timeout_s)


def publish_sites(
    bootstrap: str | KafkaClientConfig,
    entries: Sequence[SiteCatalogEntry],
    *,
    timeout_s: float = 30.0,
) -> None:
    """Write ``entries`` to the catalog with one producer (a fleet's sites: ``bench fleet``)
    and wait until the broker has every one."""
    client = as_client(bootstrap)
    _ensure(client, timeout_s)
    records = [(SITES.name, message_key(e.site_id), encode_entry(e), 0) for e in entries]
    failure = produce_all(client, records, extra=PRODUCER_SETTINGS, timeout_s=timeout_s)
    if failure is not None:
        names = ", ".join(e.site_id for e in entries[:3]) + (", ..." if len(entries) > 3 else "")
        raise SiteCatalogError(f"writing site {names} to {SITES.name}: {failure}")


def remove_site(
    bootstrap: str | KafkaClientConfig, site_id: str, *, timeout_s: float = 30.0
) -> None:
    """Write ``site_id``'s tombstone: every ``--catalog`` worker drops the site and its state."""
    from confluent_kafka import Producer

    client = as_client(bootstrap)
    _ensure(client, timeout_s)
    failures: list[str] = []
    producer = Producer(
        client.confluent_config({"enable.idempotence": True, "acks": "all", "log_level": 0})
    )
    producer.produce(
        SITES.name,
        key=message_key(site_id),
        value=None,
        partition=0,
        on_delivery=lambda error, _m: failures.append(error.str()) if error else None,
    )
    left = producer.flush(timeout_s)
    if failures or left:
        reason = failures[0] if failures else f"not delivered within {timeout_s:g} s"
        raise SiteCatalogError(f"removing site {site_id} from {SITES.name}: {reason}")


def add_site(
    bootstrap: str | KafkaClientConfig,
    site_id: str,
    site_yaml: str,
    *,
    groups: bytes | None = None,
    policy: PolicyRef | None = None,
    timeout_s: float = 30.0,
) -> SiteCatalogEntry:
    """Publish ``site_id``'s next entry (revision: the current one + 1, or 1) and return it.
    The caller checked the site (``chuteflow site add`` does, strictly)."""
    client = as_client(bootstrap)
    current = read_catalog(client, timeout_s=timeout_s).entries.get(site_id)
    try:
        entry = make_entry(
            site_id,
            site_yaml,
            revision=1 if current is None else current.revision + 1,
            added_at=datetime.now(UTC),
            groups=groups,
            policy=policy,
            added_by=socket.gethostname(),
        )
    except CatalogError as error:
        raise SiteCatalogError(error.reason) from None
    publish_site(client, entry, timeout_s=timeout_s)
    return entry


# --- following --------------------------------------------------------------------------


class CatalogFollower:
    """A worker's view of the catalog: the sites at start, then changes as they come.

    Args:
        client: how to reach Kafka.
        build: entry -> runtime (``stream.worker.build_site`` with the worker's settings).
        pinned: site ids the worker serves from ``--scenario``; their entries are ignored.
        routes: reads the control topic's current routes (``stream.routing.read_routes``),
            so a site added while running starts on its route, as one read at start does.
    """

    def __init__(
        self,
        client: KafkaClientConfig,
        build: SiteBuilder,
        *,
        pinned: Collection[str] = (),
        routes: Callable[[], Mapping[str, PolicyRoute]] | None = None,
        poll_s: float = 0.5,
    ) -> None:
        self.client = client
        self.build = build
        self.pinned = frozenset(pinned)
        self.routes = routes
        self.poll_s = poll_s
        self.revisions: dict[str, int] = {}
        """Revision of the entry each catalog site is served from."""
        self.next_offset = 0
        self._changes: queue.SimpleQueue[SiteChange] = queue.SimpleQueue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def load(self, timeout_s: float = 30.0) -> dict[str, SiteRuntime]:
        """Every site of the catalog, built (refused entries logged and left out)."""
        read = read_catalog(self.client, timeout_s=timeout_s)
        self.next_offset = read.next_offset
        for key, reason in read.refused:
            _refused(key, None, reason)
        sites: dict[str, SiteRuntime] = {}
        for site_id, entry in sorted(read.entries.items()):
            site = self._build(entry)
            if site is not None:
                sites[site_id] = site
                self.revisions[site_id] = entry.revision
        return sites

    def start(self) -> None:
        """Follow the catalog from where :meth:`load` stopped, in a daemon thread."""
        self._thread = threading.Thread(target=self._run, name="site-catalog", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def drain(self) -> list[SiteChange]:
        """The changes since the last call, in catalog order (the event loop applies them)."""
        out = []
        while True:
            try:
                out.append(self._changes.get_nowait())
            except queue.Empty:
                return out

    def apply(self, records: Iterable[Record]) -> list[SiteChange]:
        """The changes ``records`` make (also queued for :meth:`drain`): one per tombstone of
        a site, one per entry above the served revision that builds; refused ones logged."""
        changes: list[SiteChange] = []
        for record in records:
            self.next_offset = max(self.next_offset, record.offset + 1)
            key = record.key.decode("utf-8", "replace") if record.key is not None else "unknown"
            if key in self.pinned:
                log.warning("site %s: catalog record ignored (served from --scenario)", key)
                continue
            if record.value is None:
                self.revisions.pop(key, None)
                changes.append(SiteChange(key, None))
                continue
            try:
                entry = decode_entry(record.key, record.value)
            except CatalogError as error:
                _refused(key, None, error.reason)
                continue
            if entry.revision <= self.revisions.get(entry.site_id, 0):
                continue
            site = self._build(entry)
            if site is not None:
                self.revisions[entry.site_id] = entry.revision
                changes.append(SiteChange(entry.site_id, site, entry.revision))
        self._route(changes)
        for change in changes:
            self._changes.put(change)
        return changes

    def _build(self, entry: SiteCatalogEntry) -> SiteRuntime | None:
        if entry.site_id in self.pinned:
            log.warning("site %s: catalog entry ignored (served from --scenario)", entry.site_id)
            return None
        try:
            return self.build(entry)
        except Exception as error:  # any entry a worker cannot serve: logged, never fatal
            _refused(entry.site_id, entry.revision, " ".join(str(error).split()) or repr(error))
            return None

    def _route(self, changes: list[SiteChange]) -> None:
        """Start the new sites on their current route (the control records of a site read
        before it existed were dead-lettered as unknown_site)."""
        added = [change for change in changes if change.site is not None]
        if not added or self.routes is None:
            return
        try:
            routes = self.routes()
        except Exception as error:
            log.error("site catalog: control topic not read (%s); new sites start unrouted", error)
            return
        for change in added:
            route = routes.get(change.site_id)
            if route is None or change.site is None:
                continue
            try:
                change.site.set_route(route)
            except (ChuteflowError, ValueError) as error:
                log.error("site %s: its route refused on the new entry: %s", change.site_id, error)

    def _run(self) -> None:
        from confluent_kafka import Consumer, TopicPartition

        consumer = Consumer(
            self.client.confluent_config(
                {
                    "group.id": f"chuteflow-catalog-{uuid.uuid4().hex}",
                    "enable.auto.commit": False,
                    "log_level": 0,
                }
            )
        )
        consumer.assign([TopicPartition(SITES.name, 0, self.next_offset)])
        try:
            while not self._stop.is_set():
                messages = consumer.consume(1000, self.poll_s)
                records = [
                    Record(
                        topic=SITES.name,
                        partition=0,
                        offset=int(m.offset() or 0),
                        key=m.key(),
                        value=m.value(),
                        timestamp_ms=m.timestamp()[1],
                    )
                    for m in messages
                    if m.error() is None
                ]
                if records:
                    self.apply(records)
        except Exception:  # the worker keeps serving the sites it has
            log.exception("site catalog: following %s stopped", SITES.name)
        finally:
            consumer.close()


def _refused(site_id: str, revision: int | None, reason: str) -> None:
    from stream.worker_log import log_event

    which = f"site {site_id}" + ("" if revision is None else f" revision {revision}")
    log_event(
        log,
        logging.ERROR,
        f"{which}: catalog entry refused: {reason}",
        {"event": "site_catalog_refused", "site": site_id, "revision": revision, "reason": reason},
    )


__all__ = [
    "CatalogFollower",
    "CatalogRead",
    "SiteBuilder",
    "SiteCatalogError",
    "SiteChange",
    "add_site",
    "fold",
    "publish_site",
    "read_catalog",
    "remove_site",
]
