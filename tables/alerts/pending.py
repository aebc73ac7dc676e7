"""The inputs an alert holds until the partition clock passes them: kept sorted by event time
in the alert record (`pend`, the earliest ones) and in spill records (app/runtime/spill.py)."""

from __future__ import annotations

import bisect
from typing import Any

from app.runtime import spill

#: Most inputs one alert holds while they wait for the partition clock; beyond it the oldest
#: are applied at once (`stats["overflow"]`), in time order but ahead of the clock. The same
#: bound as held events (app/runtime/held.py `MAX_HELD`): both wait in spill records, so an
#: input costs the same whatever the count. A worker reading a backlog runs a sparse source
#: up to a fetch ahead of the slowest (docs/backpressure.md): 1 MiB of Alertmanager
#: notifications is ~35 minutes of `make chaos` event time, over 700 inputs of its busiest
#: alert, so 250 overflowed there under load.
MAX_PENDING_INPUTS = 5_000
#: Waiting inputs kept in the alert's record (the earliest); later ones wait in spill records
#: of `PENDING_BUCKET_MS` of event time (at most `PENDING_BUCKET_MAX` inputs, ~1 KB each), so
#: an input that waits rewrites two small records, not every input held: with all of them
#: inline a backlog rewrote up to 250 KB per alert and batch (docs/performance.md).
INLINE_PENDING = 16
PENDING_BUCKET_MS = 1_000
PENDING_BUCKET_MAX = 250
PENDING_MARK = "~pend"


def pending_order(item: dict[str, Any]) -> tuple[int, int, str]:
    """Event time, then firing before resolved (a resolution at the same instant wins), then
    id: arrival order never matters."""
    return (item["ts_ms"], item.get("status") == "resolved", item["id"])


def insert_pending(pend: list[dict[str, Any]], item: dict[str, Any]) -> None:
    """Keep waiting inputs sorted by `pending_order` (after equal ones)."""
    bisect.insort(pend, item, key=pending_order)


#: Where an alert keeps its waiting inputs (app/runtime/spill.py): `pend`, then spill records.
PENDING = spill.Layout(
    inline="pend", items="pend", kind="alert_pend", time="ts_ms", order=pending_order
)
PENDING_LIMITS = (INLINE_PENDING, PENDING_BUCKET_MS, PENDING_BUCKET_MAX)


def pending_prefix(key: str) -> str:
    """The key prefix of an alert's spill records."""
    return f"{key}|{PENDING_MARK}"
