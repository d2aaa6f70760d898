"""Process control of the local broker: start one KRaft JVM, wait for it, stop it by PID.

A broker belongs to a state directory (``<home>/state`` unless one is given); its PID and
address are kept there (``kafka.pid``, ``broker.json``), so ``broker_down`` in another process
finds it. Only ``java`` is started here; the jars come from :mod:`localkafka.jars`.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from floor.errors import ChuteflowError
from localkafka.config import LOG4J2, random_cluster_id, server_properties
from localkafka.errors import BrokerError
from localkafka.jars import ensure_jars, kafka_home, kafka_version, locked
from localkafka.security import (
    CLIENT_PROPERTIES,
    SaslSsl,
    ensure_tls,
    scram_format_argument,
    write_client_properties,
)

DEFAULT_PORT = 9092
HEAP = "512m"
"""Enough for tests and a day's replay on one node; the machine has 2 cores and little to spare."""

_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}
"""Brokers this process started. Kept so the Popen objects are never garbage-collected while
the JVM runs (that raises ResourceWarning, an error under pytest's ``filterwarnings=error``)
and so this process can reap them after SIGTERM (a zombie still answers ``kill -0``)."""


def _state_dir(state_dir: Path | str | None, home: Path | None) -> Path:
    if state_dir is not None:
        return Path(state_dir).expanduser().resolve()
    return ((home or kafka_home()) / "state").resolve()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _port_free(port: int) -> bool:
    """True when a listener could bind ``127.0.0.1:port`` now.

    With ``SO_REUSEADDR``, as the JVM's own listener binds: connections of a broker that just
    stopped linger in TIME-WAIT/FIN-WAIT-2 on its port for up to a minute and do not keep
    Kafka from binding it again, so they must not fail this probe either. A socket that
    *listens* on the port (on 127.0.0.1, 0.0.0.0 or ::) still makes the bind fail on Linux.
    Elsewhere (BSD semantics: SO_REUSEADDR lets a specific address share a wildcard listener's
    port) the probe binds without it.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        if sys.platform.startswith("linux"):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
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
        # Fault the heap in at start (a usual setting for brokers), so that its first touches
        # do not fall on the first burst of requests. bench fleet on 2 cores saw the fresh
        # broker's first busy second spent in the kernel, starving the workers; with this and
        # the bench's warm-up the days' first allocations made their deadline (see README).
        "-XX:+AlwaysPreTouch",
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={state / 'log4j2.properties'}",
        f"-Dkafka.logs.dir={state / 'logs'}",
        "-cp",
        str(libs / "*"),
    ]


def _format_storage(libs: Path, state: Path, sasl_ssl: SaslSsl | None = None) -> bool:
    """Format ``data/`` for KRaft once; a formatted directory keeps its topics across restarts.
    True when it formatted now.

    A static voter set (``controller.quorum.voters``) means no ``--standalone`` flag is needed
    and the controller port may change between starts. With ``sasl_ssl`` the SCRAM user is
    part of the initial metadata (``--add-scram``).
    """
    if (state / "data" / "meta.properties").exists():
        return False
    command = [
        *_jvm_args(libs, state, heap="256m"),
        "kafka.tools.StorageTool",
        "format",
        "--cluster-id",
        random_cluster_id(),
        "--config",
        str(state / "server.properties"),
    ]
    if sasl_ssl is not None:
        command += ["--add-scram", scram_format_argument(sasl_ssl)]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        output = (result.stdout + result.stderr).strip()
        if sasl_ssl is not None:
            output = output.replace(sasl_ssl.password, "***")
        raise BrokerError("kafka.tools.StorageTool format failed:\n" + output)
    return True


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

    from stream.clients import KafkaClientConfig

    admin = AdminClient(KafkaClientConfig(bootstrap).confluent_config({"socket.timeout.ms": 2000}))
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
    sasl_ssl: bool = False,
    sasl_ssl_port: int | None = None,
) -> str:
    """Start the broker (resolving jars on first use) and return its bootstrap address.

    Idempotent: when a broker of this state directory already runs, its address is returned
    and nothing else happens (even when ``port`` differs: one state directory, one broker).
    ``port=0`` picks a free port. Blocks until a metadata request succeeds; on failure or
    after ``timeout`` seconds the JVM is killed by PID and :class:`BrokerError` carries the
    last log lines.

    ``sasl_ssl`` adds a SASL_SSL listener (SCRAM-SHA-512 over TLS, see
    :mod:`localkafka.security`) on ``sasl_ssl_port`` (default: ``port + 1``, or a free port
    with ``port=0``; 0: a free port) and writes the client properties file
    :func:`client_config_path` names; the returned address stays the PLAINTEXT one.
    """
    home = home or kafka_home()
    state = _state_dir(state_dir, home)
    with locked(state / ".lock"):
        if _running_pid(state) is not None:
            status = broker_status(state_dir=state, home=home)
            running = status["bootstrap"]
            if not isinstance(running, str):
                raise BrokerError(
                    f"a broker runs from {state} but its broker.json is gone; "
                    "run `chuteflow kafka down` first"
                )
            if sasl_ssl and status["sasl_ssl_bootstrap"] is None:
                raise BrokerError(
                    f"the broker of {state} runs without a SASL_SSL listener; "
                    "run `chuteflow kafka down` first, then `up --sasl-ssl`"
                )
            return running
        libs = ensure_jars(home)
        any_port = port == 0
        if any_port:
            port = free_port()
        if not _port_free(port):
            raise BrokerError(
                f"port {port} on 127.0.0.1 is in use: another process listens on it; "
                "stop it or pass another --port"
            )
        listener: SaslSsl | None = None
        if sasl_ssl:
            if sasl_ssl_port is None:
                sasl_ssl_port = 0 if any_port else port + 1
            while sasl_ssl_port in (0, port):
                sasl_ssl_port = free_port()
            if not _port_free(sasl_ssl_port):
                raise BrokerError(
                    f"port {sasl_ssl_port} on 127.0.0.1 (SASL_SSL) is in use: another process "
                    "listens on it; stop it or pass another --sasl-ssl-port"
                )
            listener = ensure_tls(state, sasl_ssl_port)
        while controller_port is None or controller_port in (port, sasl_ssl_port):
            controller_port = free_port()
        for sub in ("data", "logs"):
            (state / sub).mkdir(parents=True, exist_ok=True)
        (state / "server.properties").write_text(
            server_properties(
                port,
                controller_port,
                state / "data",
                auto_create_topics=auto_create_topics,
                sasl_ssl=listener,
            )
        )
        (state / "log4j2.properties").write_text(LOG4J2)
        formatted = _format_storage(libs, state, listener)
        client_config = None if listener is None else write_client_properties(state, listener)
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
                    "sasl_ssl_bootstrap": None if listener is None else listener.bootstrap,
                    "client_config": None if client_config is None else str(client_config),
                },
                sort_keys=True,
            )
            + "\n"
        )
        try:
            _wait_ready(child, state, bootstrap, port, started, timeout, logged)
            if listener is not None and client_config is not None:
                if not formatted:
                    _upsert_scram_user(bootstrap, listener)
                _wait_sasl_ssl(client_config, started + timeout - time.monotonic())
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


def _upsert_scram_user(bootstrap: str, listener: SaslSsl) -> None:
    """Create (or reset) the SCRAM user through the PLAINTEXT listener: for a data directory
    formatted before ``--sasl-ssl`` was first used, whose metadata has no such user."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    # Defined here; confluent_kafka.admin re-exports them in a way mypy --strict does not take.
    from confluent_kafka.admin._scram import (
        ScramCredentialInfo,
        ScramMechanism,
        UserScramCredentialUpsertion,
    )

    from stream.clients import KafkaClientConfig

    # log_level 4: not librdkafka's info line about purged background events at exit
    admin = AdminClient(KafkaClientConfig(bootstrap).confluent_config({"log_level": 4}))
    upsert = UserScramCredentialUpsertion(
        listener.username,
        ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 8192),
        listener.password.encode(),
    )
    try:
        admin.alter_user_scram_credentials([upsert])[listener.username].result(timeout=30)
    except KafkaException as error:
        raise BrokerError(f"creating SCRAM user {listener.username}: {error}") from None


def _wait_sasl_ssl(client_config: Path, timeout: float) -> None:
    """A metadata request over SASL_SSL with the written client file: TLS and SCRAM work."""
    from stream.clients import KafkaClientConfig, connect_admin

    config = KafkaClientConfig.load(config_file=client_config, environ={})
    try:
        connect_admin(config, timeout_s=max(timeout, 5.0))
    except ChuteflowError as error:
        raise BrokerError(f"the SASL_SSL listener does not work: {error}") from None


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
    with locked(state / ".lock"):
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
        "sasl_ssl_bootstrap": recorded.get("sasl_ssl_bootstrap"),
        "client_config": recorded.get("client_config"),
        "version": kafka_version(),
        "home": str(home),
        "libs_ready": (home / "libs" / ".complete").exists(),
        "state_dir": str(state),
        "data_dir": str(state / "data"),
        "log_file": str(state / "logs" / "server.log"),
    }


def client_config_path(*, state_dir: Path | str | None = None, home: Path | None = None) -> Path:
    """The client properties file ``broker_up(..., sasl_ssl=True)`` writes: bootstrap of the
    SASL_SSL listener, protocol, mechanism, user, password and CA (``--kafka-config FILE``)."""
    return _state_dir(state_dir, home) / CLIENT_PROPERTIES


@contextlib.contextmanager
def temporary_broker(timeout: float = 90.0) -> Iterator[str]:
    """A broker on a free port with its state in a temporary directory; yields its bootstrap
    address, and stops it and deletes the state on exit."""
    with tempfile.TemporaryDirectory(prefix="chuteflow-kafka-") as tmp:
        state = Path(tmp) / "state"
        bootstrap = broker_up(port=0, state_dir=state, timeout=timeout)
        try:
            yield bootstrap
        finally:
            broker_down(state_dir=state)


__all__ = [
    "DEFAULT_PORT",
    "HEAP",
    "broker_down",
    "broker_status",
    "broker_up",
    "client_config_path",
    "free_port",
    "temporary_broker",
]
