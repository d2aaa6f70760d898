"""``policy canary``, ``policy gate`` and ``policy history`` on a real broker, at the edges an
operator meets: a canary no gate could judge is refused before it opens, a canary open on a
site the gate cannot watch is never reported as "no canary open", canaries that ended before a
watcher started are not reported (nor written to the canary topic) again by each new watcher,
and the history of a site the broker never saw is an error, not two empty headings."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from chuteflow.cli import main
from chuteflow.cli.site import _site_text
from contracts.topics import CANARY
from stream.routing import read_routes
from stream.topic_reader import read_to_end

pytestmark = [pytest.mark.kafka]


def _site(tmp_path: Path, name: str = "small") -> tuple[str, Path]:
    """A copy of the small site under a fresh id (routes are compacted, never deleted)."""
    site_id = f"site-cli-{uuid.uuid4().hex[:8]}"
    text, _ = _site_text("small", site_id)
    path = tmp_path / f"{site_id}.yaml"
    path.write_text(text.replace("name: small", f"name: {name}"))
    return site_id, path


def _canary_records(bootstrap: str, site_id: str) -> int:
    return sum(1 for r in read_to_end(bootstrap, [CANARY.name]) if r.key == site_id.encode())


def test_a_canary_the_gate_cannot_judge_is_refused_before_it_opens(
    kafka_topics: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    kafka = ["--bootstrap", kafka_topics]
    site_id, _ = _site(tmp_path)
    assert main(["policy", "route", "--site", site_id, "--serve", "proportional", *kafka]) == 0
    canary = ["policy", "canary", "static", "--sites", site_id, "--no-watch", "--no-wait"]
    capsys.readouterr()
    # --no-watch opened it, and no `policy gate` could ever judge it: its layout is unknown
    assert main([*canary, *kafka]) == 2
    assert "give --scenario" in capsys.readouterr().err
    # a layout without day-type groups: the gate would fail at the site's next day
    _, bare = _site(tmp_path, name="nogroups")
    bare_site = bare.read_text().replace(f"site_id: {bare.stem}", f"site_id: {site_id}")
    bare.write_text(bare_site)
    assert main([*canary, "--scenario", str(bare), *kafka]) == 2
    assert "the gate needs its day-type groups" in capsys.readouterr().err
    assert read_routes(kafka_topics)[site_id].canary is None  # nothing was opened


def test_the_gate_names_open_canaries_it_cannot_watch_and_not_old_ones(
    kafka_topics: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    kafka = ["--bootstrap", kafka_topics]
    site_id, path = _site(tmp_path)
    scenario = ["--scenario", str(path)]
    assert main(["policy", "route", "--site", site_id, "--serve", "proportional", *kafka]) == 0
    canary = ["policy", "canary", "static", "--sites", site_id, "--no-watch", "--no-wait"]
    assert main([*canary, *scenario, *kafka]) == 0
    gate = ["policy", "gate", "--timeout-seconds", "1", *kafka]
    capsys.readouterr()
    # without the site's layout: it said "no canary open on the watched sites", exit 0
    assert main(gate) == 2
    out, err = capsys.readouterr()
    # (other tests' sites on the session broker may be named in the same line)
    assert "canary open on " in err and site_id in err and ", not watched" in err, err
    assert "no canary open" not in out
    assert main(["policy", "abort", "--site", site_id, "--no-wait", *kafka]) == 0
    written = _canary_records(kafka_topics, site_id)
    capsys.readouterr()
    # the canary ended before this watcher started: not reported as ended, not written again
    code = main([*gate, *scenario])
    out, err = capsys.readouterr()
    assert site_id not in out + err and "ended" not in out, (out, err)
    # 0, or 2 where another test's site on the session broker has a canary open
    assert code == (2 if ", not watched" in err else 0), (code, err)
    assert _canary_records(kafka_topics, site_id) == written


def test_history_of_a_site_the_broker_never_saw_is_an_error(
    kafka_topics: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A mistyped site printed two empty headings and exit 0."""
    kafka = ["--bootstrap", kafka_topics]
    site_id, _ = _site(tmp_path)
    capsys.readouterr()
    assert main(["policy", "history", "--site", site_id, *kafka]) == 2
    assert f"site {site_id}: no route and no decision on the broker" in capsys.readouterr().err
    assert main(["policy", "route", "--site", site_id, "--serve", "proportional", *kafka]) == 0
    capsys.readouterr()
    assert main(["policy", "history", "--site", site_id, *kafka]) == 0
    assert "revision    1" in capsys.readouterr().out
