"""Topic names, keys and partition counts: the one place the Kafka layout is declared.

Every floor topic is keyed by ``site_id`` so one site's events stay in order on one partition
and a site is decided by exactly one worker of a consumer group. More sites means more
partitions and more workers, not a rewrite. Names carry the major schema version so a breaking
change gets a new topic beside the old one.

The one exception is the policy store (:data:`POLICIES`): a compacted topic keyed by the
policy artifact's content hash (``sha256:<hex>``) and by alias (``alias:NAME@ALIAS``), read
from the beginning by whoever needs a policy (``stream/policy_store.py``,
``stream/policy_alias.py``).
The site catalog (:data:`SITES`) is the other compacted, read-from-the-beginning topic: one
entry per site a ``chuteflow worker --catalog`` serves, keyed by ``site_id``.

Partitions for a fleet (the rule)
---------------------------------
A site's records go to partition ``murmur2(site_id UTF-8) & 0x7fffffff % partitions``
(:func:`kafka_partition`, Kafka's Java default partitioner) on every site-keyed topic, so one
partition number holds every record of a site and the worker that owns that partition owns the
site (``stream/processor.py`` dead-letters a record on any other partition as
``wrong_partition``). The partition count is therefore the most workers a group can spread
sites over, and choosing it is choosing the fleet's ceiling:

1. ``partitions >= the most workers the group will ever run`` (a worker without a partition
   serves nothing); a few times that, so a rebalance can even the load out;
2. a worker holds every site of its partitions: with ``S`` sites, ``P`` partitions and ``W``
   workers a worker serves about ``S / W`` sites, but sites hash independently, so one
   partition may hold noticeably more than ``S / P``: with ``S = 60`` random ids on ``P = 6``
   the fullest partition has 14 sites at the median, 17 at the 95th percentile (mean 10);
   ``site-000``..``site-059`` land 7/8/10/10/11/14. Size a worker for its fullest partitions,
   not the mean; ``chuteflow site list`` shows each site's partition;
3. the count is fixed for the life of the topics: raising it moves most sites to another
   partition (the hash is taken modulo the count), so their state in the table changelog and
   their routes on the control topic would sit on the wrong partition. Raising it is a
   migration (new topics with a new major version, ``.v2``), never ``kafka-topics --alter``.

:data:`PARTITIONS` is 6: up to 6 workers per group, enough for the built-in and tested fleets.
A deployment that expects more workers creates the topics with more partitions from the start
(the same count on every site-keyed topic and the table changelog).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TopicSpec:
    """A topic the system owns; created explicitly (faust would auto-create with 1 partition)."""

    name: str
    partitions: int
    event_types: tuple[str, ...]
    """Event types allowed on the topic; anything else goes to the dead-letter topic."""
    key: str = "site_id"
    configs: tuple[tuple[str, str], ...] = ()
    """Topic configs set when the topic is created (``cleanup.policy=compact``, ...); an
    existing topic must have them (``stream.admin.ensure_topics``)."""
    records: tuple[str, ...] = ()
    """Record types on the topic that are not routed to it by their ``event_type`` (the shadow
    topic's ``allocation_decided``, audit records, dead letters, store records): names in
    ``contracts.catalog.MESSAGE_TYPES``, which builds the JSON Schemas and AsyncAPI from both."""
    summary: str = ""
    """What the topic carries, for integrators, plain text (the AsyncAPI channel's
    description)."""
    tuning: tuple[tuple[str, str], ...] = ()
    """Topic configs set when the topic is created but not required of an existing one (the
    changelog's compaction pace): an upgrade must not stop a worker over a topic an older
    version created (``kafka-configs --alter`` sets them there)."""


PARTITIONS = 6
"""Six partitions: at most six workers per group share the sites (the partition rule in the
module docstring; never raised on existing topics)."""

INDUCTIONS = TopicSpec(
    "chuteflow.inductions.v1",
    PARTITIONS,
    ("package_inducted",),
    summary="Floor events from the WCS: every induction of a package onto the sorter.",
)
SORTATION = TopicSpec(
    "chuteflow.sortation.v1",
    PARTITIONS,
    ("package_sorted", "package_recirculated"),
    summary="Floor events from the WCS: every package ejected into a chute, and every package "
    "that recirculated instead (with why).",
)
CHUTE_STATE = TopicSpec(
    "chuteflow.chute-state.v1",
    PARTITIONS,
    ("chute_state_changed",),
    summary="Floor events from the WCS: every eject chute state change (full, container swap, "
    "out of service and back).",
)
INTERVALS = TopicSpec(
    "chuteflow.intervals.v1",
    PARTITIONS,
    ("interval_closed", "day_started"),
    summary="The site's clock from the WCS: day_started opens a site's day (the worker "
    "decides its first allocation), interval_closed ends an interval (the worker decides the "
    "next one).",
)
ALLOCATIONS = TopicSpec(
    "chuteflow.allocations.v1",
    PARTITIONS,
    ("allocation_decided",),
    summary="The worker's decisions: one allocation per site and interval, the chute plan the "
    "WCS applies for that interval.",
)
DECISIONS_AUDIT = TopicSpec(
    "chuteflow.decisions-audit.v1",
    PARTITIONS,
    (),
    records=("decision_audit", "route_received"),
    summary="Audit trail: the inputs and solver result of every served decision, and every "
    "route a worker applied. Open records: consumers ignore fields they do not know.",
)
"""Inputs and solver result of every decision, for audit (``contracts/records.py``)."""
DEAD_LETTER = TopicSpec(
    "chuteflow.dead-letter.v1",
    PARTITIONS,
    (),
    records=("dead_letter",),
    summary="Every input record the worker refused, with the reason and the original bytes; "
    "keyed like the original (unknown when it had no key).",
)
"""Records that failed to decode or validate, with the reason and the original bytes."""

POLICIES = TopicSpec(
    "chuteflow.policies.v1",
    1,
    (),
    key="policy_version",
    configs=(("cleanup.policy", "compact"),),
    records=("policy_store_record", "policy_alias"),
    summary="The policy store: one record per registered ONNX policy, keyed sha256:<hex> of "
    "its bytes, with its metadata and the artifact, and one record per alias, keyed "
    "alias:NAME@ALIAS, naming the version the alias points at. Compacted: read from the "
    "beginning.",
)
"""The policy store: one record per registered ONNX policy, keyed ``sha256:<hex>`` of its bytes
(metadata and the artifact, JSON). Compacted, so it keeps one record per version for good
instead of deleting them after the retention time; not a contract event."""

CONTROL = TopicSpec(
    "chuteflow.control.v1",
    PARTITIONS,
    ("policy_route",),
    configs=(("cleanup.policy", "compact"),),
    summary="Policy routing per site: the whole current route (serving policy, shadows, "
    "fallback, canary) with a revision that only grows. Compacted: the latest route of every "
    "site is kept for good.",
)
"""Policy routing per site (``contracts/control.py``): keyed by site and partitioned like the
floor topics, so a site's routes reach the worker that owns the site, in order with its
records; compacted, so the latest route of every site is kept for good."""
SHADOW = TopicSpec(
    "chuteflow.shadow.v1",
    PARTITIONS,
    (),
    records=("allocation_decided",),
    summary="Shadow policies' decisions on the live state, in the allocation contract; no "
    "floor applies them (they are compared with the served ones).",
)
"""Shadow policies' decisions on the live state: ``allocation_decided`` records (the
allocation topic's contract) that no floor applies. Not in :data:`TOPIC_FOR_EVENT`: a producer
never routes an event here by its type."""

SITE_TOPICS: tuple[TopicSpec, ...] = (
    INDUCTIONS,
    SORTATION,
    CHUTE_STATE,
    INTERVALS,
    ALLOCATIONS,
    DECISIONS_AUDIT,
    DEAD_LETTER,
    CONTROL,
    SHADOW,
)
"""The topics keyed by site, with :data:`PARTITIONS` partitions: what the worker reads and
writes."""

CANARY = TopicSpec(
    "chuteflow.canary.v1",
    PARTITIONS,
    ("canary_check",),
    summary="Every canary gate check and the verdict it leads to, keyed by site, as the gate "
    "makes it (a history, not compacted); the verdict itself is a route on the control topic.",
)
"""Every canary gate check and verdict (``contracts.control.CanaryCheck``), keyed by site as it
is made; not compacted: the checks are a history (the ops page and ``policy gate`` show them),
the verdict itself is a route on :data:`CONTROL`. Written by the gate (``rollout/``), never read
by the worker."""

SITES = TopicSpec(
    "chuteflow.sites.v1",
    1,
    (),
    configs=(("cleanup.policy", "compact"),),
    records=("site_catalog_entry",),
    summary="The site catalog: one entry per site the fleet's workers serve, keyed by "
    "site_id, with the site file (layout, timing, guardrails), its day-type groups and the "
    "policy it starts on. A newer revision replaces a site from its next day; a tombstone "
    "(the key, a null value) removes it. Compacted: read from the beginning.",
)
"""The site catalog (``contracts/sites.py``): every worker started with ``--catalog`` reads
it whole from the beginning and follows it, so a site is added or removed without a restart
(``stream/site_catalog.py``). One partition: every worker reads every entry (the site is then
served by whichever worker owns its partition of the floor topics), and entries stay in one
order. Compacted, so the latest entry of every site is kept for good."""

ALL_TOPICS: tuple[TopicSpec, ...] = (*SITE_TOPICS, CANARY, POLICIES, SITES)
"""Every topic chuteflow owns (``chuteflow kafka topics`` creates them)."""

TOPIC_FOR_EVENT: dict[str, TopicSpec] = {
    event_type: spec for spec in ALL_TOPICS for event_type in spec.event_types
}


def message_key(site_id: str) -> bytes:
    """The Kafka key of every chuteflow record: the site id, UTF-8."""
    return site_id.encode("utf-8")


def kafka_partition(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner gives ``key`` (murmur2, as the Java client,
    faust/aiokafka and librdkafka's ``murmur2_random`` compute it).

    Every chuteflow producer uses this partitioner, so a site's records land on the same
    partition number in every topic whichever client wrote them, and one worker owns the site.
    """
    m, seed = 0x5BD1E995, 0x9747B28C
    h = (seed ^ len(key)) & 0xFFFFFFFF
    whole = len(key) & ~3
    for i in range(0, whole, 4):
        k = int.from_bytes(key[i : i + 4], "little")
        k = (k * m) & 0xFFFFFFFF
        k ^= k >> 24
        k = (k * m) & 0xFFFFFFFF
        h = ((h * m) & 0xFFFFFFFF) ^ k
    tail = len(key) - whole
    if tail == 3:
        h ^= key[whole + 2] << 16
    if tail >= 2:
        h ^= key[whole + 1] << 8
    if tail >= 1:
        h ^= key[whole]
        h = (h * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    h ^= h >> 15
    return (h & 0x7FFFFFFF) % partitions
