"""docker-compose.yml kept true without Docker: every chuteflow service's exact command line,
run here in the compose order against a real broker, and the services checked to agree.

There is no Docker daemon in CI, so compose itself never runs here. What can drift is what
the chuteflow services say: a worker serving another site than the replay sends (the replay
then waits for allocations that never come), a route for a site nobody serves, a metrics port
Prometheus does not scrape, a topic list of its own. So this test reads the file with yaml,
takes each service whose image is the app image, and runs its ``command`` as compose would
(``$$`` is compose's escaped ``$``; the list is the argv, no shell unless the command is one),
with the service's environment and ``KAFKA_BOOTSTRAP_SERVERS`` pointing at a broker here,
``chuteflow`` and ``python`` from this checkout's venv: the one-shots in ``depends_on`` order,
the worker in the background until its compose healthcheck (the same command) passes, then the
replay. The replay must finish and its KPIs must equal ``chuteflow simulate`` of the same day
under the policy the compose route serves.

The broker is a fresh one of its own (``localkafka``, free port, temporary state directory),
not the session's: compose starts from an empty cluster, and its exact commands (the worker's
fixed group id from the earliest offsets, the site's first route) mean what they mean only
there. It is stopped by PID at the end, and so is the worker.
"""

from __future__ import annotations

import json
import os
import shlex
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from contracts.topics import ALL_TOPICS
from floor.scenario import load_scenario

REPO = Path(__file__).resolve().parents[2]
COMPOSE: dict[str, Any] = yaml.safe_load((REPO / "docker-compose.yml").read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
APP_IMAGE = "chuteflow:local"
VENV_BIN = Path(sys.executable).parent


def app_services() -> dict[str, dict[str, Any]]:
    """The services that run the app image, by name."""
    return {name: s for name, s in SERVICES.items() if s.get("image") == APP_IMAGE}


def interpolate(text: str) -> str:
    """Compose's variable interpolation, as far as the file may use it: ``$$`` is a literal
    ``$``. Any other ``$`` would be a variable from the deploying shell: not allowed, the
    services must run as written."""
    unescaped = text.replace("$$", "")
    assert "$" not in unescaped, f"compose variable in {text!r}: the file must not need one"
    return text.replace("$$", "$")


def argv(name: str) -> list[str]:
    command = app_services()[name]["command"]
    assert isinstance(command, list), f"{name}: command as a list (exec form)"
    return [interpolate(str(word)) for word in command]


def words(name: str) -> list[str]:
    """The service's command as words, a shell script's too (``sh -ec SCRIPT``)."""
    command = argv(name)
    if command[:2] == ["sh", "-ec"]:
        return shlex.split(command[2])
    return command


def flag(name: str, option: str, default: str | None = None) -> str | None:
    found = words(name)
    return found[found.index(option) + 1] if option in found else default


def compose_order() -> list[str]:
    """The app services in an order compose may start them: each after what it depends on."""
    services = app_services()
    done: list[str] = []
    while len(done) < len(services):
        ready = [
            name
            for name, service in services.items()
            if name not in done
            and all(d in done or d not in services for d in service.get("depends_on", {}))
        ]
        assert ready, f"depends_on has a cycle among {sorted(set(services) - set(done))}"
        done += sorted(ready)
    return done


# --- what every service must agree on (no broker needed) -----------------------------------


def test_the_services_agree_on_site_group_topics_and_ports() -> None:
    services = app_services()
    assert {"topics", "policy-register", "policy-route", "worker", "replay", "ops"} <= set(services)
    worker, replay = words("worker"), words("replay")
    assert worker[:2] == ["chuteflow", "worker"] and replay[:2] == ["chuteflow", "replay"]

    # One site: what the worker serves is what the replay sends and what the route routes.
    served = [worker[i + 1] for i, w in enumerate(worker) if w == "--scenario"]
    assert served == [flag("replay", "--scenario")] == ["large"]
    site = load_scenario(served[0]).site_id
    assert flag("replay", "--site", site) == site
    assert flag("policy-route", "--site") == site
    assert words("policy-route")[:3] == ["chuteflow", "policy", "route"]
    registered = words("policy-register")
    assert registered[:3] == ["chuteflow", "policy", "register"]
    assert flag("policy-register", "--scenario") == served[0]
    assert flag("policy-register", "--name") == flag("policy-route", "--serve") == "drmarl-large"
    assert flag("policy-route", "--fallback") == flag("worker", "--fallback-policy")

    # One worker group: the topics one-shot creates that group's table changelog.
    assert words("topics")[:3] == ["chuteflow", "kafka", "topics"]
    assert flag("topics", "--app-id") == flag("worker", "--app-id", "chuteflow-worker")

    # One broker: every app service reaches the kafka service's in-network listener.
    advertised = SERVICES["kafka"]["environment"]["KAFKA_ADVERTISED_LISTENERS"]
    for name, service in services.items():
        bootstrap = service["environment"]["KAFKA_BOOTSTRAP_SERVERS"]
        assert f"//{bootstrap}" in advertised, name

    # Start order: broker, topics, register, route, worker (healthy), replay.
    order = compose_order()
    assert order.index("topics") < order.index("policy-register") < order.index("policy-route")
    assert order.index("policy-route") < order.index("worker") < order.index("replay")
    assert services["replay"]["depends_on"]["worker"]["condition"] == "service_healthy"

    # One metrics port: the worker serves it, its healthcheck asks it, Prometheus scrapes it.
    port = flag("worker", "--metrics-port")
    assert f"127.0.0.1:{port}/readyz" in " ".join(services["worker"]["healthcheck"]["test"])
    scrape = yaml.safe_load((REPO / "deploy/prometheus/prometheus.yml").read_text())
    targets = [
        t for job in scrape["scrape_configs"] for c in job["static_configs"] for t in c["targets"]
    ]
    ops_port = flag("ops", "--port")
    assert targets == [f"worker:{port}", f"ops:{ops_port}"]

    # The ops page: the worker's metrics, its own port published, healthcheck and scrape.
    assert words("ops")[:3] == ["chuteflow", "ops", "serve"]
    assert flag("ops", "--worker-metrics") == f"http://worker:{port}"
    assert flag("ops", "--host") == "0.0.0.0"  # Prometheus reaches it from its container
    assert services["ops"]["ports"] == [f"127.0.0.1:{ops_port}:{ops_port}"]
    assert f"127.0.0.1:{ops_port}/healthz" in " ".join(services["ops"]["healthcheck"]["test"])
    assert "ops" in SERVICES["prometheus"]["depends_on"]


def test_prometheus_and_grafana_mount_what_deploy_provides() -> None:
    prometheus, grafana = SERVICES["prometheus"], SERVICES["grafana"]
    assert prometheus["image"].startswith("prom/prometheus:")
    assert grafana["image"].startswith("grafana/grafana-oss:")
    mounts = {}
    for service in (prometheus, grafana):
        for volume in service["volumes"]:
            source, target, *_ = volume.split(":")
            assert (REPO / source).is_dir(), f"{source} is not a folder of the repository"
            mounts[target] = REPO / source
    config = mounts["/etc/prometheus"] / "prometheus.yml"
    rules = yaml.safe_load(config.read_text())["rule_files"]
    assert rules and all((config.parent / rule).is_file() for rule in rules)
    provisioning = mounts["/etc/grafana/provisioning"]
    assert list((provisioning / "datasources").glob("*.yml"))
    providers = yaml.safe_load((provisioning / "dashboards" / "chuteflow.yml").read_text())
    path = providers["providers"][0]["options"]["path"]
    assert list(mounts[path].glob("*.json")), f"no dashboard under the mount of {path}"
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert (mounts[str(Path(home).parent)] / Path(home).name).is_file()


# --- the services' exact commands, against a broker ----------------------------------------


def port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@pytest.fixture(scope="module")
def empty_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A broker of its own, empty as compose's kafka container starts; stopped by PID."""
    if os.environ.get("CHUTEFLOW_SKIP_KAFKA") == "1":
        pytest.skip("CHUTEFLOW_SKIP_KAFKA=1: Kafka tests skipped on request")
    from localkafka import broker_down, broker_up

    state = tmp_path_factory.mktemp("compose-kafka")
    try:
        yield broker_up(port=0, state_dir=state, timeout=90.0)
    finally:
        broker_down(state_dir=state)


class ComposeRun:
    """Runs app services' commands as compose would, here."""

    def __init__(self, bootstrap: str, workdir: Path) -> None:
        self.bootstrap = bootstrap
        self.workdir = workdir

    def env(self, name: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("KAFKA_")}
        env.update({k: str(v) for k, v in app_services()[name].get("environment", {}).items()})
        env["KAFKA_BOOTSTRAP_SERVERS"] = self.bootstrap  # kafka:19092 inside compose
        env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
        env["CHUTEFLOW_POLICY_CACHE"] = str(self.workdir / "policy-cache")
        return env

    def run(self, name: str, command: list[str], timeout: float = 180.0) -> str:
        done = subprocess.run(
            command,
            cwd=self.workdir,
            env=self.env(name),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        assert done.returncode == 0, (
            f"service {name}: `{shlex.join(command)}` exited {done.returncode}\n"
            f"stdout:\n{done.stdout[-3000:]}\nstderr:\n{done.stderr[-3000:]}"
        )
        return done.stdout


def healthcheck(name: str, port_from: str, port_to: str) -> list[str]:
    test = [
        str(w).replace(f":{port_from}/", f":{port_to}/")
        for w in SERVICES[name]["healthcheck"]["test"]
    ]
    assert test[0] == "CMD", "healthcheck in exec form"
    return test[1:]


LONG_RUNNING = {"worker": "--metrics-port", "ops": "--port"}
"""Services that keep running (started in the background, then their healthcheck polled), with
the option that names their port."""


class Background:
    """A long-running service started from its exact command; the only change: a port that is
    taken on this machine is replaced by a free one."""

    def __init__(self, compose: ComposeRun, name: str) -> None:
        self.name = name
        self.command = argv(name)
        option = LONG_RUNNING[name]
        port = flag(name, option)
        assert port is not None, f"{name}: no {option}"
        self.port = port
        if not port_free(int(port)):
            from localkafka import free_port

            self.port = str(free_port())
            self.command[self.command.index(option) + 1] = self.port
        self.log = compose.workdir / f"{name}.log"
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                self.command,
                cwd=compose.workdir,
                env=compose.env(name),
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        wait_healthy(compose, self, healthcheck(name, port, self.port))

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]


@pytest.mark.kafka
@pytest.mark.slow
def test_every_app_service_runs_and_the_replay_equals_simulate(
    empty_broker: str, tmp_path: Path
) -> None:
    from replay.workers import stop_worker

    compose = ComposeRun(empty_broker, tmp_path)
    order = compose_order()
    running: dict[str, Background] = {}
    outputs: dict[str, str] = {}
    try:
        for name in order:
            started = time.monotonic()
            if name in LONG_RUNNING:
                running[name] = Background(compose, name)
            else:
                outputs[name] = compose.run(name, argv(name))
            print(f"compose service {name}: {time.monotonic() - started:.1f} s")
        started = time.monotonic()
        gauges = shadow_twin_gauges(running["ops"])
        print(f"ops /metrics after the replay: {time.monotonic() - started:.1f} s, {gauges}")
    finally:
        for service in running.values():
            stop_worker(service.process)
    assert all(service.process.poll() is not None for service in running.values())

    # The ops page exports the served policy's shadow twin day, as the alert reads it.
    site = load_scenario(str(flag("replay", "--scenario"))).site_id
    served = [g for g in gauges if g["site"] == site and g["role"] == "served"]
    assert [g["policy"] for g in served] == [flag("policy-route", "--serve")], gauges
    assert 0.0 <= served[0]["ratio"] < 1.0 and served[0]["inducted"] > 0

    # The replay's KPIs are simulate's for the day, under the policy the route serves.
    day = [str(flag("replay", option, "0")) for option in ("--scenario", "--group", "--seed")]
    simulate = [str(VENV_BIN / "chuteflow"), "simulate", "--scenario", day[0], "--group", day[1]]
    simulate += ["--seed", day[2], "--json", "--policy"]
    replayed = json.loads(outputs["replay"].strip().splitlines()[-1])
    shipped = REPO / "decision" / "policies" / f"{flag('policy-route', '--serve')}.onnx"
    simulated = json.loads(compose.run("replay", [*simulate, str(shipped)]))
    proportional = json.loads(compose.run("replay", [*simulate, "proportional"]))
    print(f"compose replay KPIs: {replayed}\nsimulate (same policy): {simulated}")
    assert replayed == simulated
    assert replayed != proportional  # so the equality says the routed DRMARL served

    # The topics compose created are contracts/topics.py's, and the worker group's changelog.
    from confluent_kafka.admin import AdminClient

    topics = AdminClient({"bootstrap.servers": empty_broker}).list_topics(timeout=10).topics
    for spec in ALL_TOPICS:
        assert len(topics[spec.name].partitions) == spec.partitions, spec.name
    group = flag("topics", "--app-id")
    assert any(t.startswith(f"{group}-") and t.endswith("-changelog") for t in topics), topics


def wait_healthy(compose: ComposeRun, service: Background, test: list[str]) -> None:
    """Poll the service's compose healthcheck (its exact command) until it passes."""
    deadline = time.monotonic() + 120
    while True:
        process = service.process
        assert process.poll() is None, f"{service.name} exited {process.returncode}:\n" + (
            service.tail()
        )
        done = subprocess.run(test, env=compose.env(service.name), capture_output=True, check=False)
        if done.returncode == 0:
            return
        assert time.monotonic() < deadline, (
            f"{service.name}'s healthcheck never passed:\n{service.tail()}"
        )
        time.sleep(1.0)


GAUGE_LABELS = ("site", "role", "policy", "version")
GAUGE_FIELDS = {
    "chuteflow_shadow_twin_recirculation_ratio": "ratio",
    "chuteflow_shadow_twin_inducted": "inducted",
}


def shadow_twin_gauges(ops: Background, timeout_s: float = 90.0) -> list[dict[str, Any]]:
    """The ops page's shadow twin gauges, once it has compared a closed interval: one dict per
    policy (site, role, policy, version, ratio, inducted)."""
    from urllib.request import urlopen

    from prometheus_client.parser import text_string_to_metric_families

    deadline = time.monotonic() + timeout_s
    while True:
        with urlopen(f"http://127.0.0.1:{ops.port}/metrics", timeout=5) as response:
            text = response.read().decode()
        rows: dict[tuple[str, ...], dict[str, Any]] = {}
        for family in text_string_to_metric_families(text):
            field = GAUGE_FIELDS.get(family.name)
            if field is None:
                continue
            for sample in family.samples:
                key = tuple(sample.labels[k] for k in GAUGE_LABELS)
                row = rows.setdefault(key, dict(zip(GAUGE_LABELS, key, strict=True)))
                row[field] = sample.value
        if rows:
            return list(rows.values())
        assert time.monotonic() < deadline, f"no shadow twin gauges:\n{text}\n{ops.tail()}"
        time.sleep(1.0)
