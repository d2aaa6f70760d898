"""``floor.files.write_atomic``: the target holds the old bytes or the new ones, never a part."""

from __future__ import annotations

from pathlib import Path

import pytest

from floor.files import write_atomic


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
