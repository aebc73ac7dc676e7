"""The alert stage's grouping, timing and muting settings."""

from __future__ import annotations

from dataclasses import dataclass

from tables.alerts.silences import InhibitRule


@dataclass(frozen=True, slots=True)
class DedupConfig:
    """Grouping and timing, Alertmanager's route defaults unless noted (all times in ms)."""

    #: Labels that define a group within an entity; `("...",)` = every label, `()` = one group.
    group_by: tuple[str, ...] = ("alertname",)
    group_wait_ms: int = 30_000
    group_interval_ms: int = 300_000
    repeat_interval_ms: int = 4 * 3_600_000
    #: Silence after which an alert of `timeout_kinds` without endsAt counts as resolved.
    resolve_timeout_ms: int = 300_000
    send_resolved: bool = True
    #: How far behind the watermark the stage's clock runs (Vigil's; 0 = apply at once).
    slack_ms: int = 0
    #: How long resolved alerts and idle groups' logs are kept (Alertmanager's nflog: 120h).
    retention_ms: int = 120 * 3_600_000
    timeout_kinds: frozenset[str] = frozenset({"runtime", "prom", "anomaly", "violation"})
    #: Kinds that are state rather than incidents (a finding is open until a rescan or a fix
    #: resolves it): they notify when they open, resolve or reopen, and repeat only every
    #: `state_repeat_interval_ms` (0: never), as an Alertmanager route of their own would.
    state_kinds: frozenset[str] = frozenset({"finding", "ci"})
    state_repeat_interval_ms: int = 0
    inhibit_rules: tuple[InhibitRule, ...] = ()

    def __post_init__(self) -> None:
        if self.group_interval_ms <= 0 or self.repeat_interval_ms <= 0:
            raise ValueError("group_interval and repeat_interval must be positive")
        if min(self.group_wait_ms, self.resolve_timeout_ms, self.slack_ms) < 0:
            raise ValueError("group_wait, resolve_timeout and slack must not be negative")
        if self.state_repeat_interval_ms < 0:
            raise ValueError("the findings' repeat interval must not be negative (0: off)")
        if self.retention_ms <= 0:
            raise ValueError("retention must be positive")
