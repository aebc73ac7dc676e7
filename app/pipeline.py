"""The Faust-free processing core shared by the agents and `vigil replay --offline`.

`ingest` turns one raw record into canonical events (or a dead letter); `process` applies the
stateful logic to one event, reading and writing state through plain mappings. Agents pass
Faust tables as those mappings; offline replay passes dicts. Both paths therefore run the same
code on the same state shapes, and what one emits the other emits too.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from dataclasses import dataclass, field
from typing import Any

from app.events import Event
from app.masking import MaskingPolicy
from app.outputs import Origin, Output, dead_letter
from app.settings import Settings
from app.sources.decode import DecodeLimits
from app.sources.errors import NormalizeError
from app.sources.normalize import Normalizer
from tables.entity_stats import update_entity_stats


@dataclass(slots=True)
class PipelineState:
    """The state `process` reads and writes, one mapping per table (keyed by entity)."""

    entities: MutableMapping[str, Any] = field(default_factory=dict)


def build_normalizer(settings: Settings) -> Normalizer:
    """The Normalizer configured from settings (limits and masking)."""
    return Normalizer(
        limits=DecodeLimits(max_bytes=settings.max_record_bytes, max_depth=settings.max_depth),
        masking=MaskingPolicy(enabled=settings.masking, mask_ips=settings.mask_ips),
    )


class Pipeline:
    """Raw record -> canonical events -> stateful logic -> outputs for downstream topics."""

    def __init__(self, settings: Settings, state: PipelineState | None = None) -> None:
        self.settings = settings
        self.state = state if state is not None else PipelineState()
        self.normalizer = build_normalizer(settings)

    def ingest(self, raw: bytes, family: str | None, origin: Origin) -> list[Output]:
        """Normalize one raw record into `events` outputs, or one `deadletter` output."""
        try:
            events = self.normalizer.normalize(raw, family=family)
        except NormalizeError as error:
            return [dead_letter(origin, error, raw)]
        if origin.timestamp_ms is not None:
            for event in events:
                if event.attributes.get("time_source") == "none":
                    # The record carries no time of its own (e.g. a bare Terraform plan): the
                    # broker's record timestamp, fixed at produce time, is the next best.
                    event.ts_ms = origin.timestamp_ms
                    event.attributes["time_source"] = "kafka_timestamp"
        return [Output("events", event.entity, event.to_dict()) for event in events]

    def process(self, event: Event) -> list[Output]:
        """Apply the stateful logic to one canonical event (state keyed by `event.entity`)."""
        entities = self.state.entities
        entities[event.entity] = update_entity_stats(entities.get(event.entity), event)
        return []
