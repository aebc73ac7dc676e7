#!/usr/bin/env python3
"""Crash-safety chaos run and table-recovery timing for Vigil (`make chaos`).

    scripts/chaos.py [run] [--count 100000] [--kill-at 0.25,0.5,0.75] [--guarantee G]
    scripts/chaos.py recovery [--keys 1000000]
    scripts/chaos.py order [--count 20000] [--batch 500]

`run` (the default) generates a mixed stream with `vigil generate`'s generator (fixed seed,
20 records/s of event time, so windows close and alert timers fire), computes every output the
offline pipeline derives from it (the spec: `app.replay.offline_replay`'s algorithm with
`flush=False`, fed the records with the exact Kafka coordinates a worker will see), produces the
stream to an isolated topic prefix (each family under one constant key, as `vigil replay` does,
so one source's records stay in one raw partition and in event-time order), runs a worker,
SIGKILLs it each time `vigil.events` holds the given shares of the expected events and restarts
it on the same data dir, waits until every output arrived, then prints one row per downstream
topic. It exits 1 when, on a topic whose records depend only on each source's own order, an
expected id is lost, an id arrives with another value or that the spec does not emit, or
repeats of one id differ; every topic is judged so (ORDER_DEPENDENT, the topics once judged on
coarse keys only, is empty). `--kill-at ''` is a crash-free run, which must match the spec
too.

Under `--guarantee exactly_once` (Faust's PROCESSING_GUARANTEE) the outputs are read with
`isolation_level=read_committed`, as a transactional pipeline's consumers must; a second table
shows what a `read_uncommitted` consumer sees.

`recovery` times how long a worker with an empty data dir takes to restore a table of N small
keys from its changelog: a first worker creates the tables' changelog topics, N entity-stats
records are produced straight into `<app id>-entity-stats-changelog` in Faust's format (JSON
string key, orjson value, in the key's partition), then a fresh worker is started and timed
until `/health/ready` answers 200 after recovery; a restart on the kept data dir is timed too.

`order` (no Kafka) processes the same events in event-time order and in the order a worker
reading a backlog sees them (`--batch` records of one raw topic, then of the next) and prints
the output counts of both: what the order-dependent topics depend on.

Topics are deleted afterwards (`--keep` keeps them); worker logs stay in var/chaos/<tag>/.

This file is the command line; scripts/chaos_check.py holds the spec and the comparison (pure,
no Kafka), chaos_kafka.py the Kafka plumbing, and chaos_run.py, chaos_recovery.py and
chaos_order.py one subcommand each.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from chaos_order import run_order  # noqa: E402
from chaos_recovery import run_recovery  # noqa: E402
from chaos_run import run_chaos  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", nargs="?", default="run", choices=("run", "recovery", "order"))
    parser.add_argument("--count", type=int, default=100_000, help="raw records (run)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--rate", type=float, default=20.0, help="records per s of event time")
    parser.add_argument("--start-ms", type=int, default=None, help="first event time")
    parser.add_argument(
        "--kill-at",
        default="0.25,0.5,0.75",
        help="SIGKILL when vigil.events holds these shares of the expected events ('' = none)",
    )
    parser.add_argument(
        "--guarantee",
        default=os.environ.get("PROCESSING_GUARANTEE", "at_least_once"),
        choices=("at_least_once", "exactly_once"),
    )
    parser.add_argument("--no-uncommitted", action="store_true", help="exactly_once: one table")
    parser.add_argument("--settle", type=float, default=15.0, help="quiet s after completion")
    parser.add_argument("--stall", type=float, default=120.0, help="quiet s before giving up")
    parser.add_argument("--timeout", type=float, default=1800.0, help="overall limit, s")
    parser.add_argument("--keys", type=int, default=1_000_000, help="table keys (recovery)")
    parser.add_argument(
        "--ready-timeout", type=float, default=900.0, help="recovery: wait for ready, s"
    )
    parser.add_argument(
        "--strict", action="store_true", help="also fail on order-dependent coarse keys lost"
    )
    parser.add_argument("--batch", type=int, default=500, help="order: records per topic turn")
    parser.add_argument("--keep", action="store_true", help="keep the topics")
    parser.add_argument("--json", help="also write the result as JSON to this file")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    os.chdir(REPO)
    if args.mode == "recovery":
        return asyncio.run(run_recovery(args))
    if args.mode == "order":
        return run_order(args)
    return asyncio.run(run_chaos(args))


if __name__ == "__main__":
    sys.exit(main())
