"""How every Kafka client of chuteflow connects: bootstrap servers, TLS and SASL, in one place.

:class:`KafkaClientConfig` holds the connection settings under their librdkafka names (the
names a ``client.properties`` file uses) and turns them into what each client library takes:

- :meth:`~KafkaClientConfig.confluent_config`: the dict for confluent-kafka's ``Producer``,
  ``Consumer`` and ``AdminClient`` (replay, topic admin, tests);
- :meth:`~KafkaClientConfig.faust_app_kwargs`: ``broker`` URL and ``broker_credentials``
  (``faust.SASLCredentials``/``faust.SSLCredentials`` with an :class:`ssl.SSLContext`) for
  the worker's faust app, whose aiokafka clients take no librdkafka properties.

Where the settings come from (:meth:`KafkaClientConfig.load`), per key, first match wins:

1. a command-line flag (``--bootstrap``);
2. the properties file named by ``--kafka-config FILE``: ``key=value`` lines, ``#``
   comments, as librdkafka's and Kafka's own tools read them;
3. environment variables: the property name upper-cased, dots as underscores, prefixed
   ``KAFKA_``: ``KAFKA_BOOTSTRAP_SERVERS``, ``KAFKA_SECURITY_PROTOCOL``,
   ``KAFKA_SASL_MECHANISM``, ``KAFKA_SASL_USERNAME``, ``KAFKA_SASL_PASSWORD``,
   ``KAFKA_SSL_CA_LOCATION``, ``KAFKA_SSL_CERTIFICATE_LOCATION``, ``KAFKA_SSL_KEY_LOCATION``,
   ``KAFKA_SSL_KEY_PASSWORD``, ``KAFKA_SSL_ENDPOINT_IDENTIFICATION_ALGORITHM`` (an empty
   variable counts as unset). So a file can hold everything but the password, which comes
   from a secret in ``KAFKA_SASL_PASSWORD``;
4. defaults: ``127.0.0.1:9092``, ``PLAINTEXT``.

Supported: ``security.protocol`` PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL; ``sasl.mechanism``
SCRAM-SHA-512, SCRAM-SHA-256, PLAIN; server verification against ``ssl.ca.location`` (PEM;
the system's CAs when unset) with host name checking (``ssl.endpoint.identification.algorithm``
``https``, the default, or ``none``); client certificates (``ssl.certificate.location`` +
``ssl.key.location`` [+ ``ssl.key.password``]). A Java-style ``sasl.jaas.config`` line gives
the username and password. Other ``security.*``/``sasl.*``/``ssl.*`` keys (Java keystores,
Kerberos, OAUTHBEARER) are refused with one line, so a typo cannot silently turn security
off; keys outside those families (client tuning such as ``session.timeout.ms``) are ignored:
chuteflow sets its own.

A setting that cannot work is a :class:`KafkaConfigError` (a ``ChuteflowError``: one line,
exit code 2) naming the key and where it came from. Passwords are never part of ``repr``,
:meth:`~KafkaClientConfig.describe` or any error message.

:func:`connect_admin` is the check a process runs once before it relies on the broker: a
wrong password or an untrusted certificate is :class:`KafkaAuthError` within seconds, naming
the user and the reason, where a faust worker dies with a traceback that names neither
(``docs/design-facts.md#kafka-auth``).
"""

from __future__ import annotations

import os
import re
import ssl
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from floor.errors import ChuteflowError

if TYPE_CHECKING:
    from confluent_kafka.admin import AdminClient

DEFAULT_BOOTSTRAP = "127.0.0.1:9092"
PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
MECHANISMS = ("SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN")
ENDPOINT_IDENTIFICATION = ("https", "none")

# librdkafka property -> dataclass field
_KEYS: dict[str, str] = {
    "bootstrap.servers": "bootstrap",
    "security.protocol": "security_protocol",
    "sasl.mechanism": "sasl_mechanism",
    "sasl.username": "sasl_username",
    "sasl.password": "sasl_password",
    "ssl.ca.location": "ssl_ca_location",
    "ssl.certificate.location": "ssl_certificate_location",
    "ssl.key.location": "ssl_key_location",
    "ssl.key.password": "ssl_key_password",
    "ssl.endpoint.identification.algorithm": "ssl_endpoint_identification_algorithm",
}
_PROPERTY = {name: key for key, name in _KEYS.items()}
_ALIASES = {"sasl.mechanisms": "sasl.mechanism"}  # librdkafka accepts both spellings
_JAAS = "sasl.jaas.config"
_ENDPOINT = "ssl.endpoint.identification.algorithm"
_SECRET = {"sasl_password", "ssl_key_password"}
_JAVA_ONLY = ("ssl.truststore.", "ssl.keystore.")
_FAMILIES = ("security.", "sasl.", "ssl.", "bootstrap.")


def env_name(key: str) -> str:
    """The environment variable of a librdkafka property: ``sasl.username`` ->
    ``KAFKA_SASL_USERNAME``."""
    return "KAFKA_" + key.upper().replace(".", "_")


class KafkaConfigError(ChuteflowError):
    """A Kafka client setting that cannot work; the message names the key and its source."""


class KafkaAuthError(ChuteflowError):
    """The broker refused the credentials (or the TLS handshake failed)."""


class KafkaUnreachableError(ChuteflowError):
    """No broker answered a metadata request in time."""


@dataclass(frozen=True)
class KafkaClientConfig:
    """Connection settings of a Kafka client; validated when made (:class:`KafkaConfigError`)."""

    bootstrap: str = DEFAULT_BOOTSTRAP
    """``host:port[,host:port...]``."""
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: str | None = field(default=None, repr=False)
    ssl_ca_location: str | None = None
    """PEM file (or directory) of the CAs that signed the brokers' certificates."""
    ssl_certificate_location: str | None = None
    ssl_key_location: str | None = None
    ssl_key_password: str | None = field(default=None, repr=False)
    ssl_endpoint_identification_algorithm: str = "https"
    """``https``: the broker certificate must name the host connected to; ``none``: not."""
    sources: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)
    """Property -> where its value came from (``--bootstrap``, ``FILE:LINE``, an env
    variable), for error messages."""

    def __post_init__(self) -> None:
        protocol = self.security_protocol.strip().upper()
        object.__setattr__(self, "security_protocol", protocol)
        if self.sasl_mechanism is not None:
            object.__setattr__(self, "sasl_mechanism", self.sasl_mechanism.strip().upper())
        algorithm = self.ssl_endpoint_identification_algorithm.strip().lower()
        object.__setattr__(self, "ssl_endpoint_identification_algorithm", algorithm or "none")
        object.__setattr__(self, "bootstrap", ",".join(_bootstrap_entries(self)))
        _validate(self)

    # --- where settings come from -------------------------------------------------------

    @classmethod
    def load(
        cls,
        *,
        bootstrap: str | None = None,
        config_file: str | Path | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> KafkaClientConfig:
        """Flag, then properties file, then ``KAFKA_*`` environment, then defaults (per key)."""
        environ = os.environ if environ is None else environ
        values: dict[str, str] = {}
        sources: dict[str, str] = {}
        for key in (*_KEYS, _JAAS):
            value = environ.get(env_name(key), "")
            if value:
                values[key], sources[key] = value, env_name(key)
        _expand_jaas(values, sources)
        if config_file is not None:
            from_file, file_sources = read_properties(config_file)
            _expand_jaas(from_file, file_sources)
            for key, value in from_file.items():
                if value or key == _ENDPOINT:  # `sasl.password=` leaves the env's in place
                    values[key], sources[key] = value, file_sources.get(key, key)
        if bootstrap:
            values["bootstrap.servers"], sources["bootstrap.servers"] = bootstrap, "--bootstrap"
        return cls.from_properties(values, sources)

    @classmethod
    def from_properties(
        cls, properties: Mapping[str, str], sources: Mapping[str, str] | None = None
    ) -> KafkaClientConfig:
        """From librdkafka-named properties (see the module doc for what is accepted)."""
        sources = dict(sources or {})
        props: dict[str, str] = {}
        for raw_key, value in properties.items():
            key = _ALIASES.get(raw_key, raw_key)
            if key in _KEYS or key == _JAAS:
                if value or key == _ENDPOINT:  # empty: unset (the endpoint check: "none")
                    props[key] = value
                if raw_key in sources:
                    sources[key] = sources[raw_key]
                continue
            where = sources.get(raw_key, "properties")
            if key.startswith(_JAVA_ONLY):
                raise KafkaConfigError(
                    f"{key} ({where}): Java keystores are not read here; give the CA as a PEM "
                    "file in ssl.ca.location (and a client certificate as PEM in "
                    "ssl.certificate.location/ssl.key.location)"
                )
            if key.startswith(_FAMILIES):
                raise KafkaConfigError(
                    f"{key} ({where}): not a supported setting; supported: "
                    + ", ".join(_KEYS)
                    + f", {_JAAS}"
                )
        _expand_jaas(props, sources)
        kwargs: dict[str, Any] = {_KEYS[key]: value for key, value in props.items()}
        return cls(**kwargs, sources=sources)

    # --- what the clients take ----------------------------------------------------------

    @property
    def uses_sasl(self) -> bool:
        return self.security_protocol.startswith("SASL_")

    @property
    def uses_ssl(self) -> bool:
        return self.security_protocol in ("SSL", "SASL_SSL")

    def properties(self) -> dict[str, str]:
        """The set properties under their librdkafka names (secrets included; the endpoint
        check only when it is not the default ``https``)."""
        out: dict[str, str] = {}
        for spec in fields(self):
            value = getattr(self, spec.name)
            if spec.name == "sources" or value is None:
                continue
            if spec.name == "ssl_endpoint_identification_algorithm" and value == "https":
                continue
            out[_PROPERTY[spec.name]] = str(value)
        return out

    def confluent_config(self, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Config for confluent-kafka's Producer, Consumer and AdminClient, plus ``extra``."""
        config: dict[str, Any] = {
            "bootstrap.servers": self.bootstrap,
            "security.protocol": self.security_protocol,
        }
        if self.uses_sasl:
            config["sasl.mechanism"] = self.sasl_mechanism
            config["sasl.username"] = self.sasl_username
            config["sasl.password"] = self.sasl_password
        if self.uses_ssl:
            # librdkafka's wheels link OpenSSL statically: "probe" finds the system's CAs.
            config["ssl.ca.location"] = self.ssl_ca_location or "probe"
            config["ssl.endpoint.identification.algorithm"] = (
                self.ssl_endpoint_identification_algorithm
            )
            if self.ssl_certificate_location:
                config["ssl.certificate.location"] = self.ssl_certificate_location
                config["ssl.key.location"] = self.ssl_key_location
                if self.ssl_key_password:
                    config["ssl.key.password"] = self.ssl_key_password
        config.update(extra or {})
        return config

    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context of SSL/SASL_SSL (None otherwise), as aiokafka takes it."""
        if not self.uses_ssl:
            return None
        ca = self.ssl_ca_location
        try:
            if ca is not None and Path(ca).is_dir():
                context = ssl.create_default_context(capath=ca)
            else:
                context = ssl.create_default_context(cafile=ca)
            context.check_hostname = self.ssl_endpoint_identification_algorithm == "https"
            if self.ssl_certificate_location:
                context.load_cert_chain(
                    self.ssl_certificate_location,
                    self.ssl_key_location,
                    password=self.ssl_key_password,
                )
        except (ssl.SSLError, OSError) as error:
            where = ", ".join(
                f"{key} ({self._where(key)})"
                for key in ("ssl.ca.location", "ssl.certificate.location", "ssl.key.location")
                if getattr(self, _KEYS[key])
            )
            raise KafkaConfigError(f"cannot load TLS files {where}: {error}") from None
        return context

    def faust_credentials(self) -> Any:
        """``faust.SASLCredentials`` (SASL_*), ``faust.SSLCredentials`` (SSL) or None."""
        import faust

        context = self.ssl_context()
        if self.uses_sasl:
            return faust.SASLCredentials(
                username=self.sasl_username,
                password=self.sasl_password,
                mechanism=self.sasl_mechanism,
                ssl_context=context,
            )
        if context is not None:
            return faust.SSLCredentials(context)
        return None

    def faust_broker_url(self) -> str:
        """faust's ``broker`` setting: ``kafka://host:port`` per server, ``;``-separated (the
        scheme names the transport; security travels in ``broker_credentials``)."""
        return ";".join(f"kafka://{server}" for server in self.bootstrap.split(","))

    def faust_app_kwargs(self) -> dict[str, Any]:
        """``broker`` and, unless PLAINTEXT, ``broker_credentials`` for ``faust.App``."""
        kwargs: dict[str, Any] = {"broker": self.faust_broker_url()}
        credentials = self.faust_credentials()
        if credentials is not None:
            kwargs["broker_credentials"] = credentials
        return kwargs

    def to_env(self) -> dict[str, str]:
        """``KAFKA_*`` variables that make a child process's :meth:`load` give this config
        (how workers started by :mod:`replay.workers` get credentials: not on their
        command line, where ``ps`` would show a password)."""
        return {env_name(key): value for key, value in self.properties().items()}

    def describe(self) -> str:
        """One line without secrets: ``SASL_SSL SCRAM-SHA-512 user 'x' at host:port``."""
        parts = [self.security_protocol]
        if self.uses_sasl:
            parts.append(f"{self.sasl_mechanism} user {self.sasl_username!r}")
        return " ".join(parts) + f" at {self.bootstrap}"

    def _where(self, key: str) -> str:
        return self.sources.get(key, key)


def produce_all(
    client: KafkaClientConfig,
    records: Iterable[tuple[str, bytes, bytes, int | None]],
    *,
    extra: Mapping[str, Any] | None = None,
    timeout_s: float = 30.0,
) -> str | None:
    """Write ``(topic, key, value, partition or None)`` records with an idempotent ``acks=all``
    producer and wait for the broker: the first failure's reason, or None when all landed.
    The tools' one write path (policy store, routes); the worker writes through faust."""
    from confluent_kafka import KafkaException, Producer

    failures: list[str] = []

    def delivered(error: Any, _message: Any) -> None:
        if error is not None:
            failures.append(error.str())

    config = {"enable.idempotence": True, "acks": "all", "log_level": 0, **(extra or {})}
    producer = Producer(client.confluent_config(config))
    try:
        for topic, key, value, partition in records:
            if partition is None:
                producer.produce(topic, key=key, value=value, on_delivery=delivered)
            else:
                producer.produce(
                    topic, key=key, value=value, partition=partition, on_delivery=delivered
                )
    except (KafkaException, BufferError) as error:
        return str(error)
    left = producer.flush(timeout_s)
    if failures or left:
        return failures[0] if failures else f"not delivered within {timeout_s:g} s"
    return None


def as_client(value: str | KafkaClientConfig) -> KafkaClientConfig:
    """A config as given, or a PLAINTEXT one for a bare bootstrap string."""
    return value if isinstance(value, KafkaClientConfig) else KafkaClientConfig(value)


def env_without_kafka_security(environ: Mapping[str, str]) -> dict[str, str]:
    """``environ`` less every ``KAFKA_*`` variable :meth:`KafkaClientConfig.load` reads, so a
    child gets exactly the settings passed to it (add :meth:`KafkaClientConfig.to_env`)."""
    names = {env_name(key) for key in (*_KEYS, _JAAS)}
    return {name: value for name, value in environ.items() if name not in names}


def read_properties(path: str | Path) -> tuple[dict[str, str], dict[str, str]]:
    """``key=value`` (or ``key: value``) lines; ``#``/``!`` comments; returns values and
    ``key -> FILE:LINE``."""
    path = Path(path).expanduser()
    try:
        text = path.read_text()
    except OSError as error:
        raise KafkaConfigError(
            f"--kafka-config {path}: cannot read it ({error.strerror or error})"
        ) from None
    values: dict[str, str] = {}
    sources: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith(("#", "!")):
            continue
        match = re.match(r"([^=:\s]+)\s*[=:]\s*(.*)$", line)
        if match is None:
            raise KafkaConfigError(f"{path}:{number}: expected key=value, got {line[:40]!r}")
        key, value = match.group(1), match.group(2).strip()
        values[key] = value
        sources[_ALIASES.get(key, key)] = sources[key] = f"{path}:{number}"
    return values, sources


def _expand_jaas(values: dict[str, str], sources: dict[str, str]) -> None:
    """Replace a Java ``sasl.jaas.config`` line (``... required username="u" password="p";``)
    by ``sasl.username``/``sasl.password``, unless those are given beside it."""
    text = values.pop(_JAAS, None)
    if text is None:
        return
    where = sources.get(_JAAS, _JAAS)
    found = dict(re.findall(r"""(\w+)\s*=\s*["']([^"']*)["']""", text))
    if "username" not in found:
        raise KafkaConfigError(f'{_JAAS} ({where}): no username="..." in it')
    for name in ("username", "password"):
        key = f"sasl.{name}"
        if name in found and key not in values:
            values[key], sources[key] = found[name], where


def _bootstrap_entries(config: KafkaClientConfig) -> list[str]:
    where = config.sources.get("bootstrap.servers", "bootstrap.servers")
    entries = [entry.strip() for entry in config.bootstrap.split(",") if entry.strip()]
    if not entries:
        raise KafkaConfigError(f"bootstrap.servers ({where}) is empty: give host:port")
    for entry in entries:
        if "://" in entry:
            raise KafkaConfigError(
                f"bootstrap.servers ({where}): {entry!r} has a scheme; give host:port "
                "(security goes in security.protocol)"
            )
        host, colon, port = entry.rpartition(":")
        if colon and (not host or not port.isdigit() or not 0 < int(port) < 65536):
            raise KafkaConfigError(f"bootstrap.servers ({where}): {entry!r} is not host:port")
    return entries


def _validate(config: KafkaClientConfig) -> None:
    where = config._where
    protocol = config.security_protocol
    if protocol not in PROTOCOLS:
        raise KafkaConfigError(
            f"security.protocol {protocol!r} ({where('security.protocol')}): expected one of "
            + ", ".join(PROTOCOLS)
        )
    sasl = {
        key: getattr(config, name)
        for key, name in _KEYS.items()
        if key.startswith("sasl.") and getattr(config, name) is not None
    }
    tls = {
        key: getattr(config, name)
        for key, name in _KEYS.items()
        if key.startswith("ssl.")
        and key != "ssl.endpoint.identification.algorithm"
        and getattr(config, name) is not None
    }
    if config.uses_sasl:
        for key in ("sasl.mechanism", "sasl.username", "sasl.password"):
            if not sasl.get(key):
                raise KafkaConfigError(
                    f"security.protocol {protocol} ({where('security.protocol')}) needs "
                    f"{key} (or {env_name(key)})"
                )
        if config.sasl_mechanism not in MECHANISMS:
            raise KafkaConfigError(
                f"sasl.mechanism {config.sasl_mechanism!r} ({where('sasl.mechanism')}): "
                "expected one of " + ", ".join(MECHANISMS)
            )
    elif sasl:
        key = next(iter(sasl))
        raise KafkaConfigError(
            f"{key} ({where(key)}) is set but security.protocol is {protocol} "
            f"({where('security.protocol')}): use SASL_SSL (or SASL_PLAINTEXT) to authenticate"
        )
    if not config.uses_ssl:
        if tls:
            key = next(iter(tls))
            raise KafkaConfigError(
                f"{key} ({where(key)}) is set but security.protocol is {protocol} "
                f"({where('security.protocol')}): use SSL or SASL_SSL for TLS"
            )
        return
    algorithm = config.ssl_endpoint_identification_algorithm
    if algorithm not in ENDPOINT_IDENTIFICATION:
        key = "ssl.endpoint.identification.algorithm"
        raise KafkaConfigError(f"{key} {algorithm!r} ({where(key)}): expected https or none")
    if bool(config.ssl_certificate_location) != bool(config.ssl_key_location):
        raise KafkaConfigError(
            "ssl.certificate.location and ssl.key.location go together (a client certificate "
            "and its key); one of them is missing"
        )
    for key in ("ssl.ca.location", "ssl.certificate.location", "ssl.key.location"):
        value = getattr(config, _KEYS[key])
        if value and not Path(value).exists():
            raise KafkaConfigError(f"{key} ({where(key)}): {value} does not exist")


def _error_text(error: Any) -> str:
    text = error.str() if hasattr(error, "str") else str(error)
    return " ".join(str(text).split())


def _unresolved_everywhere(client: KafkaClientConfig, errors: list[Any]) -> bool:
    """Whether every bootstrap host has failed to resolve (a typo, or a name that does not
    exist): no retry will help, so the caller hears it at once instead of at its timeout."""
    from confluent_kafka import KafkaError

    texts = [_error_text(e) for e in errors if e.code() == KafkaError._RESOLVE]
    hosts = [entry.rpartition(":")[0] or entry for entry in _bootstrap_entries(client)]
    return all(any(f"'{host}:" in text or f"{host}:" in text for text in texts) for host in hosts)


def connect_admin(
    client: KafkaClientConfig, timeout_s: float = 30.0, extra: Mapping[str, Any] | None = None
) -> tuple[AdminClient, Any]:
    """An AdminClient that has read the cluster metadata once, and that metadata.

    Raises:
        KafkaAuthError: the broker refused the credentials, or TLS failed (wrong CA, host
            name): seconds, not ``timeout_s``.
        KafkaUnreachableError: no metadata within ``timeout_s`` (with librdkafka's last error),
            or at once when no bootstrap host resolves.
    """
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import AdminClient

    errors: list[Any] = []
    settings = {
        "socket.timeout.ms": 10_000,
        "error_cb": errors.append,
        # Errors reach error_cb and end up in one exception; librdkafka's own log would print
        # each failed attempt to stderr besides.
        "log_level": 0,
        **(extra or {}),
    }
    admin = AdminClient(client.confluent_config(settings))
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while True:
        try:
            left = deadline - time.monotonic()
            return admin, admin.list_topics(timeout=max(0.1, min(1.0, left)))
        except KafkaException as failure:
            last = failure.args[0] if failure.args else failure
        admin.poll(0)  # serves error_cb
        for reported in errors:
            code = reported.code()
            if code == KafkaError._AUTHENTICATION:
                who = f"user {client.sasl_username}" if client.uses_sasl else "this client"
                raise KafkaAuthError(
                    f"Kafka authentication failed for {who} at {client.bootstrap} "
                    f"({_error_text(reported)})"
                )
            if code == KafkaError._RESOLVE and _unresolved_everywhere(client, errors):
                raise KafkaUnreachableError(
                    f"cannot reach Kafka at {client.bootstrap}: no bootstrap host resolves "
                    f"({_error_text(reported)})"
                )
            if code == KafkaError._SSL:
                raise KafkaAuthError(
                    f"TLS handshake with Kafka at {client.bootstrap} failed "
                    f"({_error_text(reported)}); check ssl.ca.location"
                    f" ({client._where('ssl.ca.location')}) and the host name"
                )
        if time.monotonic() >= deadline:
            detail = _error_text(errors[-1] if errors else last)
            raise KafkaUnreachableError(
                f"no answer from Kafka at {client.bootstrap} ({client.security_protocol}) "
                f"within {timeout_s:g} s ({detail})"
            )


__all__ = [
    "DEFAULT_BOOTSTRAP",
    "MECHANISMS",
    "PROTOCOLS",
    "KafkaAuthError",
    "KafkaClientConfig",
    "KafkaConfigError",
    "KafkaUnreachableError",
    "as_client",
    "connect_admin",
    "env_name",
    "env_without_kafka_security",
    "read_properties",
]
