"""scripts/chaos_check.py: the chaos runs' per-topic comparison (lost / duplicated / mismatched
counting) and their expected outputs, which must stay the offline replay's."""

from __future__ import annotations

import sys

import pytest

from app.generator.stream import TelemetryGenerator
from app.replay import offline_replay
from app.settings import REPO_ROOT, Settings
from app.topics import TopicCatalog, entity_partition

sys.path.insert(0, str(REPO_ROOT / "scripts"))
import chaos_check


def rec(ident: str, **fields) -> dict:
    return {"id": ident, **fields}


def test_counts_lost_duplicated_mismatched_and_unexpected():
    expected = [("windows", rec(f"w{i}", count=i)) for i in range(5)]
    received = [
        ("windows", rec("w0", count=0)),
        ("windows", rec("w0", count=0)),  # an at-least-once repeat, identical
        ("windows", rec("w1", count=1)),
        ("windows", rec("w2", count=99)),  # same id, another value
        ("windows", rec("w3", count=3)),
        ("windows", rec("zz", count=7)),  # not in the spec
        # w4 never arrives
    ]
    row = chaos_check.compare(expected, received)["windows"]
    assert row["expected"] == 5
    assert row["received"] == 6
    assert row["distinct"] == 5
    assert row["lost"] == 1
    assert row["duplicated"] == 1
    assert row["dup_after_dedup"] == 0
    assert row["mismatched"] == 1
    assert row["unexpected"] == 1
    assert chaos_check.failures({"windows": row}) == [
        "windows: 1 lost",
        "windows: 1 mismatched",
        "windows: 1 unexpected",
    ]


def test_repeats_with_different_values_survive_dedup_by_id():
    expected = [("alerts", rec("a", n=1))]
    received = [("alerts", rec("a", n=1)), ("alerts", rec("a", n=2)), ("alerts", rec("a", n=2))]
    row = chaos_check.compare(expected, received, coarse={})["alerts"]
    assert row["duplicated"] == 2
    assert row["dup_after_dedup"] == 1  # one copy differs from the first: dedup would hide it
    assert row["mismatched"] == 1
    assert "alerts: 1 dup_after_dedup" in chaos_check.failures({"alerts": row})


def test_ids_the_spec_emits_twice_are_not_duplicates():
    twice = rec("e1", v=1)
    row = chaos_check.compare([("events", twice), ("events", twice)], [("events", twice)] * 2)[
        "events"
    ]
    assert row == {**row, "expected": 2, "expected_ids": 1, "received": 2, "duplicated": 0}
    assert not chaos_check.failures({"events": row})


def test_an_id_the_spec_gives_two_values_is_no_conflict():
    # two identical raw records: one event id, two `origin`s, both in the spec
    expected = [("events", rec("e", origin=1)), ("events", rec("e", origin=2))]
    row = chaos_check.compare(expected, list(expected))["events"]
    assert (row["duplicated"], row["dup_after_dedup"], row["mismatched"]) == (0, 0, 0)


def test_key_order_does_not_matter():
    row = chaos_check.compare(
        [("late", {"id": "x", "a": 1, "b": 2})], [("late", {"b": 2, "a": 1, "id": "x"})]
    )
    assert row["late"]["mismatched"] == 0


def test_a_clean_run_passes_and_topics_with_nothing_are_listed():
    values = [("events", rec(f"e{i}")) for i in range(3)]
    rows = chaos_check.compare(values, list(values), topics=["events", "late"])
    assert rows["late"]["expected"] == rows["late"]["received"] == 0
    assert chaos_check.failures(rows) == []
    table = chaos_check.format_table(rows)
    assert table.splitlines()[0].split()[:3] == ["topic", "expected", "received"]
    assert "TOTAL" in table


def test_order_dependent_topics_are_judged_on_coarse_keys():
    key = chaos_check.NEARLY_EXACT["drift"]
    assert key({"resource": "r", "status": "drifted"}) == ("r", "drifted")
    expected = [
        ("drift", rec("d1", resource="r1", status="drifted", n=2)),
        ("drift", rec("d2", resource="r2", status="drifted", n=1)),
    ]
    # r1 reported with another id, r2 never: only r2 is a loss
    received = [("drift", rec("d9", resource="r1", status="drifted", n=1))]
    row = chaos_check.compare(expected, received, coarse={"drift": key})["drift"]
    assert row["order_dependent"] is True
    assert (row["lost"], row["unexpected"], row["keys_lost"]) == (2, 1, 1)
    assert chaos_check.failures({"drift": row}) == []  # a crash-free run differs by id too
    assert chaos_check.failures({"drift": row}, strict=True) == ["drift: 1 keys_lost"]
    assert "drift*" in chaos_check.format_table({"drift": row})


def test_every_topic_is_exact():
    """Alerts run on the partition clock (app/runtime/partition_clock.py), drift and posture on
    held events (app/runtime/held.py), risk and scorecards on the risk clock (tables/risk/stage.py):
    all judged by id like windows."""
    assert chaos_check.ORDER_DEPENDENT == {}
    row = chaos_check.compare([("alerts", rec("n1"))], [("alerts", rec("n9"))])["alerts"]
    assert chaos_check.failures({"alerts": row}) == ["alerts: 1 lost", "alerts: 1 unexpected"]


def test_risk_heartbeats_are_not_compared_the_other_signals_are():
    """`clock` heartbeats follow when a worker ticked, `tick` ones how far its clock's steps
    went (at most three per step): neither is expected nor received. Other signals are."""
    beat = {"id": "c1", "kind": "clock", "service": None, "time_ms": 5, "from": 0}
    tick = {"id": "t1", "kind": "tick", "service": None, "time_ms": 5, "from": 0}
    change = {"id": "s1", "kind": "change", "service": "pay", "time_ms": 5}
    row = chaos_check.compare(
        [("risk_signals", tick), ("risk_signals", change)],
        [("risk_signals", beat), ("risk_signals", change)],
    )
    assert (row["risk_signals"]["expected"], row["risk_signals"]["received"]) == (1, 1)
    assert chaos_check.failures(row) == []
    lost = chaos_check.compare([("risk_signals", change)], [("risk_signals", tick)])
    assert chaos_check.failures(lost) == ["risk_signals: 1 lost"]


def test_tally_completion_and_shared_spec():
    spec = chaos_check.Tally(["windows"])
    spec.expect("windows", rec("w1"))
    live = spec.sharing_spec()
    assert not live.complete()
    live.receive("windows", rec("w1"))
    assert live.complete()
    assert spec.topics["windows"].received == {}  # receipts stay apart


def test_raw_plan_keeps_each_family_in_one_partition_with_fresh_offsets():
    settings = Settings.from_env({"VIGIL_TOPIC_PREFIX": "x."})
    catalog = TopicCatalog(settings, {"VIGIL_TOPIC_PREFIX": "x."})
    records = list(TelemetryGenerator(seed=3).records(1_767_225_600_000, 20, 300))
    plan = chaos_check.raw_plan(records, catalog, settings.partitions)
    by_topic: dict[str, list] = {}
    for item in plan:
        by_topic.setdefault(item.topic, []).append(item)
    for topic, items in by_topic.items():
        assert topic.startswith("x.telemetry.")
        assert {i.partition for i in items} == {
            entity_partition(items[0].key.decode(), settings.partitions)
        }
        assert [i.offset for i in items] == list(range(len(items)))
        assert [i.ts_ms for i in items] == sorted(i.ts_ms for i in items)


@pytest.fixture(scope="module")
def single_line_stream(tmp_path_factory):
    """A generated stream of one-line JSON records, one file per family (what offline_replay
    reads), and the chaos plan of the same records."""
    settings = Settings.from_env({})
    catalog = TopicCatalog(settings, {})
    records = [
        r
        for r in TelemetryGenerator(seed=11, bad_ratio=0).records(1_767_225_600_000, 20, 3000)
        if b"\n" not in r.value and r.family in ("falco", "metrics", "logs", "k8s-audit")
    ]
    folder = tmp_path_factory.mktemp("stream")
    paths = {}
    for r in records:
        path = paths.setdefault(r.family, folder / f"{r.family}.jsonl")
        with path.open("ab") as handle:
            handle.write(r.value + b"\n")
    return settings, catalog, records, list(paths.values())


def _without_origin(topic: str, value: dict) -> tuple[str, bytes]:
    value = {k: v for k, v in value.items() if k != "origin"}
    return topic, chaos_check.canonical(value)


def test_expected_outputs_are_the_offline_replay(single_line_stream):
    settings, catalog, records, paths = single_line_stream
    logical = {spec.name: spec.logical for spec in catalog.specs()}
    replayed = sorted(
        _without_origin(logical[r["topic"]], r["value"])
        for r in offline_replay(paths, settings, flush=False)
    )
    plan = chaos_check.raw_plan(records, catalog, settings.partitions)
    spec = list(chaos_check.expected_outputs(plan, settings))
    assert sorted(_without_origin(t, v) for t, v in spec) == replayed
    assert len({t for t, _ in spec}) >= 3  # events and derived outputs, not just events
    # the spec's events carry the Kafka coordinates a worker's ingest gives them
    origins = [v["origin"] for t, v in spec if t == "events"]
    assert origins and all(set(o) == {"t", "p", "o", "i"} for o in origins)
