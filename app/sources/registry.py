"""Which adapters read which raw topic family, in the order formats are tried."""

from __future__ import annotations

from app.sources.base import SourceAdapter
from app.sources.falco import FalcoAdapter

#: Raw topic family -> adapters tried in order (the first whose `matches` is true wins).
#: Each family is read from the raw topic `telemetry.<family>` (see app/topics.py).
FAMILIES: dict[str, tuple[SourceAdapter, ...]] = {
    "falco": (FalcoAdapter(),),
}

#: Families whose records may be plain text rather than JSON (e.g. Prometheus exposition).
TEXT_FAMILIES: frozenset[str] = frozenset()


def adapters_for(family: str | None) -> tuple[SourceAdapter, ...]:
    """Adapters for a family, or every adapter (for auto-detection) when `family` is None."""
    if family is None:
        return tuple(adapter for adapters in FAMILIES.values() for adapter in adapters)
    return FAMILIES[family]


def adapter_named(name: str) -> SourceAdapter | None:
    """The adapter whose source name is `name`, if any."""
    for adapter in adapters_for(None):
        if adapter.name == name:
            return adapter
    return None
