"""Run Vigil workers as real subprocesses and talk to the real broker from tests."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from app import kafka_io
from app.settings import REPO_ROOT, Settings
from app.sources.errors import NormalizeError
from app.sources.normalize import Normalizer
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

    def dump_stacks(self) -> None:
        """Have the worker log the stack of every thread and task (mode's SIGUSR1 handler)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGUSR1)

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def log_warnings(self, kinds: int = 4) -> str:
        """The worker's most frequent WARNING/ERROR lines (numbers and ids blanked) with their
        counts and whether it logged a traceback, in one line: for assertion messages."""
        counts: dict[str, int] = {}
        tracebacks = 0
        for line in self.log_path.read_text(errors="replace").splitlines():
            if line.startswith("Traceback"):
                tracebacks += 1
            level = re.search(r"\[(WARNING|ERROR|CRITICAL)\] (.*)", line)
            if level:
                text = re.sub(r"[0-9a-f]{8,}|\d+", "N", level.group(2))[:90]
                counts[f"{level.group(1)} {text}"] = counts.get(f"{level.group(1)} {text}", 0) + 1
        top = sorted(counts.items(), key=lambda kv: -kv[1])[:kinds]
        notes = [f"{n}x {text}" for text, n in top] or ["no warnings"]
        exited = self.process.poll()
        state = "running" if exited is None else f"exited {exited}"
        return f"{self.log_path.stem} ({state}, {tracebacks} tracebacks): " + " | ".join(notes)

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

    def stop_all(self, dump_stacks: bool = False) -> None:
        """Stop every worker this factory started (after a failed test, each first logs its
        threads' and tasks' stacks, to show where a stalled worker waits)."""
        if dump_stacks:
            for worker in self.started:
                worker.dump_stacks()
            time.sleep(2)
            for worker in self.started:
                print(f"\n--- {worker.log_path.name}, last lines (stacks) ---")
                print(worker.log_tail(400))
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


# --- Several workers: background reading, readiness, keyed produce (tests/integration/
# test_rebalance.py, scripts/chaos.py). Added helpers only; nothing above changes. ---


def wait_ready(worker: Worker, timeout_s: float = 60) -> float:
    """Seconds until the worker's `/health/ready` answers 200; raises if it exits or times out."""
    import urllib.error
    import urllib.request

    url = f"http://127.0.0.1:{worker.web_port}/health/ready"
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if worker.process.poll() is not None:
            raise AssertionError(
                f"worker exited ({worker.process.returncode}):\n{worker.log_tail()}"
            )
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return time.monotonic() - started
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.3)
    raise AssertionError(f"worker not ready after {timeout_s} s:\n{worker.log_tail()}")


def produce_records(
    bootstrap: str, records: Iterable[tuple[str, bytes | None, bytes, int | None, int | None]]
) -> int:
    """Produce `(topic, key, value, partition, timestamp_ms)` records in order (idempotent
    producer) and wait for every acknowledgement; returns the count."""
    from aiokafka import AIOKafkaProducer

    async def run() -> int:
        producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap, linger_ms=10, enable_idempotence=True, acks="all"
        )
        await producer.start()
        sent = 0
        try:
            pending = []
            for topic, key, value, partition, timestamp_ms in records:
                pending.append(
                    await producer.send(
                        topic, value, key=key, partition=partition, timestamp_ms=timestamp_ms
                    )
                )
                sent += 1
                if len(pending) >= 1000:
                    await asyncio.gather(*pending)
                    pending.clear()
            await asyncio.gather(*pending)
        finally:
            await producer.stop()
        return sent

    return run_sync(run())


def end_offsets_total(bootstrap: str, topic: str) -> int:
    """How many records `topic` holds (sum of its partitions' end offsets; 0 if missing)."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    async def run() -> int:
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
        await consumer.start()
        try:
            cluster = await consumer._client.fetch_all_metadata()
            parts = cluster.partitions_for_topic(topic) or set()
            ends = await consumer.end_offsets([TopicPartition(topic, p) for p in parts])
            return sum(ends.values())
        finally:
            await consumer.stop()

    return run_sync(run())


class TopicsReader:
    """Reads several topics from the beginning in a background thread, for as long as a test
    needs: `on_record(topic, value)` is called for every record (values JSON-decoded), under
    `lock`. `isolation_level="read_committed"` to see only committed transactions."""

    def __init__(
        self,
        bootstrap: str,
        topics: Iterable[str],
        on_record: Callable[[str, Any], None],
        isolation_level: str = "read_uncommitted",
    ) -> None:
        import threading

        self.bootstrap = bootstrap
        self.topics = list(topics)
        self.on_record = on_record
        self.isolation_level = isolation_level
        self.lock = threading.Lock()
        self.count = 0
        self.last_record_at = 0.0
        self._stopping = threading.Event()
        self._started = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="topics-reader", daemon=True)

    def __enter__(self) -> TopicsReader:
        self._thread.start()
        self._started.wait(30)
        if self._error is not None:
            raise self._error
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stopping.set()
        self._thread.join(30)

    def _main(self) -> None:
        try:
            asyncio.run(self._read())
        except BaseException as exc:  # reported to the test thread
            self._error = exc
            self._started.set()

    async def _read(self) -> None:

        import orjson
        from aiokafka import AIOKafkaConsumer, TopicPartition

        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            enable_auto_commit=False,
            isolation_level=self.isolation_level,
        )
        await consumer.start()
        try:
            cluster = await consumer._client.fetch_all_metadata()
            tps = [
                TopicPartition(t, p)
                for t in self.topics
                for p in sorted(cluster.partitions_for_topic(t) or ())
            ]
            missing = [t for t in self.topics if not cluster.partitions_for_topic(t)]
            if missing:
                raise AssertionError(f"topics do not exist (create them first): {missing}")
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            self._started.set()
            while not self._stopping.is_set():
                batches = await consumer.getmany(timeout_ms=300, max_records=2000)
                for tp, messages in batches.items():
                    for message in messages:
                        try:
                            value = orjson.loads(message.value) if message.value else None
                        except orjson.JSONDecodeError:
                            value = None
                        with self.lock:
                            self.on_record(tp.topic, value)
                            self.count += 1
                            self.last_record_at = time.monotonic()
        finally:
            await consumer.stop()

    def wait_until(
        self,
        done: Callable[[], bool],
        timeout_s: float,
        workers: Iterable[Worker] = (),
    ) -> bool:
        """Wait until `done()` (called under the lock) is true; False on timeout. Raises when
        the reader failed or one of `workers` exited."""

        deadline = time.monotonic() + timeout_s
        watched = list(workers)
        while time.monotonic() < deadline:
            if self._error is not None:
                raise self._error
            with self.lock:
                if done():
                    return True
            for w in watched:
                if w.process.poll() is not None:
                    raise AssertionError(f"worker exited ({w.process.returncode}):\n{w.log_tail()}")
            time.sleep(0.2)
        return False


def group_offsets(
    bootstrap: str, group: str, partitions: Iterable[tuple[str, int]]
) -> dict[tuple[str, int], tuple[int | None, int]]:
    """Each (topic, partition)'s committed offset in consumer group `group` (None: none) and
    its end offset, read without joining the group."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    async def run() -> dict[tuple[str, int], tuple[int | None, int]]:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False
        )
        await consumer.start()
        try:
            tps = [TopicPartition(t, p) for t, p in partitions]
            ends = await consumer.end_offsets(tps) if tps else {}
            return {
                (tp.topic, tp.partition): (await consumer.committed(tp), ends[tp]) for tp in tps
            }
        finally:
            await consumer.stop()

    return run_sync(run())


def wait_group_stable(workers: Iterable[Worker], timeout_s: float = 90) -> int:
    """Wait until every worker joined the same consumer-group generation and finished its
    recovery for it (Faust logs `Worker ready`); returns the generation. Stronger than
    `/health/ready`, which tells about one worker only (ready once its first assignment was
    recovered), not whether every worker is in the same generation."""

    joined = re.compile(r"Joined group '[^']*' \(generation (\d+)\)")
    watched = list(workers)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        generations = set()
        for w in watched:
            if w.process.poll() is not None:
                raise AssertionError(f"worker exited ({w.process.returncode}):\n{w.log_tail()}")
            text = w.log_path.read_text(errors="replace")
            matches = list(joined.finditer(text))
            if not matches or "Worker ready" not in text[matches[-1].end() :]:
                generations.add(None)
            else:
                generations.add(int(matches[-1].group(1)))
        if len(generations) == 1 and None not in generations:
            return generations.pop()
        time.sleep(0.3)
    raise AssertionError(f"group not stable after {timeout_s} s")


def event_count(records: Iterable[Any]) -> int:
    """Canonical events the generator's `records` normalize to (dead letters left out)."""
    normalizer, count = Normalizer(), 0
    for record in records:
        with contextlib.suppress(NormalizeError):  # dead-lettered
            count += len(normalizer.normalize(record.value, family=record.family))
    return count


def processed_and_lag(base: str) -> tuple[float, float]:
    """A worker's (canonical events processed, consumer lag over every assigned partition),
    from its /metrics."""
    with urllib.request.urlopen(f"{base}/metrics", timeout=5) as response:
        text = response.read().decode()
    processed, lag = 0.0, None
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "vigil_events_in_total" and sample.labels.get("topic") == "events":
                processed += sample.value
            elif sample.name == "vigil_consumer_lag_total":
                lag = sample.value
    return processed, float("inf") if lag is None else lag


def wait_processed(base: str, events: int, deadline: float) -> tuple[float, float]:
    """Poll until the worker processed `events` canonical events with no consumer lag, or the
    monotonic `deadline` passed; returns the last (processed, lag) for the caller's verdict."""
    processed, lag = 0.0, float("inf")
    while time.monotonic() < deadline:
        try:
            processed, lag = processed_and_lag(base)
        except OSError:
            processed, lag = 0.0, float("inf")
        if processed >= events and lag == 0:
            break
        time.sleep(1)
    return processed, lag
