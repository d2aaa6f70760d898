"""The site catalog's record: one site a fleet's workers serve, on ``chuteflow.sites.v1``.

One record per change, keyed by ``site_id`` (UTF-8) on a compacted one-partition topic
(``contracts.topics.SITES``); the latest record of a key is the site's entry, and a tombstone
(the key with a null value) removes the site. The record is self-contained, so a worker on
another machine needs nothing but Kafka to serve the site:

- ``site_yaml``: the site file's text (``floor/site_file.py``: scenario + ``guardrails:``);
- ``groups_npz_base64``: the site's day-type groups, the ``.npz`` bytes
  ``floor.daytypes.DayTypeGroups.save`` writes (arrays and a JSON header, read without
  pickle), base64; absent for a site whose groups ship with chuteflow (``small``, ``large``);
- ``policy``: what serves the site until the control topic routes it, a built-in or a store
  version by its full hash (the worker fetches it from the policy store), never a file path.

Who writes it: ``chuteflow site add|remove`` (``stream/site_catalog.py``), which check the site
strictly first. A worker that cannot use a record (it does not validate, its YAML or layout is
wrong) logs the reason and keeps serving what it had.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from datetime import datetime

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, model_validator

from contracts.control import PolicyRef

SITE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
"""A site id is a Kafka record key and a metric label (``floor.site_file.SITE_ID``)."""
ENTRY_FORMAT = "chuteflow.site/1"
MAX_ENTRY_BYTES = 1_000_000
"""Largest encoded entry: under the broker's default ``message.max.bytes`` (1 MiB) even before
compression. The large site's groups (21 groups x 132 intervals x 120 destinations, a 712 KB
``.npz``) make a ~953 KB entry; a bigger site needs fewer groups or a larger broker limit."""
MAX_SITE_YAML_CHARS = 256 * 1024


class CatalogError(ValueError):
    """Bytes that are not a catalog entry, or an entry too large to publish; ``reason`` is one
    line (what a worker logs, what ``chuteflow site add`` prints)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class SiteCatalogEntry(BaseModel):
    """A site in the site catalog: its site file, day-type groups and starting policy.

    The latest entry of a site_id is the site; a newer revision replaces it from the site's
    next day_started (a running day finishes on the entry it started with).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    format: str = Field(
        default=ENTRY_FORMAT,
        pattern=r"^chuteflow\.site/1$",
        description="Record format, chuteflow.site/1.",
    )
    site_id: str = Field(
        pattern=SITE_ID_PATTERN,
        description="The site's id: the record key, and the site_id of the site file and of "
        "every floor event of the site.",
    )
    site_yaml: str = Field(
        min_length=1,
        max_length=MAX_SITE_YAML_CHARS,
        description="The site file's YAML text (docs/site-format.md): layout, timing, twin "
        "physics and its guardrails section.",
    )
    groups_npz_base64: str | None = Field(
        default=None,
        description="The site's day-type groups: the bytes of a groups .npz file (arrays and "
        "a JSON header, no pickle), base64. Null: the groups shipped with chuteflow for the "
        "site's name.",
    )
    groups_sha256: str | None = Field(
        default=None,
        pattern=r"^[0-9a-f]{64}$",
        description="Hex sha256 of the decoded groups bytes; given exactly when the groups are.",
    )
    policy: PolicyRef = Field(
        default=PolicyRef(name="proportional"),
        description="What serves the site until the control topic routes it: a built-in "
        "(static, proportional) or a policy-store version by its full sha256.",
    )
    revision: int = Field(
        ge=1,
        description="Grows by one with every entry of the site; a worker ignores an entry "
        "whose revision is not above the one it serves.",
    )
    added_at: AwareDatetime = Field(description="When the entry was written (UTC).")
    added_by: str = Field(
        default="",
        max_length=256,
        description="Who wrote it (host name of the chuteflow site add that did).",
    )

    @model_validator(mode="after")
    def _groups_complete(self) -> SiteCatalogEntry:
        if (self.groups_npz_base64 is None) != (self.groups_sha256 is None):
            raise ValueError("groups_npz_base64 and groups_sha256 go together")
        if self.groups_npz_base64 is not None:
            data = _b64(self.groups_npz_base64)
            if hashlib.sha256(data).hexdigest() != self.groups_sha256:
                raise ValueError("groups_sha256 is not the sha256 of the groups bytes")
        return self

    def groups_bytes(self) -> bytes | None:
        """The groups ``.npz`` bytes (checked against ``groups_sha256`` when validated)."""
        return None if self.groups_npz_base64 is None else _b64(self.groups_npz_base64)


def _b64(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("groups_npz_base64 is not base64") from None


def make_entry(
    site_id: str,
    site_yaml: str,
    *,
    revision: int,
    added_at: datetime,
    groups: bytes | None = None,
    policy: PolicyRef | None = None,
    added_by: str = "",
) -> SiteCatalogEntry:
    """An entry from its parts (groups as raw ``.npz`` bytes); :class:`CatalogError` when the
    parts do not make a valid entry or it would not fit :data:`MAX_ENTRY_BYTES`."""
    fields: dict[str, object] = {
        "site_id": site_id,
        "site_yaml": site_yaml,
        "revision": revision,
        "added_at": added_at,
        "added_by": added_by,
    }
    if groups is not None:
        fields["groups_npz_base64"] = base64.b64encode(groups).decode("ascii")
        fields["groups_sha256"] = hashlib.sha256(groups).hexdigest()
    if policy is not None:
        fields["policy"] = policy
    try:
        entry = SiteCatalogEntry.model_validate(fields)
    except ValidationError as error:
        raise CatalogError(f"site {site_id}: {_first(error)}") from None
    encode_entry(entry)  # the size check
    return entry


def encode_entry(entry: SiteCatalogEntry) -> bytes:
    """The entry as compact UTF-8 JSON (:class:`CatalogError` over :data:`MAX_ENTRY_BYTES`)."""
    raw = entry.model_dump_json().encode("utf-8")
    if len(raw) > MAX_ENTRY_BYTES:
        raise CatalogError(
            f"site {entry.site_id}: catalog entry of {len(raw):,} bytes exceeds "
            f"{MAX_ENTRY_BYTES:,} (its day-type groups are too large: fewer groups)"
        )
    return raw


def decode_entry(key: bytes | None, raw: bytes) -> SiteCatalogEntry:
    """A catalog record's value as an entry whose ``site_id`` is the record's key.

    Raises:
        CatalogError: too large, not JSON, not the schema, or keyed as another site.
    """
    if len(raw) > MAX_ENTRY_BYTES:
        raise CatalogError(f"record of {len(raw):,} bytes exceeds {MAX_ENTRY_BYTES:,}")
    try:
        entry = SiteCatalogEntry.model_validate_json(raw)
    except ValidationError as error:
        raise CatalogError(f"invalid catalog entry: {_first(error)}") from None
    if key is not None and key != entry.site_id.encode("utf-8"):
        raise CatalogError(f"key_mismatch: record key {key[:64]!r} is not site {entry.site_id!r}")
    return entry


def _first(error: ValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "<root>"
    message = str(first["msg"]).removeprefix("Value error, ")
    return f"{where}: {message}"


SITE_RECORD_TYPES: dict[str, tuple[type[BaseModel], int]] = {
    "site_catalog_entry": (SiteCatalogEntry, 1),
}
"""The catalog's record type, with its schema version (``contracts/catalog.py`` reads it)."""

__all__ = [
    "ENTRY_FORMAT",
    "MAX_ENTRY_BYTES",
    "SITE_ID_PATTERN",
    "SITE_RECORD_TYPES",
    "CatalogError",
    "SiteCatalogEntry",
    "decode_entry",
    "encode_entry",
    "make_entry",
]
