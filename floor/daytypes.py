"""Day-type groups as data: each group's per-(interval, destination) share of a day's volume.

What a site *has* (loaded from the shipped ``.npz`` next to its scenario) lives here, on the
ground floor, so the worker can build a day plan without importing the twin; how groups are
*fitted* from history and how a day is *sampled* from one are the twin's (``twin/groups.py``).
Files are ``.npz`` without pickle (``allow_pickle=False``); members and metadata travel as a
JSON string inside the archive.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from floor.errors import ChuteflowError
from floor.scenario import SCENARIO_DIR, Scenario

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
"""numpy's ``datetime64[D]`` counts days from 1970-01-01."""

FORMAT_VERSION = 1


def normalize_rows(counts: npt.NDArray[np.int64] | FloatArray) -> FloatArray:
    """[n_intervals, D] per-interval shares; an empty interval falls back to the day's mix.

    The fallback keeps ``expected_share`` rows summing to 1 even for an interval with no
    inductions (a quiet start on a file day), which the twin's planner requires.
    """
    values = np.asarray(counts, dtype=np.float64)
    totals = values.sum(axis=1, keepdims=True)
    overall = values.sum(axis=0)
    fallback = (
        overall / overall.sum()
        if overall.sum() > 0
        else np.full(values.shape[1], 1.0 / values.shape[1])
    )
    with np.errstate(invalid="ignore", divide="ignore"):
        shares = np.where(totals > 0, values / np.where(totals > 0, totals, 1.0), fallback)
    return shares.astype(np.float64)


class GroupsError(ChuteflowError):
    """A groups file that cannot be used, or groups that do not fit the scenario."""


@dataclass(frozen=True)
class DayTypeGroups:
    """Day-type groups of one site: each group's per-(interval, destination) distribution."""

    scenario: str
    """Name of the scenario the groups were fitted for."""
    probs: FloatArray
    """[G, n_intervals, D] each group's share of the day's inductions; each [g] sums to 1."""
    volume_mean: FloatArray
    """[G] mean daily first inductions of the group's days."""
    volume_std: FloatArray
    """[G] standard deviation of the daily volume (0 for a one-day group)."""
    members: tuple[tuple[str, ...], ...]
    """Per group, the labels (dates or file names) of its days."""
    meta: Mapping[str, Any] = field(default_factory=dict)
    """JSON-ready provenance: seeds, history span, feature weights."""

    @property
    def n_groups(self) -> int:
        return int(self.probs.shape[0])

    def expected_share(self, g: int) -> FloatArray:
        """[n_intervals, D] group ``g``'s share within each interval (rows sum to 1)."""
        return normalize_rows(self.probs[g])

    @cached_property
    def shares(self) -> FloatArray:
        """[G, n_intervals, D] every group's :meth:`expected_share`, made once (every day plan
        carries them; ``floor/forecast.py``)."""
        return np.stack([self.expected_share(g) for g in range(self.n_groups)])

    @cached_property
    def sqrt_probs(self) -> FloatArray:
        """[G, n_intervals, D] square roots of :attr:`probs` (the Hellinger distance of
        ``twin.groups.nearest_group``), made once."""
        return np.sqrt(self.probs)

    @cached_property
    def log_volume(self) -> FloatArray:
        """[G] log of each group's mean daily volume (at least 1), made once."""
        return np.log(np.maximum(self.volume_mean, 1.0))

    @cached_property
    def calendar(self) -> IntArray:
        """[5, N] ordinal date, group, weekday, month and day of year of every member day whose
        label is an ISO date (a day-file name carries no calendar), made once."""
        ordinals: list[int] = []
        labels: list[int] = []
        for g, days in enumerate(self.members):
            for label in days:
                try:
                    ordinals.append(date.fromisoformat(label[:10]).toordinal())
                except ValueError:
                    continue
                labels.append(g)
        # Weekday, month and day of year from the ordinals in numpy: a site's first day start
        # made them per member day in Python (~2.5 ms a site of two years' history, paid by
        # every site of a fleet whose days open together; bench fleet).
        ordinal = np.asarray(ordinals, dtype=np.int64)
        dates = (ordinal - _EPOCH_ORDINAL).astype("datetime64[D]")
        month = dates.astype("datetime64[M]").astype(np.int64) % 12 + 1
        year_start = dates.astype("datetime64[Y]").astype("datetime64[D]")
        in_year = (dates - year_start).astype(np.int64) + 1
        weekday = (ordinal + 6) % 7  # date.weekday(): the ordinal 1 (0001-01-01) is a Monday
        return np.stack([ordinal, np.asarray(labels, dtype=np.int64), weekday, month, in_year])

    def check_fits(self, scenario: Scenario) -> None:
        """Raise ``GroupsError`` when the groups' shape does not match ``scenario``."""
        shape = (scenario.n_intervals, scenario.n_destinations)
        if self.probs.shape[1:] != shape:
            raise GroupsError(
                f"groups for '{self.scenario}' have shape {self.probs.shape[1:]}, "
                f"scenario '{scenario.name}' needs {shape}"
            )

    def save(self, path: str | Path) -> None:
        """Write a compressed ``.npz``; probabilities as float32 to keep shipped files small."""
        header = {
            "format_version": FORMAT_VERSION,
            "scenario": self.scenario,
            "members": [list(m) for m in self.members],
            "meta": dict(self.meta),
        }
        with Path(path).open("wb") as handle:
            np.savez_compressed(
                handle,
                probs=self.probs.astype(np.float32),
                volume_mean=self.volume_mean.astype(np.float64),
                volume_std=self.volume_std.astype(np.float64),
                header=np.array(json.dumps(header, sort_keys=True)),
            )

    @classmethod
    def from_bytes(cls, data: bytes, where: str) -> DayTypeGroups:
        """The groups of a file's bytes (a site catalog entry's), as :meth:`load` reads them;
        errors name ``where``."""
        return cls.load(io.BytesIO(data), where)

    @classmethod
    def load(cls, path: str | Path | io.BytesIO, where: str | None = None) -> DayTypeGroups:
        """Read a file written by ``save``; never unpickles."""
        source = path if isinstance(path, io.BytesIO) else Path(path)
        path = where or str(path)
        try:
            with np.load(source, allow_pickle=False) as data:
                probs = data["probs"].astype(np.float64)
                volume_mean = data["volume_mean"].astype(np.float64)
                volume_std = data["volume_std"].astype(np.float64)
                header = json.loads(str(data["header"]))
        except (OSError, KeyError, ValueError) as error:
            raise GroupsError(f"{path}: not a day-type groups file: {error}") from None
        if header.get("format_version") != FORMAT_VERSION or probs.ndim != 3:
            raise GroupsError(f"{path}: unsupported groups file format")
        # float32 storage: renormalize so each group's matrix sums to 1 in float64 again.
        probs /= probs.sum(axis=(1, 2), keepdims=True)
        return cls(
            scenario=str(header["scenario"]),
            probs=probs,
            volume_mean=volume_mean,
            volume_std=volume_std,
            members=tuple(tuple(str(x) for x in m) for m in header["members"]),
            meta=header.get("meta", {}),
        )


def default_groups_path(name: str) -> Path:
    return SCENARIO_DIR / f"groups-{name}.npz"


def site_groups_path(scenario: Scenario) -> Path:
    """Where ``scenario``'s groups live: ``groups-<name>.npz`` beside its YAML file when it was
    loaded from one that has them (an onboarded site's bundle), else the shipped file."""
    if scenario.source_dir is not None:
        beside = scenario.source_dir / f"groups-{scenario.name}.npz"
        if beside.is_file():
            return beside
    return default_groups_path(scenario.name)


def default_groups(scenario: Scenario) -> DayTypeGroups:
    """The groups of a site (:func:`site_groups_path`), checked against its shape (read once
    per process: every day's plan needs them)."""
    path = site_groups_path(scenario)
    if not path.is_file():
        raise GroupsError(
            f"{path}: no default groups for scenario '{scenario.name}'; "
            "fit some with `chuteflow days fit-groups`"
        )
    groups = _load_shipped(str(path))
    groups.check_fits(scenario)
    return groups


@lru_cache(maxsize=8)
def _load_shipped(path: str) -> DayTypeGroups:
    return DayTypeGroups.load(path)
