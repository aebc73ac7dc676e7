"""Run the pipeline over telemetry files without Kafka: `vigil replay --offline`.

Reads every record, normalizes it, then applies the stateful logic in event-time order, and
yields every record Vigil would emit as `{"topic", "key", "value"}`. This is how users backtest
rules on recorded telemetry, and how most tests exercise the logic.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from app.model.events import Event
from app.model.outputs import Origin, Output
from app.pipeline import RISK_TICK_MS, Pipeline, PipelineState
from app.runtime.batch import Batch, Step
from app.runtime.risk_clock import RiskClock
from app.runtime.staged import StagedState
from app.settings import Settings
from app.sources.files import OversizeRecord, file_records
from app.sources.normalize import detect_family
from app.topics import TopicCatalog, entity_partition
from tables.risk.stage import RiskStage


def file_family(path: str | Path) -> str | None:
    """The raw family of a telemetry file, from its first recognisable record."""
    for _, raw in file_records(path):
        if isinstance(raw, OversizeRecord):
            continue
        family = detect_family(raw)
        if family is not None:
            return family
    return None


def offline_replay(
    paths: Iterable[str | Path],
    settings: Settings,
    family: str | None = None,
    flush: bool = True,
) -> Iterator[dict[str, Any]]:
    """Yield every output record for the given files, as the live pipeline would emit them.

    Dead letters come first (in file order), then each canonical event in event-time order,
    each followed by what the stateful logic derives from it. Each event is processed in the
    partition its entity has on `vigil.events`, with that partition's own state and watermarks,
    exactly as a worker would. With `flush` (the default), the
    end of input closes every window still open, as if the watermark had moved past them all;
    the live pipeline keeps such windows open until later events arrive.
    """
    catalog = TopicCatalog(settings)
    pipeline = Pipeline(settings)  # stateless ingest
    events: list[Output] = []
    for path in paths:
        path_family = family or file_family(path)
        topic = catalog.raw(path_family) if path_family else str(path)
        for index, raw in file_records(path, settings.max_record_bytes):
            origin = Origin(topic=topic, partition=None, offset=index)
            for out in pipeline.ingest(raw, path_family, origin):
                if out.topic == "events":
                    events.append(out)
                else:
                    yield as_record(catalog, out)
    yield from replay_events(events, settings, pipeline.catalogue, flush)


def replay_events(
    events: list[Output],
    settings: Settings,
    catalogue: Any,
    flush: bool = True,
    risk_states: dict[int, StagedState] | None = None,
) -> Iterator[dict[str, Any]]:
    """The stateful part of `offline_replay`: canonical events (`events` outputs of the ingest
    stage) in event-time order, each followed by what the stateful logic derives from it.
    `risk_states`, when given, receives the risk table of each `risk_signals` partition."""
    catalog = TopicCatalog(settings)
    silences: dict[str, Any] = {}
    inhibitors: dict[str, Any] = {}
    partitions = {
        p: Pipeline(settings, PipelineState(silences=silences, inhibitors=inhibitors))
        for p in range(settings.partitions)
    }
    events = sorted(events, key=lambda out: (out.value["ts_ms"], out.value["id"]))
    #: One batch per partition, as a worker's: its staged tables are built once and emptied by
    #: each step's commit (`risk.follow`) before the next event reads them.
    batches = {p: Batch(pipeline.state) for p, pipeline in partitions.items()}
    risk = OfflineRisk(settings, catalogue, events, partitions)
    if risk_states is not None:
        risk_states.update(risk.states)
    for out in events:
        yield as_record(catalog, out)
        partition = entity_partition(out.key or "", settings.partitions)
        for scored in risk.before_event(partition, out.value["ts_ms"]):
            yield as_record(catalog, scored)
        event = Event.from_dict(out.value)
        step = partitions[partition].process(event, partition, batches[partition])
        for derived in risk.follow(step):
            yield as_record(catalog, derived)
    # End of input, as a worker's sources going idle: each partition's clock reaches its newest
    # event (what that releases and fires comes out), then every partition tells the risk
    # stage its final clock.
    for partition, partition_pipeline in partitions.items():
        for derived in risk.follow(partition_pipeline.settle(partition)):
            yield as_record(catalog, derived)
    for scored in risk.end():
        yield as_record(catalog, scored)
    if flush:
        for partition, partition_pipeline in partitions.items():
            for derived in risk.follow(partition_pipeline.flush(partition)):
                yield as_record(catalog, derived)
        for scored in risk.flush():
            yield as_record(catalog, scored)


class OfflineRisk:
    """The risk stage of an offline replay: a state per `risk_signals` partition, signals
    applied as the replay derives them, with the heartbeats a worker's partitions would send
    (app/runtime/risk_clock.py): a partition that got no event for `offline_idle_ms` of event time
    declares itself idle, as a worker's partition does once its sources are idle, and at the
    end of input every partition reports its final clock, idle."""

    def __init__(
        self,
        settings: Settings,
        catalogue: Any,
        events: list[Output],
        pipelines: Mapping[int, Pipeline],
    ) -> None:
        self.partitions = settings.partitions
        self.stage = RiskStage(settings.risk, catalogue=catalogue)
        self.clock = RiskClock(
            self.stage, producers=producing_partitions(events, settings.partitions)
        )
        self.pipelines = pipelines
        self.idle_after = offline_idle_ms(settings)
        self.states = {p: StagedState({}, owner=p) for p in range(settings.partitions)}
        #: the risk clock's records per partition (the runtime's table beside `risk`)
        self.clocks = {p: StagedState({}) for p in range(settings.partitions)}
        #: partition -> time of its last event; the partitions declared idle since
        self.last: dict[int, int] = {}
        self.idle: set[int] = set()

    def apply(self, signal: Output) -> list[Output]:
        """Apply one risk signal in the partition it would have on `vigil.risk_signals`."""
        target = entity_partition(signal.key or "", self.partitions)
        state, clocks = self.states[target], self.clocks[target]
        scored = self.clock.on_signal(signal.value, target, state, clocks)
        state.commit()
        clocks.commit()
        return scored

    def follow(self, step: Step) -> Iterator[Output]:
        """Commit a partition's step and yield its outputs, each risk signal followed by what
        the risk stage derives from it."""
        step.commit()
        for out in step.outputs:
            yield out
            if out.topic == "risk_signals":
                yield from self.apply(out)

    def before_event(self, partition: int, ts_ms: int) -> list[Output]:
        """Before `partition` processes an event at `ts_ms`: the partitions that got none for
        the idle time declare themselves idle."""
        scored: list[Output] = []
        for other, last in sorted(self.last.items()):
            if other not in self.idle and ts_ms - last > self.idle_after:
                self.idle.add(other)
                for beat in self.pipelines[other].clock_heartbeats(other, idle=True):
                    scored += self.apply(beat)
        self.last[partition] = ts_ms
        self.idle.discard(partition)
        return scored

    def end(self) -> list[Output]:
        """End of input: every partition's final clock, idle (its sources went quiet)."""
        scored: list[Output] = []
        for partition, pipeline in self.pipelines.items():
            for beat in pipeline.clock_heartbeats(partition, idle=True):
                scored += self.apply(beat)
        return scored

    def flush(self) -> list[Output]:
        """What every partition still holds (see `RiskClock.flush`)."""
        scored: list[Output] = []
        for partition, state in self.states.items():
            scored += self.clock.flush(state, partition, self.clocks[partition])
            state.commit()
        return scored


def offline_idle_ms(settings: Settings) -> int:
    """How long (event time) an offline partition may get no event before it declares itself
    idle to the risk stage: the idle time plus two risk boundaries (a worker reading a backlog
    runs through event time faster than wall time: a longer margin keeps such gaps in step)."""
    return settings.clock_idle_ms + 2 * RISK_TICK_MS


def producing_partitions(events: Iterable[Output], partitions: int) -> list[int]:
    """The `vigil.events` partitions these events go to (the risk stage's producers)."""
    return sorted({entity_partition(out.key or "", partitions) for out in events})


def as_record(catalog: TopicCatalog, out: Output) -> dict[str, Any]:
    """An output as the JSON line `vigil replay --offline` prints."""
    return {"topic": catalog.name(out.topic), "key": out.key, "value": out.value}
