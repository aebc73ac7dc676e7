"""Run Vigil workers as real subprocesses and talk to the real broker from tests."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from app import kafka_io
from app.settings import REPO_ROOT, Settings
from app.topics import TopicCatalog


def run_sync(coroutine: Any) -> Any:
    """Run a coroutine to completion, also from code where an event loop already runs (the
    sync Playwright API keeps one running in the main thread)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def free_port() -> int:
    """An unused TCP port on the loopback interface."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Worker:
    """One `vigil worker` subprocess with its own web port and data dir."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.env = env
        self.log_path = log_path
        self.web_port = int(env["WEB_PORT"])
        self._log = log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "worker", "--loglevel", "info"],
            cwd=REPO_ROOT,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def stop(self, timeout: float = 60) -> None:
        """SIGTERM and wait; SIGKILL if it does not stop in time."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def log_tail(self, lines: int = 40) -> str:
        """The last lines of the worker's log, for assertion messages."""
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])


class WorkerFactory:
    """Starts workers sharing one test's app id and topic prefix."""

    def __init__(self, bootstrap: str, isolation: dict[str, str], tmp_path: Path) -> None:
        self.bootstrap = bootstrap
        self.isolation = isolation
        self.tmp_path = tmp_path
        self.started: list[Worker] = []
        self.settings_env = {**os.environ, **isolation}
        self.settings = Settings.from_env(self.settings_env)
        self.catalog = TopicCatalog(self.settings, self.settings_env)

    def start(self, name: str = "w1", **extra_env: str) -> Worker:
        """Start one more worker; its data dir and log live under the test's tmp_path."""
        env = dict(self.settings_env)
        env.update(
            {
                "WEB_PORT": str(free_port()),
                "APP_DATADIR": str(self.tmp_path / f"data-{name}"),
                "PYTHONUNBUFFERED": "1",
                # A killed worker leaves the group after this, not Faust's default 60 s.
                "BROKER_SESSION_TIMEOUT": "10",
                "BROKER_HEARTBEAT_INTERVAL": "1",
            }
        )
        env.update(extra_env)
        worker = Worker(env, self.tmp_path / f"{name}.log")
        self.started.append(worker)
        return worker

    def stop_all(self) -> None:
        """Stop every worker this factory started."""
        for worker in self.started:
            worker.stop()

    def topic(self, logical: str) -> str:
        """This test's Kafka name of a logical topic (`events`, `raw:falco`, ...)."""
        return self.catalog.name(logical)

    def produce(self, topic: str, values: Iterable[bytes], key: bytes | None = None) -> int:
        """Create the topic with Vigil's partitions and produce the values (with `key`)."""

        partitions = next(
            (spec.partitions for spec in self.catalog.specs() if spec.name == topic),
            self.settings.partitions,
        )

        async def run() -> int:
            await kafka_io.ensure_topics(
                self.bootstrap, [topic], partitions, self.settings.replicas
            )
            return await kafka_io.produce(self.bootstrap, ((topic, key, v) for v in values))

        return run_sync(run())

    def collect(
        self,
        topic: str,
        count: int,
        timeout_s: float = 90,
        worker: Worker | None = None,
        stop_when: Callable[[dict[str, Any]], bool] | None = None,
    ) -> list[dict[str, Any]]:
        """Read `topic` from the beginning until `count` records arrived, `stop_when(record)`
        returns true for the latest record, or the deadline passed.

        Returns what arrived; raises if a worker died meanwhile.
        """

        watched = [worker] if worker else list(self.started)

        async def run() -> list[dict[str, Any]]:
            records: list[dict[str, Any]] = []

            async def read() -> None:
                try:
                    async for record in kafka_io.consume(
                        self.bootstrap, topic, True, max_records=count, timeout_s=timeout_s
                    ):
                        records.append(record)
                        if stop_when is not None and stop_when(record):
                            return
                except TimeoutError:  # the topic never appeared: reported by the caller
                    return

            reader = asyncio.ensure_future(read())
            while not reader.done():
                if any(w.process.poll() is not None for w in watched):
                    reader.cancel()
                    break
                await asyncio.wait([reader], timeout=0.5)
            if reader.done() and not reader.cancelled():
                reader.result()
            return records

        records = run_sync(run())
        self._check_alive(worker, len(records) < count)
        return records

    def collect_raw(self, topic: str, count: int, timeout_s: float = 30) -> list[dict[str, Any]]:
        """Like `collect`, but values stay bytes (for raw topics)."""

        async def run() -> list[dict[str, Any]]:
            return [
                r
                async for r in kafka_io.consume(
                    self.bootstrap, topic, True, count, timeout_s, decode=False
                )
            ]

        return run_sync(run())

    def _check_alive(self, worker: Worker | None, short: bool) -> None:
        """Fail with the worker log when a worker died and output is short."""
        for w in [worker] if worker else self.started:
            if w.process.poll() is not None and short:
                raise AssertionError(f"worker exited ({w.process.returncode}):\n{w.log_tail()}")
