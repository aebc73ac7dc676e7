"""The worker's consumer long-polls the broker for at most the configured time
(app/runtime/fetch_wait.py)."""

from __future__ import annotations

from app.faust_app import app, settings
from app.runtime import fetch_wait


async def test_the_worker_consumer_waits_at_most_the_setting_not_faust_s_1500_ms() -> None:
    thread = app.consumer._thread
    consumer = thread._create_worker_consumer(app.transport)
    assert consumer._fetch_max_wait_ms == settings.fetch_max_wait_ms == 100
    fetch_wait.install(250)
    try:
        assert thread._create_worker_consumer(app.transport)._fetch_max_wait_ms == 250
    finally:
        fetch_wait.install(settings.fetch_max_wait_ms)
