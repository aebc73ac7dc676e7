"""Integration fixtures: the real local Kafka broker and Vigil workers as subprocesses.

The broker must be running (`make test` starts it). These tests skip only when told so
explicitly with `VIGIL_SKIP_INTEGRATION=1`; in CI (`CI=true`) a missing broker is a failure.
"""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from app import kafka_io
from app.settings import Settings
from tests.integration.harness import WorkerFactory


def _broker_reachable(bootstrap: str) -> bool:
    host, _, port = bootstrap.split(",")[0].rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=2):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def bootstrap() -> str:
    """Bootstrap servers of the real broker; fails (or skips, if told to) when it is down."""
    servers = Settings.from_env().bootstrap_servers
    if not _broker_reachable(servers):
        if os.environ.get("VIGIL_SKIP_INTEGRATION") == "1" and os.environ.get("CI") != "true":
            pytest.skip("VIGIL_SKIP_INTEGRATION=1 and no broker running")
        pytest.fail(f"no Kafka broker at {servers}: run `make kafka-up` (make test does)")
    return servers


@pytest.fixture
def isolation(bootstrap):
    """Environment giving one test its own app id and topic names; the test's topics
    (its own and its app's changelogs) are deleted afterwards."""
    tag = uuid.uuid4().hex[:8]
    env = {
        "VIGIL_APP_ID": f"vigil-test-{tag}",
        "VIGIL_TOPIC_PREFIX": f"t{tag}.",
        # Tests feed a few sources of the many a partition clock waits for at first: a short
        # idle time lets alert timers run seconds after the last record, not 30 s.
        "VIGIL_CLOCK_IDLE_MS": "2000",
        "VIGIL_CLOCK_TICK_MS": "500",
    }
    yield env
    prefixes = (env["VIGIL_TOPIC_PREFIX"], f"{env['VIGIL_APP_ID']}-")
    # In a thread of its own: Playwright's sync API keeps an event loop running in this one.
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, kafka_io.delete_topics_with_prefix(bootstrap, prefixes)).result()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """Keep each phase's report on the test item (`item.rep_call`), for fixtures' teardown."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


@pytest.fixture
def workers(request, bootstrap, isolation, tmp_path):
    """Start Vigil workers (subprocesses) for this test; all are stopped afterwards, after a
    failure with their stacks in their logs (under the test's tmp_path)."""
    factory = WorkerFactory(bootstrap, isolation, tmp_path)
    yield factory
    failed = getattr(getattr(request.node, "rep_call", None), "failed", False)
    factory.stop_all(dump_stacks=failed)
