"""``site onboard --register`` end to end on a real broker: the bundle's policy is registered
and routed in shadow on the site; a worker serving the bundle's site file decides a replayed
held-out day of the site's history; ``shadow report`` then shows the policy's counterfactual
day, and its recirculation lies inside ``simulate``'s seed range for that policy on that day.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from chuteflow.cli import main
from replay.workers import start_worker, stop_worker
from tests.onboarding.onboard_site import SITE, make_site

pytestmark = [pytest.mark.kafka, pytest.mark.slow]
SIM_SEEDS = range(5)


def _json(capsys: pytest.CaptureFixture[str], argv: list[str]) -> dict[str, object]:
    capsys.readouterr()
    assert main(argv) == 0
    value = json.loads(capsys.readouterr().out)
    assert isinstance(value, dict)
    return value


def test_a_registered_bundle_shadows_within_simulates_seed_range(
    kafka_topics: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bootstrap = kafka_topics
    monkeypatch.setenv("CHUTEFLOW_POLICY_CACHE", str(tmp_path / "cache"))
    site_id = f"site-onboard-{uuid.uuid4().hex[:8]}"  # routes are compacted: a fresh site
    site, history = make_site(tmp_path / "site", text=SITE.replace("site-tiny", site_id))
    bundle = tmp_path / "bundle"
    argv = ["site", "onboard", "--site", str(site), "--history", str(history)]
    argv += ["--out", str(bundle), "--quick", "--workers", "1", "--register"]
    argv += ["--name", "tiny-onboarded", "--bootstrap", bootstrap]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert f"next: chuteflow shadow report --site {site_id} --scenario {bundle}/site.yaml" in (
        printed
    )
    manifest = json.loads((bundle / "manifest.json").read_text())
    policy = bundle / manifest["selection"]["policy"]

    capsys.readouterr()
    assert main(["policy", "routes", "--json", "--bootstrap", bootstrap]) == 0
    routes = {r["site_id"]: r for r in json.loads(capsys.readouterr().out)}
    route = routes[site_id]
    assert route["serving"]["name"] == "proportional"
    assert [s["name"] for s in route["shadows"]] == ["tiny-onboarded"]

    heldout = manifest["split"]["heldout"]
    day_file = history / f"{heldout['first']}.csv"  # a held-out day: never tuned on
    site_file = str(bundle / "site.yaml")
    worker = start_worker(
        bootstrap,
        [site_file],
        tmp_path / "worker",
        app_id=f"onboard-{uuid.uuid4().hex[:8]}",
        extra=["--inference-deadline-ms", "5000"],
    )
    try:
        replay = ["replay", "--scenario", site_file, "--day", str(day_file), "--seed", "0"]
        _json(capsys, [*replay, "--speed", "max", "--json", "--bootstrap", bootstrap])
    finally:
        stop_worker(worker)

    report = _json(
        capsys,
        [
            "shadow", "report", "--site", site_id, "--scenario", site_file, "--json",
            "--plot", str(tmp_path / "plots"), "--bootstrap", bootstrap,
        ],
    )  # fmt: skip
    assert report["complete"], report
    rows = report["rows"]
    assert isinstance(rows, list)
    shadow = [r for r in rows if r["source"] == "twin" and "tiny-onboarded" in r["label"]]
    assert len(shadow) == 1, rows
    rate = float(shadow[0]["recirculation_rate"])

    simulated = []
    for seed in SIM_SEEDS:
        kpis = _json(
            capsys,
            [
                "simulate", "--scenario", site_file, "--day", str(day_file),
                "--policy", str(policy), "--seed", str(seed), "--json",
            ],
        )  # fmt: skip
        simulated.append(float(str(kpis["recirculation_rate"])))
    low, high = min(simulated), max(simulated)
    print(f"shadow {rate:.4f}, simulate seeds {SIM_SEEDS}: {low:.4f}..{high:.4f}")
    assert low <= rate <= high, f"shadow {rate:.4f} outside simulate's {low:.4f}..{high:.4f}"


def test_register_without_the_route_topic_is_refused_before_anything_runs(
    kafka_topics: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A broker without chuteflow's topics used to train the whole run, register the policy,
    then fail at the route (exit 2, a policy registered and not shadowed). Now it is one line
    naming the command that creates them, and nothing is written. The session broker has the
    topics, so the route topic is renamed to one it lacks."""
    import dataclasses

    import contracts.topics

    missing = dataclasses.replace(contracts.topics.CONTROL, name="chuteflow.nowhere.v1")
    monkeypatch.setattr(contracts.topics, "CONTROL", missing)
    site, history = make_site(tmp_path / "site")
    bundle = tmp_path / "bundle"
    argv = ["site", "onboard", "--site", str(site), "--history", str(history)]
    argv += ["--out", str(bundle), "--quick", "--workers", "1", "--register"]
    capsys.readouterr()
    assert main([*argv, "--bootstrap", kafka_topics]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"chuteflow: topic chuteflow.nowhere.v1 does not exist at {kafka_topics} "
        "(create the topics: chuteflow kafka topics)"
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["site"]  # no bundle, no .partial


def test_a_broker_lost_at_registration_leaves_a_complete_bundle_and_a_rerun_registers(
    kafka_topics: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The broker answers at the start and is gone when the run registers (what a stopped
    broker gave: the policy store's producer failing). The bundle is complete, the operator is
    told to rerun, and the rerun reuses every stage and registers. The loss is the one seam
    here: the session broker cannot be stopped under the other tests."""
    import chuteflow.cli.onboard as onboard
    from stream.admin import TopicAdminError

    def broker_gone(*_: object) -> int:
        raise TopicAdminError("creating chuteflow.policies.v1: Local: Broker transport failure")

    site_id = f"site-lost-{uuid.uuid4().hex[:8]}"
    site, history = make_site(tmp_path / "site", text=SITE.replace("site-tiny", site_id))
    bundle = tmp_path / "bundle"
    argv = ["site", "onboard", "--site", str(site), "--history", str(history)]
    argv += ["--out", str(bundle), "--quick", "--workers", "1", "--register"]
    argv += ["--bootstrap", kafka_topics]
    with monkeypatch.context() as lost:
        lost.setattr(onboard, "_register", broker_gone)
        capsys.readouterr()
        assert main(argv) == 2
    out, err = capsys.readouterr()
    assert f"chuteflow: {site}: creating chuteflow.policies.v1: Local: Broker transport" in err
    assert f"not registered: {bundle} is complete; rerun the same command" in out
    assert (bundle / "manifest.json").is_file()
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "resumed: skipped split, groups, train, select, evaluate, bundle" in out
    assert f"next: chuteflow shadow report --site {site_id}" in out


def test_registering_again_keeps_the_sites_shadows_and_an_open_canary(
    kafka_topics: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A second ``--register`` on a routed site wrote ``policy shadow`` with its own policy
    alone: the operator's other shadows went, and during a canary the canary itself went (the
    candidate served on with no gate). Now the other shadows stay, the earlier version of the
    name is replaced, and the canary with its incumbent in shadow stays open. ``policy route``
    over an open canary is refused, as ``policy canary`` over one is."""
    kafka = ["--bootstrap", kafka_topics]
    site_id = f"site-again-{uuid.uuid4().hex[:8]}"
    site, history = make_site(tmp_path / "site", text=SITE.replace("site-tiny", site_id))
    onboard = ["site", "onboard", "--site", str(site), "--history", str(history), "--quick"]
    onboard += ["--workers", "1", "--register", "--name", "tiny-onboarded", *kafka]

    def route() -> dict[str, Any]:
        capsys.readouterr()
        assert main(["policy", "routes", "--json", *kafka]) == 0
        by_site = {r["site_id"]: r for r in json.loads(capsys.readouterr().out)}
        found: dict[str, Any] = by_site[site_id]
        return found

    def labels(refs: list[dict[str, Any]]) -> list[str]:
        return [r["name"] if r["sha256"] is None else f"{r['name']}@{r['sha256']}" for r in refs]

    assert main([*onboard, "--out", str(tmp_path / "b1")]) == 0
    (first,) = labels(route()["shadows"])
    assert first.startswith("tiny-onboarded@")
    shadow = ["policy", "shadow", "--site", site_id, "--no-wait", *kafka]
    assert main([*shadow, "static", first]) == 0
    # the bundle's site file: the gate needs the site's groups, which are beside it
    bundled = str(tmp_path / "b1" / "site.yaml")
    canary = ["policy", "canary", "proportional", "--sites", site_id, "--scenario", bundled]
    assert main([*canary, "--incumbent", "static", "--no-watch", "--no-wait", *kafka]) == 0
    before = route()
    assert before["canary"] is not None and before["serving"]["name"] == "proportional"

    assert main([*onboard, "--out", str(tmp_path / "b2"), "--episodes", "3"]) == 0
    after = route()
    assert after["action"] == "shadow" and after["canary"] == before["canary"]
    assert after["serving"] == before["serving"]
    static, second = labels(after["shadows"])
    assert static == "static" and second.startswith("tiny-onboarded@") and second != first
    # a route over the open canary would end it with no verdict: refused, nothing written
    capsys.readouterr()
    assert main(["policy", "route", "--site", site_id, "--serve", "static", *kafka]) == 2
    assert "a canary of proportional against static is open" in capsys.readouterr().err
    assert route() == after
    assert main(["policy", "abort", "--site", site_id, "--no-wait", *kafka]) == 0  # tidy
