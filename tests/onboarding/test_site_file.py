"""Site files: a valid one loads with its own guardrails; every invalid one is one line that
names the file and the field, and ``chuteflow site check`` exits 2 on it."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from chuteflow.cli import main
from floor.errors import ChuteflowError
from floor.site import load_site
from floor.site_file import load_site_file, write_site_file
from twin.synth_site import SynthParams, synth_scenario

PARAMS = SynthParams(
    destinations=12, chutes=20, shift_hours=6, interval_minutes=20, daily_volume=6000, seed=3
)


def _site_yaml(tmp_path: Path, **changes: object) -> Path:
    """A valid synthetic site file with top-level or ``guardrails.x`` fields changed."""
    path = write_site_file(synth_scenario(PARAMS), tmp_path / "site.yaml")
    data = yaml.safe_load(path.read_text())
    for key, value in changes.items():
        if key.startswith("guardrails."):
            data["guardrails"][key.removeprefix("guardrails.")] = value
        elif value is None:
            data.pop(key)
        else:
            data[key] = value
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_a_valid_site_file_loads_with_its_own_guardrails(tmp_path: Path) -> None:
    path = _site_yaml(tmp_path)
    site = load_site_file(path)
    assert site.scenario.eject_chutes == 20
    assert site.guardrails.version == f"{PARAMS.site_name}-1"
    assert site.guardrails.total_eject_chutes == 20
    assert site.guardrails.min_chutes_per_destination == 1  # 20 >= 1.5 x 12
    # Every room loading the scenario by path gets the same guardrails.
    assert load_site(path).guardrails == site.guardrails
    for builtin in ("small", "large"):
        assert load_site_file(builtin).scenario.name == builtin


@pytest.mark.parametrize(
    ("changes", "field", "allowed"),
    [
        ({"eject_chutes": "many"}, "eject_chutes", "integer"),
        ({"eject_chutes": 0}, "eject_chutes", "greater than 0"),
        ({"interval_minutes": 7}, "day_hours", "whole number of intervals"),
        ({"day_hours": 30, "interval_minutes": 30}, "day_hours", "<= 24"),
        ({"destinations": ["D01", "D01"]}, "destinations", "unique"),
        ({"colour": "blue"}, "colour", "Extra inputs are not permitted"),
        # a misspelled field is named as such, not as the field it was meant to be "missing"
        ({"tick_seconds": None, "tick_second": 30}, "tick_second", "did you mean tick_seconds?"),
        (
            {"guardrails.min_overide": {}},
            "guardrails.min_overide",
            "did you mean min_overrides?",
        ),
        (
            {"guardrails.max_moves_per_interval": -1},
            "guardrails.max_moves_per_interval",
            "greater than or equal to 0",
        ),
        ({"guardrails.min_overrides": {"D99": 1}}, "guardrails.min_overrides.D99", "not one of"),
        (
            {"guardrails.min_chutes_per_destination": 2},
            "guardrails.min_chutes_per_destination",
            "guaranteed chutes exceed eject_chutes (24 guaranteed > 20 chutes",
        ),
        (
            {"guardrails.total_eject_chutes": 21},
            "guardrails.total_eject_chutes",
            "must equal eject_chutes (21 != 20)",
        ),
        (
            {"induction_stations": 1, "station_packages_per_hour": 500},
            "induction_stations",
            "cannot induct",
        ),
        ({"chute_packages_per_minute": 0.5}, "eject_chutes", "cannot eject"),
        ({"site_id": "a b"}, "site_id", "Kafka record key"),
        ({"guardrails": None}, "guardrails", "missing"),
    ],
)
def test_every_invalid_field_is_one_line_naming_file_and_field(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    changes: dict[str, object],
    field: str,
    allowed: str,
) -> None:
    path = _site_yaml(tmp_path, **changes)
    with pytest.raises(ChuteflowError) as raised:
        load_site_file(path)
    message = str(raised.value)
    assert message.startswith(f"{path}: {field}: "), message
    assert allowed in message, message
    assert "\n" not in message
    (tmp_path / "history").mkdir()
    code = main(["site", "check", "--site", str(path), "--history", str(tmp_path / "history")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.strip().splitlines() == [f"chuteflow: {message}"]


def test_malformed_yaml_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "site.yaml"
    path.write_text("name: x\neject_chutes: [1, 2\n")
    (tmp_path / "history").mkdir()
    code = main(["site", "check", "--site", str(path), "--history", str(tmp_path / "history")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith(f"chuteflow: {path}: not valid YAML"), err
    path.write_text("- just\n- a list\n")
    assert main(["site", "check", "--site", str(path), "--history", str(tmp_path)]) == 2
    assert "expected a mapping" in capsys.readouterr().err
