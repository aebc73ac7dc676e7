"""Kafka TLS/SASL settings from the environment: parsing, errors, masking (no broker)."""

from __future__ import annotations

import ssl
import subprocess

import faust
import pytest
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

from app.security import (
    KafkaSecurity,
    KafkaSecurityError,
    aiokafka_kwargs,
    faust_credentials,
)

SECRET = "s3cr3t-do-not-log"


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """A CA (PEM) and a client certificate with its key, made with openssl."""
    d = tmp_path_factory.mktemp("pki")
    new_key = "-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes"
    for command in (
        f"req -x509 {new_key} -keyout ca.key -out ca.pem -subj /CN=ca",
        f"req {new_key} -keyout client.key -out client.csr -subj /CN=client",
        "x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out client.pem",
    ):
        subprocess.run(["openssl", *command.split()], cwd=d, check=True, capture_output=True)
    return d


def sasl_env(pki, **extra: str) -> dict[str, str]:
    return {
        "VIGIL_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "VIGIL_KAFKA_SASL_USERNAME": "vigil",
        "VIGIL_KAFKA_SASL_PASSWORD": SECRET,
        "VIGIL_KAFKA_SSL_CAFILE": str(pki / "ca.pem"),
        **extra,
    }


def test_default_is_plaintext_without_credentials():
    assert KafkaSecurity.from_env({}) == KafkaSecurity()
    assert faust_credentials({}) is None
    assert aiokafka_kwargs({}) == {"security_protocol": "PLAINTEXT"}


def test_sasl_ssl_scram_reaches_faust_and_aiokafka(pki):
    env = sasl_env(pki, VIGIL_KAFKA_SASL_MECHANISM="scram-sha-512")
    creds = faust_credentials(env)
    assert isinstance(creds, faust.SASLCredentials)
    # What Faust itself hands to aiokafka for its consumers and producers:
    auth = credentials_to_aiokafka_auth(creds)
    assert auth["security_protocol"] == "SASL_SSL"
    assert auth["sasl_mechanism"] == "SCRAM-SHA-512"
    assert (auth["sasl_plain_username"], auth["sasl_plain_password"]) == ("vigil", SECRET)
    assert isinstance(auth["ssl_context"], ssl.SSLContext)

    kwargs = aiokafka_kwargs(env)
    assert {k: v for k, v in kwargs.items() if k != "ssl_context"} == {
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "vigil",
        "sasl_plain_password": SECRET,
    }
    context = kwargs["ssl_context"]
    assert context.check_hostname and context.verify_mode == ssl.CERT_REQUIRED


def test_sasl_mechanism_defaults_to_plain_and_sasl_plaintext_has_no_tls():
    env = {
        "VIGIL_KAFKA_SECURITY_PROTOCOL": "sasl_plaintext",
        "VIGIL_KAFKA_SASL_USERNAME": "vigil",
        "VIGIL_KAFKA_SASL_PASSWORD": SECRET,
    }
    auth = credentials_to_aiokafka_auth(faust_credentials(env))
    assert auth["security_protocol"] == "SASL_PLAINTEXT"
    assert auth["sasl_mechanism"] == "PLAIN"
    assert auth["ssl_context"] is None
    assert "ssl_context" not in aiokafka_kwargs(env)


def test_ssl_with_client_certificate_and_no_hostname_check(pki):
    env = {
        "VIGIL_KAFKA_SECURITY_PROTOCOL": "SSL",
        "VIGIL_KAFKA_SSL_CAFILE": str(pki / "ca.pem"),
        "VIGIL_KAFKA_SSL_CERTFILE": str(pki / "client.pem"),
        "VIGIL_KAFKA_SSL_KEYFILE": str(pki / "client.key"),
        "VIGIL_KAFKA_SSL_CHECK_HOSTNAME": "false",
    }
    creds = faust_credentials(env)
    assert isinstance(creds, faust.SSLCredentials)
    auth = credentials_to_aiokafka_auth(creds)
    assert auth["security_protocol"] == "SSL"
    assert auth["ssl_context"].check_hostname is False
    # The certificate chain is still verified.
    assert auth["ssl_context"].verify_mode == ssl.CERT_REQUIRED
    assert set(aiokafka_kwargs(env)) == {"security_protocol", "ssl_context"}


def test_password_file_for_kubernetes_secrets(pki, tmp_path):
    secret = tmp_path / "password"
    secret.write_text(SECRET + "\n")
    env = sasl_env(pki, VIGIL_KAFKA_SASL_PASSWORD_FILE=str(secret))
    del env["VIGIL_KAFKA_SASL_PASSWORD"]
    assert KafkaSecurity.from_env(env).sasl_password == SECRET


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"VIGIL_KAFKA_SECURITY_PROTOCOL": "TLS"}, "must be one of PLAINTEXT, SSL"),
        ({"VIGIL_KAFKA_SASL_MECHANISM": "GSSAPI"}, "must be one of PLAIN, SCRAM-SHA-256"),
        ({"VIGIL_KAFKA_SASL_PASSWORD": ""}, "SASL mechanism PLAIN needs VIGIL_KAFKA_SASL_PASSWORD"),
        ({"VIGIL_KAFKA_SASL_USERNAME": ""}, "needs VIGIL_KAFKA_SASL_USERNAME"),
        (
            {"VIGIL_KAFKA_SASL_PASSWORD_FILE": "/etc/hostname"},
            "VIGIL_KAFKA_SASL_PASSWORD or VIGIL_KAFKA_SASL_PASSWORD_FILE, not both",
        ),
        ({"VIGIL_KAFKA_SSL_CAFILE": "/nonexistent/ca.pem"}, "VIGIL_KAFKA_SSL_CAFILE=.*no such"),
        ({"VIGIL_KAFKA_SSL_CHECK_HOSTNAME": "maybe"}, "must be a boolean"),
        ({"VIGIL_KAFKA_SSL_KEYFILE": "/etc/hostname"}, "KEYFILE set without .*CERTFILE"),
    ],
)
def test_inconsistent_settings_are_refused_clearly(pki, change, message):
    with pytest.raises(KafkaSecurityError, match=message) as caught:
        KafkaSecurity.from_env(sasl_env(pki, **change))
    assert SECRET not in str(caught.value)


def test_sasl_settings_without_a_sasl_protocol_are_refused():
    env = {"VIGIL_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512", "VIGIL_KAFKA_SASL_PASSWORD": SECRET}
    with pytest.raises(KafkaSecurityError, match=r"PROTOCOL=PLAINTEXT: use SASL_SSL") as caught:
        KafkaSecurity.from_env(env)
    assert SECRET not in str(caught.value)


def test_tls_files_without_a_tls_protocol_are_refused(pki):
    env = {
        "VIGIL_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "VIGIL_KAFKA_SASL_USERNAME": "vigil",
        "VIGIL_KAFKA_SASL_PASSWORD": SECRET,
        "VIGIL_KAFKA_SSL_CAFILE": str(pki / "ca.pem"),
    }
    with pytest.raises(KafkaSecurityError, match="use SSL or SASL_SSL"):
        KafkaSecurity.from_env(env)


def test_unreadable_or_empty_password_file(pki, tmp_path):
    env = sasl_env(pki, VIGIL_KAFKA_SASL_PASSWORD_FILE=str(tmp_path / "missing"))
    del env["VIGIL_KAFKA_SASL_PASSWORD"]
    with pytest.raises(KafkaSecurityError, match="cannot read it"):
        KafkaSecurity.from_env(env)
    (tmp_path / "empty").write_text("\n")
    env["VIGIL_KAFKA_SASL_PASSWORD_FILE"] = str(tmp_path / "empty")
    with pytest.raises(KafkaSecurityError, match="is empty"):
        KafkaSecurity.from_env(env)


def test_a_file_that_is_not_a_certificate_is_reported(pki):
    env = sasl_env(pki, VIGIL_KAFKA_SSL_CAFILE=str(pki / "client.key"))
    with pytest.raises(KafkaSecurityError, match="cannot load TLS files"):
        aiokafka_kwargs(env)


def test_password_is_masked_in_repr(pki):
    security = KafkaSecurity.from_env(sasl_env(pki))
    credentials = faust_credentials(sasl_env(pki))
    for text in (repr(security), str(security), f"{security}", repr(credentials)):
        assert SECRET not in text
    assert "'***'" in repr(security)
    assert "vigil" in repr(security)
