"""The demo's scenarios through a worker (app/generator/scenarios.py): `vigil generate`'s records
for 3 and then 10 minutes of `make demo` traffic (50 records/s of event time, ending now), the
demo catalogue, and `GET /gate/{service}` after each: every service gets the decision its
scenario names, and no two services score alike.

The records are produced as fast as the broker takes them (the content is exactly the demo's;
only the replay speed differs), and each check waits until the worker has processed and
committed everything: a failure says whether the records were still in flight (late) or the
decisions were wrong.
"""

from __future__ import annotations

import time

import pytest

from app.generator.scenarios import expected_decisions
from app.generator.stream import TelemetryGenerator
from tests.integration.harness import event_count, produce_records, wait_processed
from tests.integration.test_gate_broker import CATALOGUE
from tests.integration.test_web_api import READ, TOKENS, get

pytestmark = pytest.mark.integration

DEMO_RATE = 50.0
MIN_MS = 60_000
#: How long the worker may take to catch up with a segment on a loaded 2-core machine.
CATCH_UP_S = 240.0
#: How long the decisions may take to settle once everything is processed.
SETTLE_S = 60.0


def _decisions(base: str) -> dict[str, dict]:
    answers = {}
    for service in expected_decisions():
        status, answer = get(f"{base}/gate/{service}", READ)
        assert status == 200, (service, status, answer)
        answers[service] = answer
    return answers


def test_each_demo_service_gets_its_scenarios_decision_at_3_and_10_minutes(workers):
    # A source is idle after 10 s without records (not the tests' 2 s): produced as a backlog,
    # a raw partition read to its end while the producer is still busy must not let the clock
    # pass records still to come (a deployment would then be judged before its scan arrives).
    worker = workers.start("demo", VIGIL_CATALOGUE=CATALOGUE, VIGIL_CLOCK_IDLE_MS="10000", **TOKENS)
    base = f"http://127.0.0.1:{worker.web_port}"
    end_ms = int(time.time() * 1000) - 5_000
    start_ms = end_ms - 10 * MIN_MS
    records = list(TelemetryGenerator(seed=7).records(start_ms, DEMO_RATE, int(DEMO_RATE * 600)))
    expected = expected_decisions()
    produced = 0
    for minutes in (3, 10):
        segment = [r for r in records[produced:] if r.ts_ms < start_ms + minutes * MIN_MS]
        produced += len(segment)
        produce_records(
            workers.bootstrap,
            ((workers.topic(f"raw:{r.family}"), None, r.value, None, r.ts_ms) for r in segment),
        )
        events = event_count(records[:produced])
        processed, lag = wait_processed(base, events, time.monotonic() + CATCH_UP_S)
        assert processed >= events and lag == 0, (
            f"late after {minutes} min of demo traffic: {processed:.0f} of {events} events "
            f"processed, consumer lag {lag} after {CATCH_UP_S:.0f} s\n{worker.log_tail()}"
        )
        deadline = time.monotonic() + SETTLE_S
        while True:
            answers = _decisions(base)
            got = {s: a["decision"] for s, a in answers.items()}
            if got == expected or time.monotonic() > deadline:
                break
            time.sleep(2)
        detail = {
            s: (a["decision"], a["score"], [r["message"] for r in a["reasons"]])
            for s, a in answers.items()
        }
        assert got == expected, f"after {minutes} min (all processed): {detail}"
        scores = [a["score"] for a in answers.values()]
        assert len(set(scores)) == len(scores) and max(scores) < 100, detail
