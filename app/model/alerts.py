"""An alert input: one sighting of an alert instance, as every capability that raises alerts
hands it to the alert stage (tables/alerts/)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class AlertInput:
    """One sighting of an alert instance, ready for the dedup stage.

    `ts_ms` is when it was seen (event time), `starts_ms` when the alert says it started (the
    sender's `startsAt`, else `ts_ms`), `ends_ms` the sender's `endsAt` (None: not given).
    `scoring` holds the risk inputs: `epss`, `kev`, `kev_ransomware`, `cvss`, `severity_label`,
    `confidence` (absent keys mean unknown).
    """

    id: str
    fingerprint: str
    entity: str
    kind: str
    source: str
    type: str
    labels: dict[str, str]
    annotations: dict[str, str]
    status: str
    ts_ms: int
    starts_ms: int
    ends_ms: int | None
    severity: str
    scoring: dict[str, Any] = field(default_factory=dict)
    scope: str | None = None

    def match_labels(self) -> dict[str, str]:
        """What silences and inhibition rules match: the labels plus `entity` and `source`."""
        return {"entity": self.entity, "source": self.source, **self.labels}

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form (kept in state while the input waits for the watermark)."""
        return {
            "id": self.id,
            "fingerprint": self.fingerprint,
            "entity": self.entity,
            "kind": self.kind,
            "source": self.source,
            "type": self.type,
            "labels": dict(self.labels),
            "annotations": dict(self.annotations),
            "status": self.status,
            "ts_ms": self.ts_ms,
            "starts_ms": self.starts_ms,
            "ends_ms": self.ends_ms,
            "severity": self.severity,
            "scoring": dict(self.scoring),
            "scope": self.scope,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AlertInput:
        return cls(**data)
