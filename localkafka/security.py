"""The local broker's SASL_SSL listener: a throw-away CA, the broker's keystore, a SCRAM user.

``chuteflow kafka up --sasl-ssl`` (``broker_up(..., sasl_ssl=True)``) adds a listener that
speaks TLS and authenticates with SCRAM-SHA-512 next to the PLAINTEXT one, so every client
path (faust worker, confluent producers and consumers, topic admin) can be exercised the way a
secured production cluster runs, on this machine. Files, under ``<state>/tls/`` (made once,
kept across restarts; delete the state directory for new ones)::

    ca.key, ca.pem           the throw-away CA (clients trust ca.pem: ssl.ca.location)
    broker.key, broker.pem   the broker's key and certificate (SAN 127.0.0.1 and localhost)
    broker.p12               PKCS#12 keystore the JVM reads; its password is in server.properties
    secrets.json             keystore password and the SCRAM user's password (mode 0600)

and ``<state>/client-sasl-ssl.properties``: a librdkafka-style client properties file
(bootstrap of the SASL_SSL listener, protocol, mechanism, username, password, CA) for
``chuteflow ... --kafka-config FILE``.

The SCRAM user is created when the storage is formatted (``kafka-storage format --add-scram``,
KRaft since 3.5); a data directory formatted without it gets the user through the admin API
on the PLAINTEXT listener instead. Only ``openssl`` is run here.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from localkafka.errors import BrokerError

MECHANISM = "SCRAM-SHA-512"
USERNAME = "chuteflow"
CLIENT_PROPERTIES = "client-sasl-ssl.properties"

_SERVER_EXTENSIONS = """\
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid, issuer
subjectAltName = IP:127.0.0.1, DNS:localhost
"""


@dataclass(frozen=True)
class SaslSsl:
    """What ``server.properties`` and the clients need to know of the SASL_SSL listener."""

    port: int
    keystore: Path
    keystore_password: str
    ca: Path
    username: str
    password: str

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"


def _openssl(tls: Path, *args: str) -> None:
    openssl = shutil.which("openssl")
    if openssl is None:
        raise BrokerError("openssl is not on PATH: it makes the certificates of --sasl-ssl")
    result = subprocess.run([openssl, *args], cwd=tls, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise BrokerError(
            f"openssl {args[0]} failed in {tls}: " + " ".join(result.stderr.split())[-500:]
        )


def _secrets(tls: Path) -> dict[str, str]:
    path = tls / "secrets.json"
    try:
        stored = json.loads(path.read_text())
        if isinstance(stored, dict) and {"keystore", "scram"} <= set(stored):
            return {key: str(value) for key, value in stored.items()}
    except (OSError, ValueError):
        pass
    # Hex only: the value goes into `--add-scram 'SCRAM-SHA-512=[name=..,password=..]'`.
    fresh = {"keystore": secrets.token_hex(16), "scram": secrets.token_hex(16)}
    path.touch(mode=0o600)
    path.write_text(json.dumps(fresh) + "\n")
    return fresh


def ensure_tls(state: Path, port: int) -> SaslSsl:
    """Make (once) the CA, the broker's keystore and the passwords; describe the listener."""
    tls = state / "tls"
    tls.mkdir(parents=True, exist_ok=True)
    os.chmod(tls, 0o700)
    stored = _secrets(tls)
    keystore = tls / "broker.p12"
    if not (keystore.exists() and (tls / "ca.pem").exists()):
        (tls / "server.ext").write_text(_SERVER_EXTENSIONS)
        days = "3650"
        _openssl(
            tls,
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            days,
            "-subj",
            "/CN=chuteflow local Kafka CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        )
        _openssl(
            tls,
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "broker.key",
            "-out",
            "broker.csr",
            "-subj",
            "/CN=localhost",
        )
        _openssl(
            tls,
            "x509",
            "-req",
            "-in",
            "broker.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "broker.pem",
            "-days",
            days,
            "-extfile",
            "server.ext",
        )
        _openssl(
            tls,
            "pkcs12",
            "-export",
            "-in",
            "broker.pem",
            "-inkey",
            "broker.key",
            "-certfile",
            "ca.pem",
            "-name",
            "broker",
            "-out",
            "broker.p12.partial",
            "-passout",
            f"pass:{stored['keystore']}",
        )
        (tls / "broker.p12.partial").rename(keystore)  # last: a half-made set is redone
    return SaslSsl(
        port=port,
        keystore=keystore,
        keystore_password=stored["keystore"],
        ca=tls / "ca.pem",
        username=USERNAME,
        password=stored["scram"],
    )


def scram_format_argument(listener: SaslSsl) -> str:
    """``kafka-storage format --add-scram`` value creating the user with the storage."""
    return f"{MECHANISM}=[name={listener.username},password={listener.password}]"


def client_properties(listener: SaslSsl) -> str:
    """The client properties file text (librdkafka names) for the SASL_SSL listener."""
    lines = {
        "bootstrap.servers": listener.bootstrap,
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": MECHANISM,
        "sasl.username": listener.username,
        "sasl.password": listener.password,
        "ssl.ca.location": str(listener.ca),
    }
    return (
        "# Written by localkafka: the local broker's SASL_SSL listener, for\n"
        "# chuteflow <verb> --kafka-config THIS_FILE (or kafka-console-* --command-config).\n"
        + "".join(f"{key}={value}\n" for key, value in lines.items())
    )


def write_client_properties(state: Path, listener: SaslSsl) -> Path:
    path = state / CLIENT_PROPERTIES
    path.touch(mode=0o600)
    os.chmod(path, 0o600)
    path.write_text(client_properties(listener))
    return path


__all__ = [
    "CLIENT_PROPERTIES",
    "MECHANISM",
    "USERNAME",
    "SaslSsl",
    "client_properties",
    "ensure_tls",
    "scram_format_argument",
    "write_client_properties",
]
