"""``floor.files``: a file holds the old bytes or the new ones, never a part; an output folder is
an earlier output replaced whole or a new one, never a mix, and never someone else's files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from floor.files import OutputFolderError, output_folder, write_atomic


def test_write_atomic_replaces_whole_and_leaves_nothing_beside(tmp_path: Path) -> None:
    target = tmp_path / "journal.json"
    write_atomic(target, "old")
    write_atomic(target, b"new bytes")
    assert target.read_bytes() == b"new bytes"
    assert [p.name for p in tmp_path.iterdir()] == ["journal.json"]


def test_a_failed_write_leaves_the_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "journal.json"
    write_atomic(target, "old")

    def full_disk(self: Path, data: str) -> int:
        self.write_bytes(data[:2].encode())  # a part written, then the failure
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "write_text", full_disk)
    with pytest.raises(OSError, match="No space"):
        write_atomic(target, "new and longer")
    assert target.read_text() == "old"


def _record(folder: Path, key: str = "entries") -> None:
    """What the test's command writes beside its files: the list of them."""
    files = [p.name for p in folder.iterdir() if p.name != "made.json"]
    (folder / "made.json").write_text(json.dumps({key: [{"file": name} for name in files]}))


def _listed(record: dict[str, list[dict[str, str]]]) -> set[str]:
    return {entry["file"] for entry in record["entries"]}


def test_an_output_folder_replaces_an_earlier_output_whole(tmp_path: Path) -> None:
    out = tmp_path / "history"
    with output_folder(out, "made.json", _listed) as building:
        assert building != out and not out.exists()
        (building / "2023-01-02.csv").write_text("first")
        (building / "2023-01-03.csv").write_text("first")
        _record(building)
    with output_folder(out, "made.json", _listed) as building:
        (building / "2023-01-02.csv").write_text("second")  # one day this time
        _record(building)
    assert sorted(p.name for p in out.iterdir()) == ["2023-01-02.csv", "made.json"]
    assert (out / "2023-01-02.csv").read_text() == "second"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["history"]  # nothing left beside


def test_an_output_folder_that_fails_leaves_the_earlier_one(tmp_path: Path) -> None:
    out = tmp_path / "history"
    with output_folder(out, "made.json", _listed) as building:
        (building / "day.csv").write_text("kept")
        _record(building)
    with pytest.raises(KeyboardInterrupt), output_folder(out, "made.json", _listed) as building:
        (building / "day.csv").write_text("half")
        raise KeyboardInterrupt
    assert (out / "day.csv").read_text() == "kept"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["history"]


def test_an_output_folder_refuses_files_it_did_not_write(tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("a user's file")
    with (
        pytest.raises(OutputFolderError, match="did not write"),
        output_folder(mine, "made.json", _listed),
    ):
        pass
    _record(mine, key="hashes")  # a record of that name from another command
    with (
        pytest.raises(OutputFolderError, match="did not write"),
        output_folder(mine, "made.json", _listed),
    ):
        pass
    assert (mine / "notes.txt").read_text() == "a user's file"
    out = tmp_path / "history"  # an earlier output, and a file a user put in it since
    with output_folder(out, "made.json", _listed) as building:
        (building / "day.csv").write_text("kept")
        _record(building)
    (out / "notes.txt").write_text("a user's file")
    with (
        pytest.raises(OutputFolderError, match=r"did not write \(notes.txt\)"),
        output_folder(out, "made.json", _listed),
    ):
        pass
    assert sorted(p.name for p in out.iterdir()) == ["day.csv", "made.json", "notes.txt"]
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    with (
        pytest.raises(OutputFolderError, match="not a folder"),
        output_folder(a_file, "made.json", _listed),
    ):
        pass
    empty = tmp_path / "empty"
    empty.mkdir()
    with output_folder(empty, "made.json", _listed) as building:
        (building / "day.csv").write_text("new")
    assert [p.name for p in empty.iterdir()] == ["day.csv"]
