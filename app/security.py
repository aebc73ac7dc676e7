"""How Vigil reaches a secured Kafka: TLS and SASL (PLAIN, SCRAM), from the `VIGIL_KAFKA_*`
settings (`Settings.kafka`, read with the rest in app/settings/core.py).

One `KafkaSecurity` feeds both clients: `faust_credentials()` gives the object for
`faust.App(broker_credentials=...)` (the worker), `aiokafka_kwargs()` the keyword arguments for
aiokafka's producer, consumer and admin client (the CLI, `app/kafka_io.py`).

Faust (faust-streaming 0.15.3) passes SCRAM through, but only when asked: `SASLCredentials`
defaults to `mechanism=PLAIN` and takes the mechanism as `SASLCredentials(mechanism=...)`; it
picks `SASL_SSL` over `SASL_PLAINTEXT` only when given an `ssl_context`. Both are set here.

Passwords never reach a log: every object here masks them in its `repr`.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


class KafkaSecurityError(ValueError):
    """The `VIGIL_KAFKA_*` settings are missing, unknown or contradict each other."""


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "")
    if raw == "":
        return default
    if raw.lower() in ("1", "true", "yes", "on"):
        return True
    if raw.lower() in ("0", "false", "no", "off"):
        return False
    raise KafkaSecurityError(f"{name} must be a boolean (true/false), got {raw!r}")


def _existing_file(env: Mapping[str, str], name: str) -> str:
    path = env.get(name, "")
    if path and not Path(path).is_file():
        raise KafkaSecurityError(f"{name}={path!r}: no such file")
    return path


@dataclass(frozen=True)
class KafkaSecurity:
    """How to authenticate to the brokers. `Settings.from_env()` builds it as `settings.kafka`."""

    #: `PLAINTEXT`, `SSL`, `SASL_PLAINTEXT` or `SASL_SSL`. Env `VIGIL_KAFKA_SECURITY_PROTOCOL`.
    #: Default `PLAINTEXT`.
    protocol: str = "PLAINTEXT"
    #: `PLAIN`, `SCRAM-SHA-256` or `SCRAM-SHA-512`; SASL protocols only.
    #: Env `VIGIL_KAFKA_SASL_MECHANISM`. Default `PLAIN` (with a SASL protocol).
    sasl_mechanism: str = ""
    #: SASL user. Env `VIGIL_KAFKA_SASL_USERNAME`. Default none (required with SASL).
    sasl_username: str = ""
    #: SASL password. Env `VIGIL_KAFKA_SASL_PASSWORD`, or `VIGIL_KAFKA_SASL_PASSWORD_FILE`: a file
    #: holding it (a mounted Kubernetes secret; one trailing newline is dropped). Not both.
    #: Default none (required with SASL).
    sasl_password: str = ""
    #: CA certificates (PEM) that signed the brokers' certificates. Env `VIGIL_KAFKA_SSL_CAFILE`.
    #: Default none: the system's trusted CAs.
    ssl_cafile: str = ""
    #: Client certificate (PEM), for brokers that require TLS client authentication.
    #: Env `VIGIL_KAFKA_SSL_CERTFILE`. Default none.
    ssl_certfile: str = ""
    #: Private key of the client certificate (PEM, unencrypted). Env `VIGIL_KAFKA_SSL_KEYFILE`.
    #: Default none (the key may also sit in the certificate file).
    ssl_keyfile: str = ""
    #: Check that the broker's certificate names the host connected to.
    #: Env `VIGIL_KAFKA_SSL_CHECK_HOSTNAME`. Default true.
    ssl_check_hostname: bool = True

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> KafkaSecurity:
        """Read and check the `VIGIL_KAFKA_*` settings in `env`; raise `KafkaSecurityError`
        when they are unknown or inconsistent."""
        protocol = env.get("VIGIL_KAFKA_SECURITY_PROTOCOL", "").strip().upper() or "PLAINTEXT"
        if protocol not in PROTOCOLS:
            raise KafkaSecurityError(
                f"VIGIL_KAFKA_SECURITY_PROTOCOL must be one of {', '.join(PROTOCOLS)}, "
                f"got {protocol!r}"
            )
        sasl = protocol.startswith("SASL_")
        tls = protocol in ("SSL", "SASL_SSL")

        mechanism = env.get("VIGIL_KAFKA_SASL_MECHANISM", "").strip().upper()
        username = env.get("VIGIL_KAFKA_SASL_USERNAME", "")
        password = _password(env)
        if not sasl:
            given = [
                name
                for name, value in (
                    ("VIGIL_KAFKA_SASL_MECHANISM", mechanism),
                    ("VIGIL_KAFKA_SASL_USERNAME", username),
                    ("VIGIL_KAFKA_SASL_PASSWORD(_FILE)", password),
                )
                if value
            ]
            if given:
                raise KafkaSecurityError(
                    f"{', '.join(given)} set but VIGIL_KAFKA_SECURITY_PROTOCOL={protocol}: "
                    "use SASL_SSL (or SASL_PLAINTEXT) to authenticate with SASL"
                )
        else:
            mechanism = mechanism or "PLAIN"
            if mechanism not in SASL_MECHANISMS:
                raise KafkaSecurityError(
                    f"VIGIL_KAFKA_SASL_MECHANISM must be one of {', '.join(SASL_MECHANISMS)}, "
                    f"got {mechanism!r}"
                )
            missing = [
                name
                for name, value in (
                    ("VIGIL_KAFKA_SASL_USERNAME", username),
                    ("VIGIL_KAFKA_SASL_PASSWORD (or VIGIL_KAFKA_SASL_PASSWORD_FILE)", password),
                )
                if not value
            ]
            if missing:
                raise KafkaSecurityError(
                    f"SASL mechanism {mechanism} needs {' and '.join(missing)}"
                )

        cafile = _existing_file(env, "VIGIL_KAFKA_SSL_CAFILE")
        certfile = _existing_file(env, "VIGIL_KAFKA_SSL_CERTFILE")
        keyfile = _existing_file(env, "VIGIL_KAFKA_SSL_KEYFILE")
        check_hostname = _bool(env, "VIGIL_KAFKA_SSL_CHECK_HOSTNAME", True)
        if not tls:
            given = [
                name
                for name, value in (
                    ("VIGIL_KAFKA_SSL_CAFILE", cafile),
                    ("VIGIL_KAFKA_SSL_CERTFILE", certfile),
                    ("VIGIL_KAFKA_SSL_KEYFILE", keyfile),
                )
                if value
            ]
            if given:
                raise KafkaSecurityError(
                    f"{', '.join(given)} set but VIGIL_KAFKA_SECURITY_PROTOCOL={protocol}: "
                    "use SSL or SASL_SSL for TLS"
                )
        if keyfile and not certfile:
            raise KafkaSecurityError(
                "VIGIL_KAFKA_SSL_KEYFILE set without VIGIL_KAFKA_SSL_CERTFILE (the client "
                "certificate it belongs to)"
            )
        return cls(
            protocol=protocol,
            sasl_mechanism=mechanism if sasl else "",
            sasl_username=username,
            sasl_password=password,
            ssl_cafile=cafile,
            ssl_certfile=certfile,
            ssl_keyfile=keyfile,
            ssl_check_hostname=check_hostname,
        )

    def __repr__(self) -> str:  # the password never reaches logs
        return (
            f"KafkaSecurity(protocol={self.protocol!r}, sasl_mechanism={self.sasl_mechanism!r}, "
            f"sasl_username={self.sasl_username!r}, "
            f"sasl_password={'***' if self.sasl_password else ''!r}, "
            f"ssl_cafile={self.ssl_cafile!r}, ssl_certfile={self.ssl_certfile!r}, "
            f"ssl_keyfile={self.ssl_keyfile!r}, ssl_check_hostname={self.ssl_check_hostname!r})"
        )

    __str__ = __repr__

    @property
    def uses_sasl(self) -> bool:
        return self.protocol.startswith("SASL_")

    @property
    def uses_tls(self) -> bool:
        return self.protocol in ("SSL", "SASL_SSL")

    def ssl_context(self) -> ssl.SSLContext | None:
        """A client TLS context verifying the brokers (and presenting the client certificate,
        when one is set); `None` without TLS."""
        if not self.uses_tls:
            return None
        try:
            context = ssl.create_default_context(
                ssl.Purpose.SERVER_AUTH, cafile=self.ssl_cafile or None
            )
            if self.ssl_certfile:
                context.load_cert_chain(self.ssl_certfile, self.ssl_keyfile or None)
        except (ssl.SSLError, OSError) as exc:
            raise KafkaSecurityError(
                f"cannot load TLS files (VIGIL_KAFKA_SSL_CAFILE={self.ssl_cafile!r}, "
                f"VIGIL_KAFKA_SSL_CERTFILE={self.ssl_certfile!r}, "
                f"VIGIL_KAFKA_SSL_KEYFILE={self.ssl_keyfile!r}): {exc}"
            ) from None
        # Certificates stay verified either way; this only skips matching the host name.
        context.check_hostname = self.ssl_check_hostname
        return context

    def aiokafka_kwargs(self) -> dict[str, Any]:
        """Security keyword arguments for AIOKafkaProducer, AIOKafkaConsumer and
        AIOKafkaAdminClient."""
        kwargs: dict[str, Any] = {"security_protocol": self.protocol}
        if self.uses_tls:
            kwargs["ssl_context"] = self.ssl_context()
        if self.uses_sasl:
            kwargs["sasl_mechanism"] = self.sasl_mechanism
            kwargs["sasl_plain_username"] = self.sasl_username
            kwargs["sasl_plain_password"] = self.sasl_password
        return kwargs

    def faust_credentials(self) -> Any:
        """`faust.App(broker_credentials=...)`: `None`, `faust.SSLCredentials` or
        `faust.SASLCredentials` (SASL_SSL when it carries an SSL context)."""
        import faust  # here, so that the CLI's broker-free commands do not import Faust

        if self.protocol == "PLAINTEXT":
            return None
        if self.protocol == "SSL":
            return faust.SSLCredentials(self.ssl_context())
        return faust.SASLCredentials(
            username=self.sasl_username,
            password=self.sasl_password,
            ssl_context=self.ssl_context(),  # None with SASL_PLAINTEXT
            mechanism=self.sasl_mechanism,  # Faust's default would be PLAIN
        )


def _password(env: Mapping[str, str]) -> str:
    password = env.get("VIGIL_KAFKA_SASL_PASSWORD", "")
    path = env.get("VIGIL_KAFKA_SASL_PASSWORD_FILE", "")
    if not path:
        return password
    if password:
        raise KafkaSecurityError(
            "set VIGIL_KAFKA_SASL_PASSWORD or VIGIL_KAFKA_SASL_PASSWORD_FILE, not both"
        )
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise KafkaSecurityError(
            f"VIGIL_KAFKA_SASL_PASSWORD_FILE={path!r}: cannot read it ({exc.strerror})"
        ) from None
    text = text.removesuffix("\n").removesuffix("\r")
    if not text:
        raise KafkaSecurityError(f"VIGIL_KAFKA_SASL_PASSWORD_FILE={path!r} is empty")
    return text


def faust_credentials(env: Mapping[str, str]) -> Any:
    """The `broker_credentials` for `faust.App`, from the `VIGIL_KAFKA_*` settings in `env`."""
    return KafkaSecurity.from_env(env).faust_credentials()


def aiokafka_kwargs(env: Mapping[str, str]) -> dict[str, Any]:
    """Security kwargs for aiokafka clients, from the `VIGIL_KAFKA_*` settings in `env`."""
    return KafkaSecurity.from_env(env).aiokafka_kwargs()
