"""The demo's scenarios (app/generator/scenarios.py): each service gets the gate decision its
scenario names, offline, after 3 and after 10 minutes of `make demo` traffic (50 records/s)."""

from __future__ import annotations

import dataclasses
from collections import defaultdict

import pytest

from app.generator.fleet import HOSTS, SERVICES
from app.generator.scenarios import SCENARIOS, expected_decisions, with_incidents
from app.generator.stream import RawRecord, TelemetryGenerator
from app.model.events import Event, format_time
from app.model.outputs import Origin, Output
from app.pipeline import Pipeline
from app.replay import replay_events
from app.settings import REPO_ROOT, Settings
from app.topics import entity_partition
from tables.risk.scorecards import gate

DEMO_CATALOGUE = REPO_ROOT / "docs" / "catalogue.example.yaml"

DEMO_RATE = 50.0
START_MS = 1_780_000_000_000


def _ingested(pipeline: Pipeline, records) -> list[Output]:
    """The canonical events (`events` outputs of the ingest stage) of generated records."""
    events: list[Output] = []
    for offset, record in enumerate(records):
        origin = Origin(topic=record.family, partition=None, offset=offset)
        outputs = pipeline.ingest(record.value, record.family, origin)
        events += [o for o in outputs if o.topic == "events"]
    return events


def _demo(minutes: int) -> dict[str, dict]:
    """Service -> gate answer at the end of `minutes` of demo traffic replayed offline with
    the demo's catalogue."""
    settings = dataclasses.replace(Settings(), catalogue=str(DEMO_CATALOGUE))
    pipeline = Pipeline(settings)
    generated = TelemetryGenerator(seed=7).records(
        START_MS, DEMO_RATE, int(DEMO_RATE * 60 * minutes)
    )
    states: dict = {}
    replayed = replay_events(
        _ingested(pipeline, generated),
        settings,
        pipeline.catalogue,
        flush=False,
        risk_states=states,
    )
    for _ in replayed:
        pass  # run the replay to its end: `states` then holds the risk tables
    now_ms = START_MS + minutes * 60_000
    answers = {}
    for state in states.values():
        for subject in expected_decisions():
            if state.get(subject) is not None:
                answers[subject] = gate(state.get(subject), None, now_ms, settings.risk)
    return answers


@pytest.mark.parametrize("minutes", [3, 10])
def test_each_scenario_gets_its_decision(minutes):
    answers = _demo(minutes)
    got = {s: answers[s]["decision"] for s in answers}
    assert got == expected_decisions(), {s: (a["score"], a["reasons"]) for s, a in answers.items()}
    scores = {s: a["score"] for s, a in answers.items()}
    assert max(scores.values()) < 100, scores
    # Scores rank the scenarios: exploited > regressing > noisy > clean.
    order = ("payments", "checkout", "search", "auth")
    assert [scores[s] for s in order] == sorted((scores[s] for s in order), reverse=True), scores
    assert len(set(scores.values())) == len(scores), scores


def test_scenarios_name_known_services_and_decisions():
    assert set(SCENARIOS) == set(SERVICES)
    assert set(expected_decisions().values()) <= {"allow", "warn", "block"}


def _read_from_raw_partitions(records: list[RawRecord], partitions: int) -> list[RawRecord]:
    """The records in an order a worker may read them: each in the raw partition its key puts
    it in (Kafka's default partitioner, as `entity_partition` applies it), one partition read
    to its end before the next (the furthest a partition can run ahead of the others)."""
    held: dict[tuple[str, int], list[RawRecord]] = defaultdict(list)
    for record in records:
        held[(record.family, entity_partition(record.key.decode(), partitions))].append(record)
    return [record for place in sorted(held) for record in held[place]]


def _processed_in_arrival_order(settings: Settings, records: list[RawRecord]) -> list[Output]:
    """What the process agent emits for `records` in the order they come (not sorted by event
    time, unlike `replay_events`), each event in its `vigil.events` partition."""
    pipeline = Pipeline(settings)
    partitions = {p: Pipeline(settings) for p in range(settings.partitions)}
    outputs: list[Output] = []
    for out in _ingested(pipeline, records):
        partition = entity_partition(out.key or "", settings.partitions)
        step = partitions[partition].process(Event.from_dict(out.value), partition)
        step.commit()
        outputs += step.outputs
    return outputs


def test_the_demo_history_warms_the_detectors_and_the_injections_show_in_3_minutes():
    """`vigil generate --history` at the demo's rate: after the warm-up history, the injected
    incident is a metric anomaly of the incident-prone service (none of its metrics before it)
    and the injected Falco burst an event-rate anomaly of its node, within 3 minutes of going
    live. The worker reads the raw partitions at its own pace: the generator's keys keep each
    source in one partition, so none of the history is late, however far one partition runs
    ahead (spread over partitions, most of it was, and the detector was still warming up)."""
    live_ms = START_MS
    spike_ms, burst_ms = live_ms + 20_000, live_ms + 40_000
    settings = dataclasses.replace(Settings(), catalogue=str(DEMO_CATALOGUE))
    generator = TelemetryGenerator(seed=7)
    records = list(generator.history(live_ms, DEMO_RATE))
    assert max(r.ts_ms for r in records) < live_ms
    generator.inject(spike_ms, burst_ms)
    records += generator.records(live_ms, DEMO_RATE, int(DEMO_RATE * 180))
    outputs = _processed_in_arrival_order(
        settings, _read_from_raw_partitions(records, settings.partitions)
    )
    assert [o.value["series"] for o in outputs if o.topic == "late"] == []
    anomalies = [o.value for o in outputs if o.topic == "anomalies"]
    incident = f"service:{with_incidents(SERVICES)[0]}|m|"
    before = [a for a in anomalies if a["series"].startswith(incident)]
    after = [a for a in before if a["window_end"] > format_time(spike_ms)]
    assert after and after == before, [(a["window_end"], a["series"]) for a in before]
    burst = f"host:{HOSTS[1]}|r|falco_alerts"
    assert any(a["series"] == burst and a["window_end"] > format_time(burst_ms) for a in anomalies)
