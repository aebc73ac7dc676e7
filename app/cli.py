"""The `vigil` command line: worker, produce, consume, replay, normalize, generate.

Every subcommand prints JSON lines on stdout and reports errors as one line on stderr with a
non-zero exit status; no traceback escapes for bad input.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import orjson

from app.model.events import format_time, parse_time
from app.settings import Settings
from app.sources.decode import too_large
from app.sources.errors import NormalizeError
from app.sources.files import OversizeRecord, file_records
from app.topics import RAW_FAMILIES, TopicCatalog


def _out(record: object) -> None:
    sys.stdout.buffer.write(orjson.dumps(record) + b"\n")


def _err(record: dict) -> None:
    sys.stderr.buffer.write(orjson.dumps(record) + b"\n")
    sys.stderr.flush()


def _resolve_topic(catalog: TopicCatalog, name: str) -> str:
    """Accept `telemetry.falco` / `vigil.events` (prefixed when a prefix is set) or a raw name."""
    prefix = catalog.settings.topic_prefix
    for spec in catalog.specs():
        unprefixed = spec.name.removeprefix(prefix) if prefix else spec.name
        if name in (spec.name, unprefixed, spec.logical):
            return spec.name
    return name


def _partitions_of(catalog: TopicCatalog, topic: str) -> int:
    """Vigil's partition count for one of its topics (control and audit have one)."""
    for spec in catalog.specs():
        if spec.name == topic:
            return spec.partitions
    return catalog.settings.partitions


def _file_key(path: str) -> bytes:
    """Records of one file share a key, so they stay in one partition and in file order."""
    return Path(path).name.encode()


def _producible(path: str, settings: Settings, skipped: list[int]) -> Iterator[bytes]:
    """The records of a file to produce. One over `VIGIL_MAX_RECORD_BYTES` is reported on
    stderr and left out (counted in `skipped`): it is never held whole, and a worker would
    only dead-letter it."""
    for index, raw in file_records(path, settings.max_record_bytes):
        if isinstance(raw, OversizeRecord):
            error = too_large(raw.size, settings.max_record_bytes)
            message = f"{error.message}; not produced"
            _err({"file": path, "record": index, "error_code": "too_large", "message": message})
            skipped.append(index)
            continue
        yield raw


def cmd_worker(args: argparse.Namespace) -> int:
    """Run a Faust worker with every agent, table and web view.

    Every Vigil topic is created first, with its partition count: a consumer's metadata request
    for a missing topic would otherwise let a broker with `auto.create.topics.enable` create it
    with the broker's default partition count, breaking co-partitioning with the tables.
    """
    from app import kafka_io

    settings = Settings.from_env()
    catalog = TopicCatalog(settings)

    async def declare() -> None:
        by_count: dict[int, list[str]] = {}
        for spec in catalog.specs():
            by_count.setdefault(spec.partitions, []).append(spec.name)
        for partitions, names in sorted(by_count.items()):
            await kafka_io.ensure_topics(
                settings.bootstrap_servers, names, partitions, settings.replicas
            )

    asyncio.run(declare())
    if settings.event_loop == "uvloop":
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())  # before the app's loop
    from app.main import app

    sys.argv = ["vigil", "worker", "--loglevel", args.loglevel]
    app.main()
    return 0


def cmd_produce(args: argparse.Namespace, settings: Settings) -> int:
    """Produce each record of the files to one topic (creating it with Vigil's partitions)."""
    from app import kafka_io

    catalog = TopicCatalog(settings)
    topic = _resolve_topic(catalog, args.topic)

    skipped: list[int] = []

    def records() -> Iterator[tuple[str, bytes | None, bytes]]:
        for path in args.files:
            key = _file_key(path)
            for raw in _producible(path, settings, skipped):
                yield topic, key, raw

    async def run() -> int:
        await kafka_io.ensure_topics(
            settings.bootstrap_servers, [topic], _partitions_of(catalog, topic), settings.replicas
        )
        return await kafka_io.produce(settings.bootstrap_servers, records())

    count = asyncio.run(run())
    _err({"produced": count, "topic": topic})
    return 1 if skipped else 0


def cmd_consume(args: argparse.Namespace, settings: Settings) -> int:
    """Print the records of a topic as JSON lines."""
    from app import kafka_io

    catalog = TopicCatalog(settings)
    topic = _resolve_topic(catalog, args.topic)

    async def run() -> None:
        async for record in kafka_io.consume(
            settings.bootstrap_servers, topic, args.from_beginning, args.max, args.timeout
        ):
            _out(record)
            sys.stdout.flush()

    try:
        asyncio.run(run())
    except TimeoutError as exc:
        _err({"error": str(exc)})
        return 1
    return 0


def cmd_replay(args: argparse.Namespace, settings: Settings) -> int:
    """Offline: print every record Vigil would emit. Online: produce files to their raw topics."""
    from app.replay import file_family, offline_replay

    missing = [p for p in args.files if not Path(p).is_file()]
    if missing:
        _err({"error": "no such file", "files": missing})
        return 2
    if args.offline:
        for record in offline_replay(args.files, settings, family=args.family):
            _out(record)
        return 0

    from app import kafka_io

    catalog = TopicCatalog(settings)
    plan: list[tuple[str, str]] = []
    for path in args.files:
        family = args.family or file_family(path)
        if family is None:
            _err({"error": "unknown format; pass --family", "file": path})
            return 2
        plan.append((path, catalog.raw(family)))

    skipped: list[int] = []

    def records() -> Iterator[tuple[str, bytes | None, bytes]]:
        for path, topic in plan:
            key = _file_key(path)
            for raw in _producible(path, settings, skipped):
                yield topic, key, raw

    async def run() -> int:
        await kafka_io.ensure_topics(
            settings.bootstrap_servers,
            [t for _, t in plan],
            settings.partitions,
            settings.replicas,
        )
        return await kafka_io.produce(settings.bootstrap_servers, records())

    count = asyncio.run(run())
    _err({"produced": count, "files": len(plan)})
    return 1 if skipped else 0


def cmd_normalize(args: argparse.Namespace, settings: Settings) -> int:
    """Normalize files offline; events on stdout, one JSON error line per bad record on stderr.

    Files are read a record at a time (app/sources/files.py): memory stays bounded by
    `VIGIL_MAX_RECORD_BYTES` whatever a file's size.
    """
    from app.pipeline import build_normalizer

    normalizer = build_normalizer(settings)
    failures = 0

    def failed(path: str, index: int, error: NormalizeError, event: int | None = None) -> None:
        nonlocal failures
        failures += 1
        where = {"file": path, "record": index} | ({} if event is None else {"event": event})
        _err(where | {"error_code": error.code.value, "message": error.message})

    for path in args.files:
        try:
            for index, raw in file_records(path, settings.max_record_bytes):
                if isinstance(raw, OversizeRecord):
                    failed(path, index, too_large(raw.size, settings.max_record_bytes))
                    continue
                try:
                    normalized = normalizer.normalize_record(raw, source=args.source)
                except NormalizeError as exc:
                    failed(path, index, exc)
                    continue
                for event_index, error in normalized.rejected:
                    failed(path, index, error, event_index)
                for event in normalized.events:
                    _out(event.to_dict())
        except OSError as exc:
            _err({"file": path, "error_code": "unreadable", "message": exc.strerror or str(exc)})
            failures += 1
    return 1 if failures else 0


def cmd_silence(args: argparse.Namespace, settings: Settings) -> int:
    """Create or expire a silence by sending a command to the control topic."""
    from tables.alerts.silences import check_silence_bounds, parse_silence

    now_ms = int(time.time() * 1000)
    if args.action == "add":
        starts = args.start or format_time(now_ms)
        try:
            silence = parse_silence(
                {
                    "matchers": args.matcher,
                    "startsAt": starts,
                    "endsAt": format_time(parse_time(starts) + int(args.hours * 3_600_000)),
                    "createdBy": args.by,
                    "comment": args.comment,
                }
            )
            check_silence_bounds(silence, now_ms, int(settings.silence_max_hours * 3_600_000))
        except ValueError as exc:
            _err({"error": "invalid silence", "message": str(exc)})
            return 2
        command = {"command": "silence.create", "silence": silence}
    else:
        command = {
            "command": "silence.expire",
            "id": args.id,
            "at": format_time(now_ms),
            "by": args.by,
        }
    _send_control(settings, command)
    return 0


def _send_control(settings: Settings, command: dict) -> None:
    """Write one command on the control topic (creating it if needed) and print it."""
    from app import kafka_io

    catalog = TopicCatalog(settings)
    topic = catalog.name("control")

    async def run() -> int:
        await kafka_io.ensure_topics(
            settings.bootstrap_servers, [topic], catalog.partitions("control"), settings.replicas
        )
        return await kafka_io.produce(
            settings.bootstrap_servers, [(topic, None, orjson.dumps(command))]
        )

    asyncio.run(run())
    _out(command)


def cmd_policy(args: argparse.Namespace, settings: Settings) -> int:
    """Test policies, evaluate them on a document, or have every worker reload them."""
    from app.policy import commands
    from tables.compliance.policy_rules import policy_dirs

    if args.action == "test":
        return commands.run_tests(args.dirs)
    dirs = [*policy_dirs(settings.policy_dir or None), *args.policies]
    if args.action == "eval":
        return commands.evaluate_file(args.input, dirs)
    if not args.no_check:  # the workers would reject it too: say so now
        from app.policy.loader import PolicyError, load_policies

        try:
            load_policies(dirs)
        except PolicyError as exc:
            _err({"error": "policy set does not load", "message": str(exc)})
            return 2
    command = {"command": "policy.reload", "by": args.by, "why": args.comment}
    _send_control(settings, {**command, "at": format_time(int(time.time() * 1000))})
    return 0


def cmd_nab(args: argparse.Namespace, settings: Settings) -> int:
    """Run the pipeline's metric detector over every NAB series (NAB's results layout)."""
    from app.nab import nab_main

    return nab_main(args.data, args.out)


def cmd_nab_score(args: argparse.Namespace, settings: Settings) -> int:
    """Score a NAB results folder: three profiles, threshold sweep, normalized scores."""
    from app.nab import score_main

    if args.loco:
        from app.nab_loco import loco_main

        return loco_main(args.data or "", args.windows, cuts=args.cuts)
    if not args.results:
        print("nab-score needs --results (or --loco with --data)", file=sys.stderr)
        return 2
    return score_main(args.results, args.windows, args.data)


def cmd_generate(args: argparse.Namespace, settings: Settings) -> int:
    """Emit synthetic telemetry: to the raw topics (default) or as JSON lines on stdout."""
    from app.generator.stream import TelemetryGenerator

    generator = TelemetryGenerator(seed=args.seed, bad_ratio=args.bad_ratio)
    if args.stdout:
        count = args.count if args.count is not None else int(args.rate * (args.duration or 10))
        # By default the stream ends now: no event time ahead of the wall clock, which a
        # worker would dead-letter past VIGIL_MAX_FUTURE_SKEW_MS.
        span_ms = int(count * 1000 / args.rate) if args.rate > 0 else 0
        now_ms = int(time.time() * 1000)
        start_ms = args.start_ms if args.start_ms is not None else now_ms - span_ms
        for record in generator.records(start_ms, args.rate, count):
            _out({"family": record.family, "raw": record.value.decode("utf-8", "replace")})
        return 0

    from app import kafka_io

    catalog = TopicCatalog(settings)

    async def run() -> int:
        await kafka_io.ensure_topics(
            settings.bootstrap_servers, catalog.raw_topics(), settings.partitions, settings.replicas
        )
        return await _generate_live(generator, catalog, settings, args)

    try:
        sent = asyncio.run(run())
    except KeyboardInterrupt:
        return 130
    _err({"generated": sent})
    return 0


#: `--history`: when, after going live, the incident and the Falco burst start.
INJECT_SPIKE_AFTER_MS = 20_000
INJECT_BURST_AFTER_MS = 40_000


async def _generate_live(generator, catalog, settings, args) -> int:
    """Produce at `args.rate` records/s with event time = now, until count or duration; each
    family under one key (`RawRecord.key`: one source, one raw partition, in order)."""
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap_servers,
        linger_ms=20,
        **settings.kafka.aiokafka_kwargs(),
    )
    await producer.start()
    if args.history:
        now_ms = int(time.time() * 1000)
        history = 0
        for record in generator.history(now_ms, args.rate):
            await producer.send(
                catalog.raw(record.family),
                key=record.key,
                value=record.value,
                timestamp_ms=record.ts_ms,
            )
            history += 1
        await producer.flush()
        _err({"history": history, "until": now_ms})
        live_ms = int(time.time() * 1000)
        generator.inject(live_ms + INJECT_SPIKE_AFTER_MS, live_ms + INJECT_BURST_AFTER_MS)
    sent = 0
    started = time.monotonic()
    try:
        while args.count is None or sent < args.count:
            elapsed = time.monotonic() - started
            if args.duration is not None and elapsed >= args.duration:
                break
            due = int(elapsed * args.rate) + 1 - sent
            now_ms = int(time.time() * 1000)
            for _ in range(max(0, min(due, (args.count or sys.maxsize) - sent))):
                record = generator.record_at(now_ms)
                await producer.send(catalog.raw(record.family), key=record.key, value=record.value)
                sent += 1
            if sent and sent % max(1, int(args.rate * 10)) < max(due, 1):
                _err({"generated": sent, "elapsed_s": round(elapsed, 1)})
            await asyncio.sleep(0.05)
        await producer.flush()
    finally:
        await producer.stop()
    return sent


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every subcommand."""
    parser = argparse.ArgumentParser(prog="vigil", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("worker", help="run a Faust worker (agents, tables, web view)")
    p.add_argument("--loglevel", "-l", default=Settings.from_env().log_level)

    p = sub.add_parser("produce", help="produce file records to a topic")
    p.add_argument("--topic", "-t", required=True)
    p.add_argument("files", nargs="+")

    p = sub.add_parser("consume", help="print a topic's records as JSON lines")
    p.add_argument("--topic", "-t", required=True)
    p.add_argument("--from-beginning", action="store_true")
    p.add_argument("--max", type=int, default=None, help="stop after N records")
    p.add_argument("--timeout", type=float, default=None, help="stop after S seconds")

    p = sub.add_parser("replay", help="replay telemetry files (offline, or to the raw topics)")
    p.add_argument("--offline", action="store_true", help="run the pipeline in-process")
    p.add_argument("--family", choices=RAW_FAMILIES, help="raw family (default: detected)")
    p.add_argument("files", nargs="+")

    p = sub.add_parser("normalize", help="normalize files to canonical events (offline)")
    p.add_argument("--source", help="force one adapter (falco, trivy, sarif, ...)")
    p.add_argument("files", nargs="+")

    p = sub.add_parser("silence", help="create or expire a silence (via the control topic)")
    silence_sub = p.add_subparsers(dest="action", required=True)
    q = silence_sub.add_parser("add", help="mute alerts matching every matcher")
    q.add_argument(
        "--matcher",
        "-m",
        action="append",
        required=True,
        help='label matcher, e.g. alertname="Write below root" (repeatable)',
    )
    q.add_argument(
        "--hours", type=float, default=2.0, help="duration (default 2; VIGIL_SILENCE_MAX_HOURS)"
    )
    q.add_argument("--start", default=None, help="start time (default now)")
    q.add_argument("--by", required=True, help="who creates it (recorded as createdBy)")
    q.add_argument("--comment", required=True, help="why")
    q = silence_sub.add_parser("expire", help="end a silence now")
    q.add_argument("id")
    q.add_argument("--by", required=True, help="who expires it")

    p = sub.add_parser("policy", help="test, evaluate or reload the Rego policies")
    policy_sub = p.add_subparsers(dest="action", required=True)
    q = policy_sub.add_parser("test", help="run a policy set's test_* rules (OPA's convention)")
    q.add_argument("dirs", nargs="+", help="policy directories or files")
    q = policy_sub.add_parser("eval", help="print the violations of one document")
    q.add_argument("--input", "-i", required=True, help="plan JSON, Kubernetes object or events")
    q.add_argument(
        "--policies", "-p", action="append", default=[], help="more policy dirs (repeatable)"
    )
    q = policy_sub.add_parser("reload", help="every worker reloads its policy directories")
    q.add_argument("--by", required=True, help="who asks (recorded in the audit trail)")
    q.add_argument("--comment", default="policy reload", help="why")
    q.add_argument("--no-check", action="store_true", help="send without loading the set here")
    q.set_defaults(policies=[])

    p = sub.add_parser("nab", help="run the metric anomaly detector over a NAB data folder")
    p.add_argument("--data", required=True, help="NAB data dir: <category>/<file>.csv")
    p.add_argument("--out", required=True, help="results dir (writes vigil/<category>/...)")

    p = sub.add_parser("nab-score", help="score NAB results with NAB's scoring rules")
    p.add_argument("--results", default=None, help="results dir of one detector")
    p.add_argument("--windows", required=True, help="combined_windows.json")
    p.add_argument("--data", default=None, help="data dir, to check row counts")
    p.add_argument(
        "--loco", action="store_true", help="leave-one-category-out tuning and scoring of --data"
    )
    p.add_argument(
        "--cuts",
        action="store_true",
        help="with --loco: also the short-history proxy (LOCO over 1,500-2,500-row cuts)",
    )

    p = sub.add_parser("generate", help="synthetic telemetry for the demo and benchmarks")
    p.add_argument("--rate", type=float, default=50.0, help="records per second")
    p.add_argument("--count", type=int, default=None, help="stop after N records")
    p.add_argument("--duration", type=float, default=None, help="stop after S seconds")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--bad-ratio", type=float, default=0.005, help="share of malformed records")
    p.add_argument("--start-ms", type=int, default=None, help="first event time (--stdout)")
    p.add_argument("--stdout", action="store_true", help="print records instead of producing")
    p.add_argument(
        "--history",
        action="store_true",
        help="first replay a warm-up history ending now, then inject an incident and a Falco "
        "burst in the first minute (what `make demo` runs)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `vigil` console script."""
    args = build_parser().parse_args(argv)
    try:
        settings = Settings.from_env()  # VIGIL_KAFKA_* included
    except ValueError as exc:
        _err({"error": "invalid setting", "message": str(exc)})
        return 2
    if args.command == "worker":
        return cmd_worker(args)
    handlers = {
        "silence": cmd_silence,
        "policy": cmd_policy,
        "nab": cmd_nab,
        "nab-score": cmd_nab_score,
        "produce": cmd_produce,
        "consume": cmd_consume,
        "replay": cmd_replay,
        "normalize": cmd_normalize,
        "generate": cmd_generate,
    }
    try:
        return handlers[args.command](args, settings)
    except KeyboardInterrupt:
        return 130
    except OSError as exc:
        _err({"error": type(exc).__name__, "message": str(exc)})
        return 1


if __name__ == "__main__":
    sys.exit(main())
