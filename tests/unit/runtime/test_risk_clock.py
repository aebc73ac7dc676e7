"""The risk stage's clock (app/runtime/risk_clock.py): signals from several `vigil.events`
partitions give the same scores and scorecards whatever order they interleave in."""

from __future__ import annotations

import random
from typing import Any

from app.pipeline import NOT_STARTED
from app.runtime.risk_clock import RiskClock, tick_signal, watermark_key
from app.runtime.staged import StagedState
from tables.risk.model import RiskConfig
from tables.risk.signals import signals_from
from tables.risk.stage import RiskStage
from tests.unit.risk.risk_helpers import (
    CATALOGUE,
    HOUR,
    MIN,
    T0,
    Harness,
    ci_event,
    falco_alert,
    kev_finding,
)

PRODUCERS = 2


def heartbeat(producer: int, at: int, kind: str = "tick") -> dict[str, Any]:
    return tick_signal(f"{producer}>x", at, producer, kind)


def producer_streams() -> dict[int, list[dict[str, Any]]]:
    """What two producers send, each in its own (time) order: signals about one service, and
    a heartbeat at every 5-minute boundary their clock crossed."""
    sha = "a" * 40
    zero = [
        *signals_from(None, [kev_finding("firing", T0 + MIN)], CATALOGUE),
        *signals_from(ci_event("failure", T0 + 7 * MIN, 1, sha), [], CATALOGUE),
        *signals_from(None, [falco_alert("resolved", T0 + 31 * MIN)], CATALOGUE),
    ]
    one = [
        *signals_from(None, [falco_alert("firing", T0 + 3 * MIN)], CATALOGUE),
        *signals_from(ci_event("success", T0 + 12 * MIN, 2, sha), [], CATALOGUE),
        *signals_from(None, [kev_finding("resolved", T0 + 40 * MIN)], CATALOGUE),
    ]
    streams: dict[int, list[dict[str, Any]]] = {}
    for producer, signals in ((0, zero), (1, one)):
        timeline = [(s["time_ms"], 1, s) for s in signals]
        timeline += [(b, 0, heartbeat(producer, b)) for b in range(T0, T0 + 2 * HOUR, 5 * MIN)]
        streams[producer] = [item for *_, item in sorted(timeline, key=lambda x: x[:2])]
    return streams


def run(order: list[dict[str, Any]], producers: int | None = PRODUCERS) -> list[Any]:
    """Every output of one risk partition fed `order` (`producers` None: the old clock, every
    signal moves it)."""
    stage = RiskStage()
    clock = RiskClock(stage, producers=producers)
    table: dict[str, Any] = {}
    outputs = []
    for signal in order:
        staged = StagedState(table, owner=0)
        outputs += clock.on_signal(signal, 0, staged)
        staged.commit()
    return [(out.topic, out.value) for out in outputs]


def test_any_interleaving_of_the_producers_gives_the_same_outputs():
    streams = producer_streams()
    one_then_other = streams[0] + streams[1]
    other_then_one = streams[1] + streams[0]
    expected = run(one_then_other)
    assert [t for t, _ in expected].count("risk") >= 3
    assert run(other_then_one) == expected
    rng = random.Random(3)
    for _ in range(20):  # random merges, each producer's own order kept
        queues = {p: list(s) for p, s in streams.items()}
        merged = []
        while any(queues.values()):
            producer = rng.choice([p for p, q in queues.items() if q])
            merged.append(queues[producer].pop(0))
        assert run(merged) == expected


def test_without_producers_the_order_changes_the_scores():
    """The old clock (every signal moves it) is order-dependent: the test above has teeth."""
    streams = producer_streams()
    one_then_other = run(streams[0] + streams[1], producers=None)
    assert run(streams[1] + streams[0], producers=None) != one_then_other


def _stage() -> tuple[RiskStage, dict[str, Any], Any]:
    stage = RiskStage()
    clock = RiskClock(stage, producers=PRODUCERS)
    table: dict[str, Any] = {}

    def send(signal: dict[str, Any]) -> list[Any]:
        staged = StagedState(table, owner=0)
        outputs = clock.on_signal(signal, 0, staged)
        staged.commit()
        return outputs

    return stage, table, send


def test_signals_wait_until_every_producer_is_past_them():
    _, table, send = _stage()
    finding = signals_from(None, [kev_finding("firing", T0 + MIN)], CATALOGUE)[0]
    assert send(finding) == []
    assert send(heartbeat(0, T0 + 10 * MIN)) == []  # producer 1 not heard from yet
    assert table["payments"]["pend"]
    # a producer still waiting for its sources holds the clock back
    assert send(heartbeat(1, NOT_STARTED, "clock")) == []
    scored = send(heartbeat(1, T0 + 5 * MIN, "clock"))
    assert [out.topic for out in scored] == ["risk"]
    assert scored[0].value["time_ms"] == T0 + MIN
    assert table["payments"]["pend"] == []


def test_a_slow_producer_holds_the_clock_an_idle_one_does_not():
    """Only a declaration makes a producer stop holding the clock: a backlog is not idleness."""
    _, table, send = _stage()
    finding = signals_from(None, [kev_finding("firing", T0 + MIN)], CATALOGUE)[0]
    send(heartbeat(1, T0, "clock"))
    send(finding)
    for minutes in (10, 20, 30):  # producer 0 runs ahead, producer 1 is silent: held
        assert send(heartbeat(0, T0 + minutes * MIN, "clock")) == []
    idle = {**heartbeat(1, T0, "clock"), "idle": True}  # nothing left to send
    scored = send(idle)
    assert next(out.value["time_ms"] for out in scored if out.topic == "risk") == T0 + MIN
    assert table[watermark_key(0)]["clock"] == T0 + 30 * MIN - 1
    # every producer idle: the clock goes to the newest clock reported
    send({**heartbeat(0, T0 + 40 * MIN, "clock"), "idle": True})
    assert table[watermark_key(0)]["clock"] == T0 + 40 * MIN - 1


def test_the_gate_sees_held_signals():
    stage = RiskStage()
    clock = RiskClock(stage, producers=PRODUCERS)
    table: dict[str, Any] = {}
    staged = StagedState(table, owner=0)
    for signal in signals_from(None, [kev_finding("firing", T0 + MIN)], CATALOGUE):
        clock.on_signal(signal, 0, staged)
    staged.commit()
    held = table["payments"]
    assert held["items"] == {} and len(held["pend"]) == 1
    view = stage.current(held)
    assert view is not None and view["pend"] == [] and list(view["items"])
    assert table["payments"]["pend"]  # the stored state is untouched


def _periodic_times(steps: list[int]) -> list[int]:
    stage = RiskStage(RiskConfig(emit_period_ms=15 * MIN))
    clock = RiskClock(stage)
    table: dict[str, Any] = {}
    staged = StagedState(table, owner=0)
    outputs = []
    for signal in signals_from(None, [kev_finding("firing", T0 + MIN)], CATALOGUE):
        outputs += clock.on_signal(signal, 0, staged)
    for at in steps:
        outputs += clock.on_tick(at, staged, 0)
    staged.commit()
    return [out.value["time_ms"] for out in outputs if out.value.get("reason") == "periodic"]


def test_periodic_emissions_do_not_depend_on_how_the_clock_steps():
    one_jump = _periodic_times([T0 + 6 * HOUR])
    hourly = _periodic_times([T0 + h * HOUR for h in range(1, 7)])
    assert (
        one_jump == hourly and len(one_jump) == 23
    )  # an open finding: every 15 min after the first


def _decay_after_an_incident(steps: list[int]) -> tuple[list[tuple[int, int]], int]:
    """(time, score) of the decay emissions after a resolved incident, and the assessments
    the stage made, with the clock moved through `steps`."""
    from tables.risk import evaluation as risk

    calls = 0
    assess = risk.assess

    def counting(*args, **kwargs):
        nonlocal calls
        calls += 1
        return assess(*args, **kwargs)

    harness = Harness()
    signals = signals_from(None, [falco_alert("firing", T0)], CATALOGUE)
    signals += signals_from(None, [falco_alert("resolved", T0 + MIN)], CATALOGUE)
    payments = [s for s in signals if s["service"] == "payments"]
    harness.feed(sorted(payments, key=lambda s: (s["time_ms"], s["id"])))
    risk.assess = counting
    try:
        outputs = [out for at in steps for out in harness.tick(at)]
    finally:
        risk.assess = assess
    decays = [
        (out.value["time_ms"], out.value["score"])
        for out in outputs
        if out.topic == "risk" and out.value["reason"] == "decay"
    ]
    return decays, calls


def test_a_quiet_stretch_costs_its_emissions_not_its_length():
    """A subject sleeps through the evaluation steps that cannot emit: a 30-day jump of the
    clock gives the decay emissions of a clock stepping every 5 minutes, for a few dozen
    assessments instead of one per step."""
    check = RiskStage().config.check_interval_ms
    one_jump, jump_calls = _decay_after_an_incident([T0 + 30 * 24 * HOUR])
    stepped, _ = _decay_after_an_incident(list(range(T0 + check, T0 + 4 * 24 * HOUR, check)))
    assert one_jump == stepped and len(one_jump) >= 5
    assert [score for _, score in one_jump] == sorted(
        (score for _, score in one_jump), reverse=True
    )
    assert jump_calls < 20 * len(one_jump), jump_calls


def test_a_subject_holds_a_bounded_number_of_signals(monkeypatch):
    from tables.risk import stage as risk

    monkeypatch.setattr(risk, "MAX_HELD_SIGNALS", 30)
    monkeypatch.setattr(risk, "INLINE_HELD", 5)
    stage, table, send = _stage()  # no producer heard: the clock never moves
    for n in range(33):
        signal = signals_from(None, [falco_alert("firing", T0 + n * 1000)], CATALOGUE)[0]
        send({**signal, "id": f"s{n}"})
    subject = table["payments"]
    spilled = [v for k, v in table.items() if k.startswith("payments|~held|")]
    assert len(subject["pend"]) <= 5 + risk.SPILL_BUCKET_MS // 1000  # a refilled bucket at most
    assert len(subject["pend"]) + sum(len(v["s"]) for v in spilled) == 30
    assert subject["spilled"] == sum(len(v["s"]) for v in spilled)
    assert stage.stats["overflow"] == 3 and subject["items"]
    view = stage.current(subject, table)  # the gate sees the spilled signals too
    assert view is not None and view["spill"] == [] and view["clock"] == T0 + 32 * 1000


def test_spilling_held_signals_changes_no_output(monkeypatch):
    """Signals held in spill records (beyond `INLINE_HELD`) come back in the same order."""
    from tables.risk import stage as risk

    streams = producer_streams()
    expected = run(streams[0] + streams[1])
    monkeypatch.setattr(risk, "INLINE_HELD", 2)
    monkeypatch.setattr(risk, "SPILL_BUCKET_MS", 7 * MIN)
    assert run(streams[1] + streams[0]) == expected
    table: dict[str, Any] = {}
    stage = RiskStage()
    clock = RiskClock(stage, producers=PRODUCERS)
    for signal in streams[1] + streams[0]:
        staged = StagedState(table, owner=0)
        clock.on_signal(signal, 0, staged)
        staged.commit()
        if any("|~held|" in key for key in table):
            break
    else:
        raise AssertionError("nothing was spilled: the check above proves nothing")


def test_one_spill_record_is_bounded_too(monkeypatch):
    """Thousands of signals at one instant (a scan's findings) must not make one huge record."""
    from tables.risk import stage as risk

    monkeypatch.setattr(risk, "INLINE_HELD", 2)
    monkeypatch.setattr(risk, "SPILL_BUCKET_MAX", 4)
    stage, table, send = _stage()
    largest = 0
    for n in range(12):
        signal = signals_from(None, [falco_alert("firing", T0 + n)], CATALOGUE)[0]
        send({**signal, "id": f"s{n:02d}"})
        buckets = [v["s"] for k, v in table.items() if "|~held|" in k]
        largest = max([largest, *(len(entries) for entries in buckets)])
    assert largest == 4  # spilled, never beyond the bound
    assert stage.stats["overflow"] > 0
    held = len(table["payments"]["pend"]) + sum(len(entries) for entries in buckets)
    assert held + stage.stats["overflow"] == 12
