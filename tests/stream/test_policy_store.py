"""The policy store: records, references and the cache without Kafka; register, list, show,
fetch and serve against the session broker."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from chuteflow.cli import main
from contracts.topics import POLICIES
from decision.artifacts import ArtifactError, inspect_artifact, sha256_hex
from decision.build import build_engine
from floor.site import load_site
from stream.policy_store import (
    PolicyStoreError,
    fetch_policy,
    is_store_ref,
    make_record,
    parse_record,
    parse_ref,
    read_report,
    read_settings,
    read_store,
    resolve,
)
from tests.decision.test_artifacts import SHIPPED, onnx_model

UNREACHABLE = "127.0.0.1:1"


def _one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("chuteflow: ") and "\n" not in err and "Traceback" not in err, err
    return err


# --- no broker needed --------------------------------------------------------------------


def test_record_round_trip_and_references() -> None:
    data = SHIPPED.read_bytes()
    check = inspect_artifact(data)
    key, value = make_record("drmarl-small", check, data, settings={"seed": 1})
    assert key == f"sha256:{check.sha256}".encode()
    record = parse_record(key, value)
    assert record is not None
    assert record.metadata["settings"] == {"seed": 1}
    assert record.metadata["scenarios"] == ["small"]
    assert record.artifact().data == data
    assert parse_record(b"sha256:" + b"0" * 64, value) is None  # key is not its version
    assert parse_record(key, None) is None

    records = {record.sha256: record}
    assert resolve(records, f"drmarl-small@{check.sha256[:8]}") is record
    assert resolve(records, f"sha256:{check.sha256}") is record
    with pytest.raises(PolicyStoreError, match="registered as drmarl-small"):
        resolve(records, f"other@{check.sha256[:8]}")
    with pytest.raises(PolicyStoreError, match="no such version"):
        resolve(records, "drmarl-small@00000000")
    with pytest.raises(ArtifactError, match="at least 8"):
        parse_ref("drmarl-small@abc")
    assert parse_ref(f"sha256:{check.sha256}") == (None, check.sha256)
    assert is_store_ref("drmarl@0123abcd") and is_store_ref("sha256:0123abcd")
    assert not is_store_ref("proportional") and not is_store_ref("runs/x@y.onnx")


def test_attachments_are_bounded(tmp_path: Path) -> None:
    (tmp_path / "s.json").write_text('{"algo": "drmarl"}')
    (tmp_path / "r.md").write_text("# report\n")
    (tmp_path / "big.md").write_text("x" * 70_000)
    (tmp_path / "bad.json").write_text("{")
    assert read_settings(tmp_path / "s.json") == {"algo": "drmarl"}
    assert read_report(tmp_path / "r.md")["content"] == "# report\n"
    with pytest.raises(PolicyStoreError, match="at most"):
        read_report(tmp_path / "big.md")
    with pytest.raises(PolicyStoreError, match="not JSON"):
        read_settings(tmp_path / "bad.json")


def test_register_refuses_a_wrong_schema_before_connecting(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "wide.onnx"
    bad.write_bytes(onnx_model(20, 5, {"scenario": "small"}))
    argv = ["policy", "register", str(bad), "--name", "wide", "--bootstrap", UNREACHABLE]
    assert main(argv) == 2
    assert "input width 20" in _one_line_error(capsys)


def test_a_tampered_cache_file_is_refused_without_kafka(tmp_path: Path) -> None:
    data = SHIPPED.read_bytes()
    sha = sha256_hex(data)
    (tmp_path / f"{sha}.onnx").write_bytes(data[:-1] + b"\x01")
    (tmp_path / f"{sha}.json").write_text(json.dumps({"name": "drmarl-small"}))
    with pytest.raises(PolicyStoreError, match="refusing it"):
        fetch_policy(UNREACHABLE, f"sha256:{sha}", tmp_path)


# --- against the session broker ----------------------------------------------------------


def _worker_sites(monkeypatch: pytest.MonkeyPatch, argv: list[str]) -> tuple[int, dict[str, Any]]:
    """``chuteflow worker argv`` up to the faust worker, which is not started: the sites."""
    import stream.worker

    started: dict[str, Any] = {}

    def fake_run_worker(sites: dict[str, Any], *args: Any, **kwargs: Any) -> None:
        started.update(sites)

    monkeypatch.setattr(stream.worker, "run_worker", fake_run_worker)
    return main(["worker", *argv]), started


@pytest.mark.kafka
def test_register_list_show_fetch_and_serve(
    kafka_topics: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from confluent_kafka.admin import AdminClient
    from confluent_kafka.admin._config import ConfigResource
    from confluent_kafka.admin._resource import ResourceType

    # the store topic is compacted, one partition
    admin = AdminClient({"bootstrap.servers": kafka_topics})
    resource = ConfigResource(ResourceType.TOPIC, POLICIES.name)
    configs = admin.describe_configs([resource])[resource].result(timeout=10)
    assert configs["cleanup.policy"].value == "compact"

    data = SHIPPED.read_bytes()
    sha = sha256_hex(data)
    settings = SHIPPED.parent / "runs" / "drmarl-small" / "settings.json"
    report = SHIPPED.parent / "reports" / "small-evaluation.md"
    register = ["policy", "register", str(SHIPPED), "--name", "drmarl-small", "--json"]
    kafka = ["--bootstrap", kafka_topics]
    attachments = ["--settings", str(settings), "--report", str(report)]
    assert main([*register, *attachments, *kafka]) == 0
    first = json.loads(capsys.readouterr().out)
    assert main([*register, *kafka]) == 0  # the same bytes again: same version, no new record
    again = json.loads(capsys.readouterr().out)
    assert first["version"] == again["version"] == sha
    assert again["created"] is False
    assert again["registered_at"] == first["registered_at"]
    assert first["scenarios"] == ["small"] and first["size"] == len(data)
    assert first["settings"] == json.loads(settings.read_text())

    assert main(["policy", "list", "--json", *kafka]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [entry["version"] for entry in listed].count(sha) == 1
    assert main(["policy", "list", *kafka]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == ["NAME", "VERSION", "SCENARIOS", "REGISTERED_AT"]
    assert ["drmarl-small", sha[:12], "small", first["registered_at"]] in [
        row.split() for row in table
    ]
    assert main(["policy", "show", f"drmarl-small@{sha[:8]}", *kafka]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["key"] == f"sha256:{sha}"
    assert shown["report"]["content"] == report.read_text()
    assert shown["onnx_metadata"]["features"].split(",")[0] == "arrivals_lag0"
    assert shown["guardrail_versions"].keys() == {"small"}

    # fetched into an empty cache, served by build_engine
    cache = tmp_path / "cache"
    artifact = fetch_policy(kafka_topics, f"drmarl-small@{sha[:8]}", cache)
    assert (cache / f"{sha}.onnx").read_bytes() == data
    engine = build_engine(load_site("small"), artifact)
    assert (engine.policy.name, engine.policy.version) == ("drmarl-small", sha[:16])
    # a full hash is served from the cache: no broker needed
    assert fetch_policy(UNREACHABLE, f"sha256:{sha}", cache).data == data

    # the worker: fetch by NAME@PREFIX, every site's engine from those bytes
    monkeypatch.setenv("CHUTEFLOW_POLICY_CACHE", str(tmp_path / "worker-cache"))
    code, sites = _worker_sites(
        monkeypatch, ["--scenario", "small", "--policy", f"drmarl-small@{sha[:8]}", *kafka]
    )
    assert code == 0
    (site,) = sites.values()
    assert (site.engine.policy.name, site.engine.policy.version) == ("drmarl-small", sha[:16])
    # ... and refuses a tampered cached copy (one line, exit 2)
    (tmp_path / "worker-cache" / f"{sha}.onnx").write_bytes(data + b"\0")
    code, sites = _worker_sites(monkeypatch, ["--policy", f"sha256:{sha}", *kafka])
    assert code == 2 and not sites
    assert "refusing it" in _one_line_error(capsys)
    code, sites = _worker_sites(monkeypatch, ["--policy", f"drmarl-small@{sha[:8]}", *kafka])
    assert code == 2 and not sites
    assert "refusing it" in _one_line_error(capsys)

    # a wrong-schema artifact is refused at register and never reaches the store
    bad = tmp_path / "narrow.onnx"
    bad.write_bytes(onnx_model(8, 5, {"scenario": "small", "policy_name": "narrow"}))
    assert main(["policy", "register", str(bad), "--name", "narrow", *kafka]) == 2
    assert "input width 8" in _one_line_error(capsys)
    assert sha256_hex(bad.read_bytes()) not in read_store(kafka_topics)
    # an unknown version is one line too
    assert main(["policy", "show", "drmarl-small@00000000", *kafka]) == 2
    assert "no such version" in _one_line_error(capsys)
