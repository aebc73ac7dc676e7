"""The demo's scenarios (app/generator/scenarios.py): each service gets the gate decision its
scenario names, offline, after 3 and after 10 minutes of `make demo` traffic (50 records/s)."""

from __future__ import annotations

import dataclasses

import pytest

from app.generator.fleet import HOSTS, SERVICES
from app.generator.scenarios import SCENARIOS, expected_decisions, with_incidents
from app.generator.stream import TelemetryGenerator
from app.model.events import format_time
from app.model.outputs import Origin, Output
from app.pipeline import Pipeline
from app.replay import replay_events
from app.settings import REPO_ROOT, Settings
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


def test_the_demo_history_warms_the_detectors_and_the_injections_show_in_3_minutes():
    """`vigil generate --history`: after the warm-up history, the injected incident is a
    metric anomaly of the incident-prone service and the injected Falco burst an event-rate
    anomaly of its node, both within 3 minutes of going live (offline, at 10 records/s)."""
    rate, live_ms = 10.0, START_MS
    settings = dataclasses.replace(Settings(), catalogue=str(DEMO_CATALOGUE))
    pipeline = Pipeline(settings)
    generator = TelemetryGenerator(seed=7)
    records = list(generator.history(live_ms, rate))
    assert max(r.ts_ms for r in records) < live_ms
    generator.inject(live_ms + 20_000, live_ms + 40_000)
    records += generator.records(live_ms, rate, int(rate * 180))
    events = _ingested(pipeline, records)
    anomalies = [
        r["value"]
        for r in replay_events(events, settings, pipeline.catalogue, flush=False)
        if r["topic"].endswith("anomalies")
    ]
    series = {a["series"] for a in anomalies if a["window_start"] >= format_time(live_ms)}
    incident = with_incidents(SERVICES)[0]
    assert any(s.startswith(f"service:{incident}|m|") for s in series), series
    assert f"host:{HOSTS[1]}|r|falco_alerts" in series, series
