"""Through a second, secured local broker (scripts/kafka-secure.sh): TLS, SASL PLAIN and
SCRAM-SHA-512 as configured by the `VIGIL_KAFKA_*` variables (app/security.py).

The broker, its CA and certificates live in this session's tmp dir. Like the other integration
tests these skip only with `VIGIL_SKIP_INTEGRATION=1` outside CI; otherwise a broker that
cannot start is a failure.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import socket
import ssl
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError

from app.security import aiokafka_kwargs
from app.settings import REPO_ROOT
from app.sources.files import file_records
from app.sources.normalize import Normalizer
from tests.integration.harness import WorkerFactory

pytestmark = pytest.mark.integration

SCRIPT = REPO_ROOT / "scripts" / "kafka-secure.sh"
HOST = os.environ.get("KAFKA_HOST", "127.0.0.1")
SASL_PORT = int(os.environ.get("KAFKA_SECURE_SASL_PORT", "19094"))
SSL_PORT = int(os.environ.get("KAFKA_SECURE_SSL_PORT", "19095"))


@dataclass(frozen=True)
class SecureBroker:
    """The running secured broker: where its certificates are and who may log in."""

    dir: Path
    user: str
    plain_password: str
    scram_password: str

    sasl_bootstrap = f"{HOST}:{SASL_PORT}"
    ssl_bootstrap = f"{HOST}:{SSL_PORT}"

    @property
    def cafile(self) -> str:
        return str(self.dir / "certs" / "ca.pem")

    def sasl_env(self, mechanism: str, password: str | None = None) -> dict[str, str]:
        """`VIGIL_KAFKA_*` for SASL_SSL with `mechanism` (the right password unless given)."""
        right = self.plain_password if mechanism == "PLAIN" else self.scram_password
        return {
            "VIGIL_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "VIGIL_KAFKA_SASL_MECHANISM": mechanism,
            "VIGIL_KAFKA_SASL_USERNAME": self.user,
            "VIGIL_KAFKA_SASL_PASSWORD": right if password is None else password,
            "VIGIL_KAFKA_SSL_CAFILE": self.cafile,
        }

    def ssl_env(self, client_cert: bool = True) -> dict[str, str]:
        """`VIGIL_KAFKA_*` for TLS only, with (or without) the client certificate."""
        env = {"VIGIL_KAFKA_SECURITY_PROTOCOL": "SSL", "VIGIL_KAFKA_SSL_CAFILE": self.cafile}
        if client_cert:
            env["VIGIL_KAFKA_SSL_CERTFILE"] = str(self.dir / "certs" / "client.pem")
            env["VIGIL_KAFKA_SSL_KEYFILE"] = str(self.dir / "certs" / "client.key")
        return env


def _unavailable(reason: str) -> None:
    if os.environ.get("VIGIL_SKIP_INTEGRATION") == "1" and os.environ.get("CI") != "true":
        pytest.skip(f"VIGIL_SKIP_INTEGRATION=1 and {reason}")
    pytest.fail(reason)


@pytest.fixture(scope="session")
def secure_broker(tmp_path_factory):
    """A secured broker started for this session in a tmp dir; stopped afterwards."""
    missing = [tool for tool in ("java", "openssl", "keytool") if shutil.which(tool) is None]
    if missing:
        _unavailable(f"{', '.join(missing)} not installed (needed for the secure broker)")
    directory = tmp_path_factory.mktemp("kafka-secure")
    try:
        started = subprocess.run(
            [str(SCRIPT), "up", str(directory)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if started.returncode != 0:
            _unavailable(f"secure broker did not start:\n{started.stderr[-3000:]}")
        values = dict(
            line.split("=", 1)
            for line in (directory / "credentials.env").read_text().splitlines()
            if "=" in line
        )
        yield SecureBroker(
            directory,
            values["KAFKA_SECURE_USER"],
            values["KAFKA_SECURE_PLAIN_PASSWORD"],
            values["KAFKA_SECURE_SCRAM_PASSWORD"],
        )
    finally:
        subprocess.run(
            [str(SCRIPT), "down", str(directory)], capture_output=True, timeout=60, check=False
        )


async def _round_trip(bootstrap: str, env: dict[str, str], count: int = 3) -> list[bytes]:
    """Create a topic (admin client), produce `count` values and read them back."""
    topic = f"secure-{uuid.uuid4().hex[:8]}"
    values = [f"record-{i}".encode() for i in range(count)]
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **aiokafka_kwargs(env))
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", **aiokafka_kwargs(env))
    await producer.start()
    try:
        for value in values:
            await producer.send_and_wait(topic, value)
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, **aiokafka_kwargs(env)
    )
    await consumer.start()
    got: list[bytes] = []
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        async with asyncio.timeout(20):
            while len(got) < count:
                batches = await consumer.getmany(timeout_ms=500)
                got.extend(m.value for messages in batches.values() for m in messages)
    finally:
        await consumer.stop()
    assert got == values
    return got


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-512"])
async def test_sasl_ssl_round_trip(secure_broker, mechanism):
    await _round_trip(secure_broker.sasl_bootstrap, secure_broker.sasl_env(mechanism))


async def test_ssl_with_client_certificate_round_trip(secure_broker):
    await _round_trip(secure_broker.ssl_bootstrap, secure_broker.ssl_env())


def test_ssl_context_checks_the_broker_host_name(secure_broker):
    """The context Vigil builds refuses a broker certificate issued for another name."""
    context = aiokafka_kwargs(secure_broker.ssl_env())["ssl_context"]
    with (
        socket.create_connection((HOST, SSL_PORT), timeout=5) as raw,
        pytest.raises(ssl.SSLCertVerificationError, match="Hostname mismatch"),
    ):
        context.wrap_socket(raw, server_hostname="kafka.example.com")


@pytest.mark.parametrize(
    ("env_of", "refused_by"),
    [
        (lambda b: b.sasl_env("PLAIN", password="wrong"), "Authentication failed"),
        (lambda b: b.sasl_env("SCRAM-SHA-512", password="wrong"), "Authentication failed"),
        # The PLAIN password is not the SCRAM one: each mechanism checks its own credential.
        (lambda b: b.sasl_env("SCRAM-SHA-512", b.plain_password), "Authentication failed"),
        (lambda b: b.ssl_env(client_cert=False), "closed"),
    ],
    ids=["plain-wrong-password", "scram-wrong-password", "scram-with-plain-password", "no-cert"],
)
async def test_bad_credentials_are_refused(secure_broker, caplog, env_of, refused_by):
    env = env_of(secure_broker)
    bootstrap = (
        secure_broker.ssl_bootstrap
        if env["VIGIL_KAFKA_SECURITY_PROTOCOL"] == "SSL"
        else secure_broker.sasl_bootstrap
    )
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, request_timeout_ms=5000, **aiokafka_kwargs(env)
    )
    caplog.set_level(logging.ERROR, logger="aiokafka")
    try:
        with pytest.raises(KafkaConnectionError, match="Unable to bootstrap"):
            await producer.start()
    finally:
        await producer.stop()
    # aiokafka raises a generic bootstrap error and logs the broker's reason.
    assert refused_by in caplog.text


FALCO_FILES = ("falco-0.31.1-host-alerts.jsonl", "falco-test-single_rule_with_cat_write.jsonl")


def test_worker_ingests_falco_through_sasl_ssl_with_scram(
    secure_broker, isolation, tmp_path, monkeypatch, fixtures_dir
):
    wired = "faust_credentials" in (REPO_ROOT / "app" / "faust_app.py").read_text() and (
        "aiokafka_kwargs" in (REPO_ROOT / "app" / "kafka_io.py").read_text()
    )
    if not wired:
        pytest.skip("waiting for the lead to wire app/security.py")

    security = {
        **secure_broker.sasl_env("SCRAM-SHA-512"),
        "BROKER_URL": f"kafka://{secure_broker.sasl_bootstrap}",
    }
    for name, value in security.items():  # kafka_io (used by the factory) reads os.environ
        monkeypatch.setenv(name, value)
    factory = WorkerFactory(secure_broker.sasl_bootstrap, isolation, tmp_path)
    try:
        raws = [
            raw for name in FALCO_FILES for _, raw in file_records(fixtures_dir / "falco" / name)
        ]
        expected = {e.id for raw in raws for e in Normalizer().normalize(raw, family="falco")}
        factory.produce(factory.topic("raw:falco"), raws)
        worker = factory.start(**security)
        events = factory.collect(
            factory.topic("events"), count=len(expected), timeout_s=40, worker=worker
        )
        assert {record["value"]["id"] for record in events} == expected, worker.log_tail()
        log = worker.log_path.read_text(errors="replace")
        assert security["VIGIL_KAFKA_SASL_PASSWORD"] not in log
    finally:
        factory.stop_all()
