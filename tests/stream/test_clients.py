"""Kafka client settings (stream.clients): sources, precedence, checks and what each client gets.

No broker: the SASL_SSL round trip is tests/stream/test_security.py.
"""

from __future__ import annotations

import argparse
import ssl
from pathlib import Path

import faust
import pytest

from chuteflow.cli import build_parser
from localkafka.security import ensure_tls
from stream.app import AppSettings, make_app
from stream.clients import (
    KafkaClientConfig,
    KafkaConfigError,
    env_name,
    env_without_kafka_security,
)

SECRET = "s3cr3t-pw"


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real CA certificate (the local broker's throw-away one)."""
    return ensure_tls(tmp_path_factory.mktemp("tls"), 9093).ca


def _file(tmp_path: Path, text: str, name: str = "client.properties") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _error(**kwargs: object) -> str:
    with pytest.raises(KafkaConfigError) as caught:
        KafkaClientConfig.load(**kwargs)  # type: ignore[arg-type]
    message = str(caught.value)
    assert "\n" not in message, "errors are one line"
    assert SECRET not in message, "never a password in an error"
    return message


def test_defaults_are_plaintext_to_the_local_broker() -> None:
    config = KafkaClientConfig.load(environ={})
    assert config.bootstrap == "127.0.0.1:9092"
    assert config.confluent_config() == {
        "bootstrap.servers": "127.0.0.1:9092",
        "security.protocol": "PLAINTEXT",
    }
    assert config.faust_app_kwargs() == {"broker": "kafka://127.0.0.1:9092"}
    assert config.ssl_context() is None


def test_environment_variables_are_the_property_names(ca: Path) -> None:
    assert env_name("ssl.endpoint.identification.algorithm") == (
        "KAFKA_SSL_ENDPOINT_IDENTIFICATION_ALGORITHM"
    )
    environ = {
        "KAFKA_BOOTSTRAP_SERVERS": "b1:9093, b2:9093",
        "KAFKA_SECURITY_PROTOCOL": "sasl_ssl",
        "KAFKA_SASL_MECHANISM": "scram-sha-512",
        "KAFKA_SASL_USERNAME": "svc",
        "KAFKA_SASL_PASSWORD": SECRET,
        "KAFKA_SSL_CA_LOCATION": str(ca),
        "KAFKA_SSL_CERTIFICATE_LOCATION": "",  # empty: unset, as compose files leave them
    }
    config = KafkaClientConfig.load(environ=environ)
    assert config.confluent_config({"group.id": "g"}) == {
        "bootstrap.servers": "b1:9093,b2:9093",
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "svc",
        "sasl.password": SECRET,
        "ssl.ca.location": str(ca),
        "ssl.endpoint.identification.algorithm": "https",
        "group.id": "g",
    }
    assert SECRET not in repr(config)
    assert config.describe() == "SASL_SSL SCRAM-SHA-512 user 'svc' at b1:9093,b2:9093"
    # what start_worker hands a child process gives the same config back
    assert KafkaClientConfig.load(environ=config.to_env()) == config


def test_flag_beats_file_beats_environment_per_key(tmp_path: Path, ca: Path) -> None:
    path = _file(
        tmp_path,
        "# from the cluster's admin\n"
        "bootstrap.servers=file:9093\n"
        "security.protocol = SASL_SSL\n"
        "sasl.mechanisms: SCRAM-SHA-256\n"  # librdkafka's other spelling, Java's ':' form
        "sasl.username=from-file\n"
        "sasl.password=\n"  # empty: left to the environment
        f"ssl.ca.location={ca}\n"
        "! a Java-style comment\n"
        "session.timeout.ms=45000\n"  # client tuning: not ours, ignored
        "\n",
    )
    environ = {
        "KAFKA_BOOTSTRAP_SERVERS": "env:9092",
        "KAFKA_SASL_USERNAME": "from-env",
        "KAFKA_SASL_PASSWORD": SECRET,  # the secret from the environment, the rest from file
    }
    config = KafkaClientConfig.load(config_file=path, environ=environ)
    assert config.bootstrap == "file:9093"
    assert (config.sasl_mechanism, config.sasl_username) == ("SCRAM-SHA-256", "from-file")
    assert config.sasl_password == SECRET
    flagged = KafkaClientConfig.load(bootstrap="flag:1", config_file=path, environ=environ)
    assert flagged.bootstrap == "flag:1"


def test_java_jaas_line_gives_username_and_password(tmp_path: Path) -> None:
    path = _file(
        tmp_path,
        "security.protocol=SASL_PLAINTEXT\nsasl.mechanism=PLAIN\n"
        "sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required "
        f"username='svc' password=\"{SECRET}\";\n",
    )
    config = KafkaClientConfig.load(config_file=path, environ={})
    assert (config.sasl_username, config.sasl_password) == ("svc", SECRET)
    assert config.ssl_context() is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("security.protocol=SASL_TLS", "security.protocol 'SASL_TLS' ({f}:1): expected one of"),
        (
            "security.protocol=SASL_SSL\nsasl.mechanism=GSSAPI\nsasl.username=u\n"
            f"sasl.password={SECRET}",
            "sasl.mechanism 'GSSAPI' ({f}:2): expected one of SCRAM-SHA-512, SCRAM-SHA-256, PLAIN",
        ),
        (
            "security.protocol=SASL_SSL\nsasl.mechanism=SCRAM-SHA-512\nsasl.username=u",
            "security.protocol SASL_SSL ({f}:1) needs sasl.password (or KAFKA_SASL_PASSWORD)",
        ),
        (
            f"sasl.username=u\nsasl.password={SECRET}",
            "sasl.username ({f}:1) is set but security.protocol is PLAINTEXT",
        ),
        (
            "security.protocol=SASL_PLAINTEXT\nsasl.mechanism=PLAIN\nsasl.username=u\n"
            f"sasl.password={SECRET}\nssl.ca.location=/etc/hosts",
            "ssl.ca.location ({f}:5) is set but security.protocol is SASL_PLAINTEXT",
        ),
        (
            "security.protocol=SSL\nssl.ca.location=/nonexistent/ca.pem",
            "ssl.ca.location ({f}:2): /nonexistent/ca.pem does not exist",
        ),
        (
            "security.protocol=SSL\nssl.certificate.location=/etc/hosts",
            "ssl.certificate.location and ssl.key.location go together",
        ),
        (
            "security.protocol=SSL\nssl.endpoint.identification.algorithm=dns",
            "ssl.endpoint.identification.algorithm 'dns' ({f}:2): expected https or none",
        ),
        ("ssl.truststore.location=/x.jks", "ssl.truststore.location ({f}:1): Java keystores"),
        ("sasl.passwrod=x", "sasl.passwrod ({f}:1): not a supported setting"),
        ("bootstrap.servers=kafka://b:9092", "bootstrap.servers ({f}:1): 'kafka://b:9092' has"),
        ("bootstrap.servers=b:90x2", "bootstrap.servers ({f}:1): 'b:90x2' is not host:port"),
        ("just words", "{f}:1: expected key=value"),
    ],
)
def test_bad_settings_are_one_line_naming_key_and_source(
    tmp_path: Path, text: str, expected: str
) -> None:
    path = _file(tmp_path, text + "\n")
    message = _error(config_file=path, environ={})
    assert expected.format(f=path) in message


def test_bad_environment_value_names_the_variable() -> None:
    message = _error(environ={"KAFKA_SECURITY_PROTOCOL": "TLS"})
    assert message.startswith("security.protocol 'TLS' (KAFKA_SECURITY_PROTOCOL): expected")


def test_missing_file_is_one_line(tmp_path: Path) -> None:
    message = _error(config_file=tmp_path / "nope.properties", environ={})
    assert message.startswith(f"--kafka-config {tmp_path / 'nope.properties'}: cannot read it")


def test_a_ca_file_that_is_not_pem_fails_when_the_context_is_made(tmp_path: Path) -> None:
    junk = _file(tmp_path, "not a certificate\n", "ca.pem")
    config = KafkaClientConfig(security_protocol="SSL", ssl_ca_location=str(junk))
    with pytest.raises(KafkaConfigError, match=r"cannot load TLS files ssl.ca.location"):
        config.ssl_context()


def test_faust_gets_scram_credentials_over_tls(ca: Path) -> None:
    config = KafkaClientConfig(
        "h1:9093,h2:9093",
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="svc",
        sasl_password=SECRET,
        ssl_ca_location=str(ca),
    )
    kwargs = config.faust_app_kwargs()
    assert kwargs["broker"] == "kafka://h1:9093;kafka://h2:9093"
    credentials = kwargs["broker_credentials"]
    assert isinstance(credentials, faust.SASLCredentials)
    assert credentials.protocol.value == "SASL_SSL"
    assert credentials.mechanism.value == "SCRAM-SHA-512"
    assert (credentials.username, credentials.password) == ("svc", SECRET)
    assert isinstance(credentials.ssl_context, ssl.SSLContext)
    assert credentials.ssl_context.check_hostname
    assert credentials.ssl_context.verify_mode == ssl.CERT_REQUIRED
    assert SECRET not in repr(credentials)

    app = make_app(AppSettings(config.bootstrap, app_id="t-clients", client=config))
    assert isinstance(app.conf.broker_credentials, faust.SASLCredentials)
    assert app.conf.broker_credentials.username == "svc"
    assert [str(url) for url in app.conf.broker] == ["kafka://h1:9093", "kafka://h2:9093"]


def test_tls_only_and_no_host_name_check(ca: Path) -> None:
    config = KafkaClientConfig(
        "h:9093",
        security_protocol="SSL",
        ssl_ca_location=str(ca),
        ssl_endpoint_identification_algorithm="none",
    )
    credentials = config.faust_credentials()
    assert isinstance(credentials, faust.SSLCredentials)
    assert not credentials.context.check_hostname
    assert config.confluent_config()["ssl.endpoint.identification.algorithm"] == "none"
    # no CA given: librdkafka probes the system's CA paths, Python loads its defaults
    assert (
        KafkaClientConfig("h:1", security_protocol="SSL").confluent_config()["ssl.ca.location"]
        == "probe"
    )


def test_app_settings_refuse_a_client_for_another_bootstrap() -> None:
    with pytest.raises(ValueError, match="bootstrap"):
        AppSettings("a:1", client=KafkaClientConfig("b:1"))


def test_a_child_gets_only_the_settings_passed_to_it() -> None:
    parent = {"PATH": "/bin", "KAFKA_SASL_PASSWORD": "parent", "KAFKA_HEAP_OPTS": "-Xmx1g"}
    child = env_without_kafka_security(parent) | KafkaClientConfig("b:1").to_env()
    assert child == {
        "PATH": "/bin",
        "KAFKA_HEAP_OPTS": "-Xmx1g",  # not ours: left alone
        "KAFKA_BOOTSTRAP_SERVERS": "b:1",
        "KAFKA_SECURITY_PROTOCOL": "PLAINTEXT",
    }


@pytest.mark.parametrize(
    "argv",
    [
        ["worker", "--kafka-config", "c.properties"],
        ["kafka", "topics", "--kafka-config", "c.properties"],
        ["replay", "--group", "0", "--kafka-config", "c.properties"],
        ["bench", "replay", "--kafka-config", "c.properties"],
    ],
)
def test_every_kafka_verb_takes_a_client_properties_file(argv: list[str]) -> None:
    args: argparse.Namespace = build_parser().parse_args(argv)
    assert args.kafka_config == "c.properties"
    assert args.bootstrap is None  # resolved with the file and the environment at run time
