"""The broker's classpath: Apache Kafka's jars, resolved from Maven Central once into a cache.

``localkafka/pom.xml`` pins the Kafka version (the single place it is set); ``mvn
dependency:copy-dependencies`` copies its dependencies into ``<home>/libs``. Nothing else here
needs Maven, and nothing here starts a process other than ``mvn``.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

from localkafka.errors import BrokerError

POM = Path(__file__).resolve().parent / "pom.xml"
"""The Maven project whose dependencies are the broker's classpath."""

_POM_NS = {"m": "http://maven.apache.org/POM/4.0.0"}


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


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
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
    with locked(home / ".resolve.lock"):
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
