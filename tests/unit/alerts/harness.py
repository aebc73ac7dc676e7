"""One partition of the alert stage over dict tables, committing after every step: the harness
the dedup and silence tests share."""

from __future__ import annotations

from app.model.events import Event
from app.runtime.staged import StagedState
from tables.alerts.config import DedupConfig
from tables.alerts.stage import AlertStage
from tables.alerts.timers import TimerSchedule


class Harness:
    """The alert stage of one partition, its tables, timers and watermark."""

    def __init__(self, config: DedupConfig | None = None, **stage_args) -> None:
        self.stage = AlertStage(config or DedupConfig(), **stage_args)
        self.alerts: dict = {}
        self.groups: dict = {}
        self.schedule = TimerSchedule()
        self.watermark: int | None = None

    def _step(self, call) -> list:
        alerts, groups = StagedState(self.alerts), StagedState(self.groups)
        outputs = call(alerts, groups)
        alerts.commit()
        groups.commit()
        return outputs

    def feed(self, *events: Event) -> list:
        outputs = []
        for event in events:
            self.watermark = max(self.watermark or event.ts_ms, event.ts_ms)
            mark = self.watermark
            outputs += self._step(
                lambda a, g, e=event, w=mark: self.stage.on_event(e, w, a, g, self.schedule)
            )
        return outputs

    def advance(self, watermark: int) -> list:
        self.watermark = max(self.watermark or watermark, watermark)
        mark = self.watermark
        return self._step(lambda a, g: self.stage.on_watermark(mark, a, g, self.schedule))

    def flush(self) -> list:
        return self._step(lambda a, g: self.stage.flush(a, g, self.schedule))
