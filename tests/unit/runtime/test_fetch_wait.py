"""The worker's consumer long-polls the broker for at most the configured time, and one
partition's unconsumed records hold back the next fetch only as long as configured
(app/runtime/fetch_wait.py)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from aiokafka import AIOKafkaConsumer

from app.faust_app import app, settings
from app.runtime import fetch_wait
from app.settings import Settings


async def test_the_worker_consumer_waits_at_most_the_setting_not_faust_s_1500_ms() -> None:
    thread = app.consumer._thread
    consumer = thread._create_worker_consumer(app.transport)
    assert consumer._fetch_max_wait_ms == settings.fetch_max_wait_ms == 100
    fetch_wait.install(250, settings.fetch_backoff_ms)
    try:
        assert thread._create_worker_consumer(app.transport)._fetch_max_wait_ms == 250
    finally:
        fetch_wait.install(settings.fetch_max_wait_ms, settings.fetch_backoff_ms)


async def test_the_started_consumer_s_fetcher_backs_off_for_the_setting_not_100_ms(
    monkeypatch,
) -> None:
    async def start_without_a_broker(self) -> None:
        self._fetcher = SimpleNamespace(_prefetch_backoff=0.1)  # aiokafka's fixed default

    monkeypatch.setattr(AIOKafkaConsumer, "start", start_without_a_broker)
    consumer = app.consumer._thread._create_worker_consumer(app.transport)
    await consumer.start()
    assert consumer._fetcher._prefetch_backoff == settings.fetch_backoff_ms / 1000 == 0.005


def test_negative_fetch_waits_are_refused() -> None:
    with pytest.raises(ValueError, match="VIGIL_FETCH_BACKOFF_MS"):
        Settings.from_env({"VIGIL_FETCH_BACKOFF_MS": "-1"})
