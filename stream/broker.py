"""A real, single-node Apache Kafka broker for tests and local runs, without Docker.

Why this exists: the reliability claims of the stream layer (ordering per site, consumer-group
hand-over, faust table recovery) only mean something against Apache Kafka itself. Protocol
re-implementations differ in exactly those corners, and Docker is not available everywhere
(CI here has no daemon). Maven Central is, so the broker's jars are resolved from
``stream/broker/pom.xml`` once into a cache directory and started as one JVM in KRaft mode
(``process.roles=broker,controller``): no ZooKeeper, no second process.

Layout (``home`` defaults to ``~/.cache/chuteflow/kafka-<version>``; env
``CHUTEFLOW_KAFKA_HOME`` overrides it)::

    <home>/libs/             jars from Maven (a ``.complete`` marker guards half copies)
    <home>/state/            default state directory; tests pass their own temp dir
        server.properties    written on every start
        log4j2.properties
        data/                log.dirs (KRaft metadata log and topic partitions)
        logs/server.log      broker log; logs/kafka.out is the JVM's stdout/stderr
        kafka.pid            PID of the running JVM
        broker.json          bootstrap address and ports of the running broker

Data in ``data/`` survives ``broker_down``/``broker_up``: topics created once stay. Delete the
state directory for a clean broker.

Everything binds to 127.0.0.1 only: the broker is for this machine, never a network service.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from chuteflow.errors import ChuteflowError

POM = Path(__file__).resolve().parent / "broker" / "pom.xml"
"""The Maven project whose dependencies are the broker's classpath."""

DEFAULT_PORT = 9092
HEAP = "512m"
"""Enough for tests and a day's replay on one node; the machine has 2 cores and little to spare."""

_POM_NS = {"m": "http://maven.apache.org/POM/4.0.0"}

_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}
"""Brokers this process started. Kept so the Popen objects are never garbage-collected while
the JVM runs (that raises ResourceWarning, an error under pytest's ``filterwarnings=error``)
and so this process can reap them after SIGTERM (a zombie still answers ``kill -0``)."""


class BrokerError(ChuteflowError):
    """The local broker could not be resolved, started or stopped; the message says why."""


def kafka_version(pom: Path = POM) -> str:
    """The Kafka version pinned in the pom (``<kafka.version>``), the single place it is set."""
    root = ET.parse(pom).getroot()
    node = root.find("m:properties/m:kafka.version", _POM_NS)
    if node is None or not (node.text or "").strip():
        raise BrokerError(f"{pom} has no <properties><kafka.version>")
    return (node.text or "").strip()


def kafka_home() -> Path:
    """Where the jars (and by default the state) live: ``$CHUTEFLOW_KAFKA_HOME`` or the cache."""
    override = os.environ.get("CHUTEFLOW_KAFKA_HOME")
    if override:
        return Path(override).expanduser()
    return Path.home() / ".cache" / "chuteflow" / f"kafka-{kafka_version()}"


def _state_dir(state_dir: Path | str | None, home: Path | None) -> Path:
    if state_dir is not None:
        return Path(state_dir).expanduser().resolve()
    return ((home or kafka_home()) / "state").resolve()


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive file lock: two pytest sessions must not resolve or start at once."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_jars(home: Path | None = None) -> Path:
    """Resolve the broker's jars with Maven into ``<home>/libs`` once; return that directory.

    The copy goes to a temporary directory that is renamed into place, and a ``.complete``
    marker is written last, so an interrupted download is redone rather than trusted.
    """
    home = home or kafka_home()
    libs = home / "libs"
    if (libs / ".complete").exists():
        return libs
    with _locked(home / ".resolve.lock"):
        if (libs / ".complete").exists():
            return libs
        mvn = shutil.which("mvn")
        if mvn is None:
            raise BrokerError(
                "Maven (mvn) is not on PATH: it is needed once to fetch the Apache Kafka jars "
                "from Maven Central; install Maven or point KAFKA_BOOTSTRAP_SERVERS at a broker"
            )
        staging = home / "libs.partial"
        shutil.rmtree(staging, ignore_errors=True)
        command = [
            mvn,
            "-q",
            "-B",
            "-f",
            str(POM),
            "dependency:copy-dependencies",
            f"-DoutputDirectory={staging}",
        ]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            tail = (result.stdout + result.stderr).strip().splitlines()[-20:]
            raise BrokerError(
                "mvn could not resolve the Kafka jars ("
                + " ".join(command)
                + "):\n"
                + "\n".join(tail)
            )
        if not any(staging.glob("kafka_2.13-*.jar")):
            raise BrokerError(f"mvn finished but {staging} holds no kafka_2.13 jar")
        shutil.rmtree(libs, ignore_errors=True)
        staging.rename(libs)
        (libs / ".complete").write_text(kafka_version() + "\n")
    return libs


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _port_answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def random_cluster_id() -> str:
    """A KRaft cluster id as Kafka's ``Uuid.randomUuid`` makes it: 16 random bytes, URL-safe
    base64 without padding, never starting with ``-`` (it would read as a CLI flag)."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode("ascii").rstrip("=")
        if not text.startswith("-"):
            return text


def server_properties(
    port: int, controller_port: int, data_dir: Path, *, auto_create_topics: bool = False
) -> str:
    """The single-node KRaft configuration.

    Replication factors and min ISR are 1 because there is one node. ``auto.create.topics``
    is off: a topic that springs into being with one partition (what faust's agents trigger,
    see FIELD-NOTES) must be a loud error, not a silent PartitionsMismatch later; every topic
    is created by :func:`stream.admin.ensure_topics`, and faust creates its changelog and
    leader topics itself through the admin API. Internal topics get 6 partitions instead of
    50 so the first consumer group on a fresh broker is ready in well under a second.
    """
    lines = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@127.0.0.1:{controller_port}",
        "listeners": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port}",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "log.dirs": str(data_dir),
        "num.partitions": "1",
        "default.replication.factor": "1",
        "min.insync.replicas": "1",
        "auto.create.topics.enable": "true" if auto_create_topics else "false",
        "delete.topic.enable": "true",
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "6",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "transaction.state.log.num.partitions": "6",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        "group.initial.rebalance.delay.ms": "0",
        "num.network.threads": "2",
        "num.io.threads": "4",
        "num.recovery.threads.per.data.dir": "1",
    }
    body = "\n".join(f"{key}={value}" for key, value in lines.items())
    return "# Written by stream/broker.py on every start; edits are overwritten.\n" + body + "\n"


_LOG4J2 = """\
# Written by stream/broker.py: everything to logs/server.log, rolled at 20 MB, 3 kept.
status = warn
# Kafka's own shutdown hook logs its clean shutdown; log4j's hook would close the file first.
shutdownHook = disable
appender.file.type = RollingFile
appender.file.name = file
appender.file.fileName = ${sys:kafka.logs.dir}/server.log
appender.file.filePattern = ${sys:kafka.logs.dir}/server.log.%i
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
appender.file.policies.type = Policies
appender.file.policies.size.type = SizeBasedTriggeringPolicy
appender.file.policies.size.size = 20MB
appender.file.strategy.type = DefaultRolloverStrategy
appender.file.strategy.max = 3
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = file
logger.kafka-request.name = kafka.request.logger
logger.kafka-request.level = WARN
logger.state-change.name = state.change.logger
logger.state-change.level = WARN
"""


def _java() -> str:
    java = shutil.which("java")
    if java is None:
        raise BrokerError("java is not on PATH: Apache Kafka 4.x needs Java 17 or newer")
    return java


def _jvm_args(libs: Path, state: Path, heap: str | None = None) -> list[str]:
    heap = heap or HEAP
    return [
        _java(),
        f"-Xms{heap}",
        f"-Xmx{heap}",
        "-XX:+UseG1GC",
        "-XX:MaxGCPauseMillis=20",
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={state / 'log4j2.properties'}",
        f"-Dkafka.logs.dir={state / 'logs'}",
        "-cp",
        str(libs / "*"),
    ]


def _format_storage(libs: Path, state: Path) -> None:
    """Format ``data/`` for KRaft once; a formatted directory keeps its topics across restarts.

    A static voter set (``controller.quorum.voters``) means no ``--standalone`` flag is needed
    and the controller port may change between starts.
    """
    if (state / "data" / "meta.properties").exists():
        return
    command = [
        *_jvm_args(libs, state, heap="256m"),
        "kafka.tools.StorageTool",
        "format",
        "--cluster-id",
        random_cluster_id(),
        "--config",
        str(state / "server.properties"),
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise BrokerError(
            "kafka.tools.StorageTool format failed:\n" + (result.stdout + result.stderr).strip()
        )


def _read_pid(state: Path) -> int | None:
    try:
        return int((state / "kafka.pid").read_text().strip())
    except (OSError, ValueError):
        return None


def _alive(pid: int) -> bool:
    """True while ``pid`` runs; reaps it first if it is this process's exited child."""
    child = _CHILDREN.get(pid)
    if child is not None:
        if child.poll() is None:
            return True
        _CHILDREN.pop(pid, None)
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    if stat.exists():
        with contextlib.suppress(OSError):
            # The state is the field after the parenthesised command name; Z is a zombie.
            return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
    return True


def _is_our_broker(pid: int, state: Path) -> bool:
    """Guard against PID reuse: the process must be a kafka.Kafka JVM on our properties."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        result = subprocess.run(
            ["ps", "-o", "command=", "-p", str(pid)], capture_output=True, text=True, check=False
        )
        cmdline = result.stdout
    return "kafka.Kafka" in cmdline and str(state / "server.properties") in cmdline


def _running_pid(state: Path) -> int | None:
    pid = _read_pid(state)
    if pid is not None and _alive(pid) and _is_our_broker(pid, state):
        return pid
    return None


_LOGS = ("logs/kafka.out", "logs/server.log")


def _log_sizes(state: Path) -> dict[str, int]:
    """Current sizes of the log files, so an error shows only what this start wrote."""
    return {name: (state / name).stat().st_size if (state / name).exists() else 0 for name in _LOGS}


def _log_tail(state: Path, since: dict[str, int] | None = None, lines: int = 30) -> str:
    parts = []
    for name in _LOGS:
        path = state / name
        if not path.exists():
            continue
        with path.open("rb") as handle:
            handle.seek((since or {}).get(name, 0))
            text = handle.read().decode(errors="replace").splitlines()[-lines:]
        if text:
            parts.append(f"--- {path} (last {len(text)} lines)\n" + "\n".join(text))
    return "\n".join(parts) or f"(nothing logged under {state / 'logs'})"


def _metadata_ok(bootstrap: str) -> bool:
    """A full Kafka metadata round trip, not just an open port: the broker has joined KRaft."""
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap, "socket.timeout.ms": 2000})
    try:
        metadata = admin.list_topics(timeout=2)
    except Exception:
        return False
    return bool(metadata.brokers)


def broker_up(
    port: int = DEFAULT_PORT,
    *,
    state_dir: Path | str | None = None,
    home: Path | None = None,
    controller_port: int | None = None,
    timeout: float = 60.0,
    auto_create_topics: bool = False,
) -> str:
    """Start the broker (resolving jars on first use) and return its bootstrap address.

    Idempotent: when a broker of this state directory already runs, its address is returned
    and nothing else happens (even when ``port`` differs: one state directory, one broker).
    ``port=0`` picks a free port. Blocks until a metadata request succeeds; on failure or
    after ``timeout`` seconds the JVM is killed by PID and :class:`BrokerError` carries the
    last log lines.
    """
    home = home or kafka_home()
    state = _state_dir(state_dir, home)
    with _locked(state / ".lock"):
        if _running_pid(state) is not None:
            running = broker_status(state_dir=state, home=home)["bootstrap"]
            if not isinstance(running, str):
                raise BrokerError(
                    f"a broker runs from {state} but its broker.json is gone; "
                    "run `chuteflow kafka down` first"
                )
            return running
        libs = ensure_jars(home)
        if port == 0:
            port = free_port()
        if not _port_free(port):
            raise BrokerError(
                f"port {port} on 127.0.0.1 is taken by another process; pass another --port"
            )
        while controller_port is None or controller_port == port:
            controller_port = free_port()
        for sub in ("data", "logs"):
            (state / sub).mkdir(parents=True, exist_ok=True)
        (state / "server.properties").write_text(
            server_properties(
                port, controller_port, state / "data", auto_create_topics=auto_create_topics
            )
        )
        (state / "log4j2.properties").write_text(_LOG4J2)
        _format_storage(libs, state)
        command = [*_jvm_args(libs, state), "kafka.Kafka", str(state / "server.properties")]
        bootstrap = f"127.0.0.1:{port}"
        logged = _log_sizes(state)
        started = time.monotonic()
        with (state / "logs" / "kafka.out").open("ab") as out:
            child = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=state,
                # Own session: Ctrl-C in the terminal that ran `chuteflow kafka up` does not
                # reach the broker, and the broker outlives the CLI process.
                start_new_session=True,
            )
        _CHILDREN[child.pid] = child
        (state / "kafka.pid").write_text(f"{child.pid}\n")
        (state / "broker.json").write_text(
            json.dumps(
                {
                    "bootstrap": bootstrap,
                    "port": port,
                    "controller_port": controller_port,
                    "pid": child.pid,
                    "version": kafka_version(),
                },
                sort_keys=True,
            )
            + "\n"
        )
        try:
            _wait_ready(child, state, bootstrap, port, started, timeout, logged)
        except BaseException:
            # Ctrl-C or a failed start must not leave a half-started JVM behind.
            if child.poll() is None:
                _stop_pid(child.pid, timeout=5.0)
            _CHILDREN.pop(child.pid, None)
            _cleanup(state)
            raise
        return bootstrap


def _wait_ready(
    child: subprocess.Popen[bytes],
    state: Path,
    bootstrap: str,
    port: int,
    started: float,
    timeout: float,
    logged: dict[str, int],
) -> None:
    """Poll until a metadata request succeeds; BrokerError if the JVM exits or time runs out."""
    deadline = started + timeout
    while True:
        if child.poll() is not None:
            raise BrokerError(
                f"Kafka exited with code {child.returncode} during start-up:\n"
                + _log_tail(state, logged)
            )
        if _port_answers(port) and _metadata_ok(bootstrap):
            return
        if time.monotonic() > deadline:
            raise BrokerError(
                f"Kafka did not answer a metadata request on {bootstrap} within "
                f"{timeout:g} s; it was killed:\n" + _log_tail(state, logged)
            )
        time.sleep(0.25)


def _stop_pid(pid: int, timeout: float) -> None:
    """SIGTERM (Kafka's clean shutdown), then SIGKILL after ``timeout``; returns once gone."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _alive(pid):
        if time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            kill_deadline = time.monotonic() + 10.0
            while _alive(pid):
                if time.monotonic() > kill_deadline:
                    raise BrokerError(f"Kafka JVM {pid} survived SIGKILL")
                time.sleep(0.05)
            return
        time.sleep(0.1)


def _cleanup(state: Path) -> None:
    for name in ("kafka.pid", "broker.json"):
        (state / name).unlink(missing_ok=True)


def broker_down(
    *, state_dir: Path | str | None = None, home: Path | None = None, timeout: float = 20.0
) -> bool:
    """Stop the broker of this state directory; True if one was running.

    SIGTERM first so Kafka flushes and closes its logs (about 2 s here), SIGKILL by PID when
    it has not exited after ``timeout`` seconds: a broker that ignores SIGTERM must not
    outlive a test session.
    """
    state = _state_dir(state_dir, home)
    with _locked(state / ".lock"):
        pid = _running_pid(state)
        if pid is not None:
            _stop_pid(pid, timeout)
        _cleanup(state)
        return pid is not None


def broker_status(
    *, state_dir: Path | str | None = None, home: Path | None = None
) -> dict[str, Any]:
    """What runs where: ``running``, ``pid``, ``bootstrap``, ports, version and directories."""
    home = home or kafka_home()
    state = _state_dir(state_dir, home)
    pid = _running_pid(state)
    recorded: dict[str, Any] = {}
    if pid is not None:
        with contextlib.suppress(OSError, ValueError):
            recorded = json.loads((state / "broker.json").read_text())
    return {
        "running": pid is not None,
        "pid": pid,
        "bootstrap": recorded.get("bootstrap"),
        "port": recorded.get("port"),
        "controller_port": recorded.get("controller_port"),
        "version": kafka_version(),
        "home": str(home),
        "libs_ready": (home / "libs" / ".complete").exists(),
        "state_dir": str(state),
        "data_dir": str(state / "data"),
        "log_file": str(state / "logs" / "server.log"),
    }


# --- CLI -------------------------------------------------------------------------------------


def _cmd_up(args: argparse.Namespace) -> int:
    started = time.monotonic()
    bootstrap = broker_up(args.port, state_dir=args.state_dir, timeout=args.timeout)
    print(bootstrap)
    print(f"ready in {time.monotonic() - started:.1f} s", file=sys.stderr)
    return 0


def _cmd_down(args: argparse.Namespace) -> int:
    stopped = broker_down(state_dir=args.state_dir)
    print("stopped" if stopped else "not running")
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    status = broker_status(state_dir=args.state_dir)
    print(json.dumps(status, sort_keys=True))
    return 0 if status["running"] else 1


def _cmd_topics(args: argparse.Namespace) -> int:
    from stream.admin import ensure_topics

    for name, outcome in ensure_topics(args.bootstrap, replication=args.replication).items():
        print(f"{name}\t{outcome}")
    return 0


def add_kafka_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``chuteflow kafka up|down|status|topics``; each sets ``func(args) -> int``."""
    kafka = sub.add_parser("kafka", help="a local Apache Kafka broker (no Docker needed)")
    kafka_sub = kafka.add_subparsers(dest="kafka_command", required=True)

    def state_option(parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--state-dir",
            default=None,
            help="broker state directory (default: <CHUTEFLOW_KAFKA_HOME>/state)",
        )

    up = kafka_sub.add_parser("up", help="start the broker (fetches jars with mvn once)")
    up.add_argument("--port", type=int, default=DEFAULT_PORT, help="PLAINTEXT port (0: any)")
    up.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for ready")
    state_option(up)
    up.set_defaults(func=_cmd_up)

    down = kafka_sub.add_parser("down", help="stop the broker (SIGTERM, then SIGKILL)")
    state_option(down)
    down.set_defaults(func=_cmd_down)

    status = kafka_sub.add_parser("status", help="JSON status; exit code 1 when not running")
    state_option(status)
    status.set_defaults(func=_cmd_status)

    topics = kafka_sub.add_parser("topics", help="create every chuteflow topic (idempotent)")
    topics.add_argument(
        "--bootstrap",
        default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", f"127.0.0.1:{DEFAULT_PORT}"),
        help="bootstrap servers (default: $KAFKA_BOOTSTRAP_SERVERS or 127.0.0.1:9092)",
    )
    topics.add_argument("--replication", type=int, default=1)
    topics.set_defaults(func=_cmd_topics)
