"""Bounded label values: at most a fixed number of distinct values per label, then `other`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

#: The label value for everything beyond a label's cap, and for missing values.
OTHER = "other"
UNKNOWN = "unknown"
#: Longest label value kept (longer ones are cut).
MAX_LABEL_CHARS = 120
#: Default caps on distinct label values per metric.
MAX_SOURCES = 64
MAX_CODES = 32
MAX_SMALL = 16


class BoundedLabel:
    """Maps raw label values to at most `cap` distinct values; the rest become `other`.

    The first `cap` values seen keep their own label; the mapping is never emptied, so a
    series never changes label. `on_overflow` is called for each value mapped to `other`.
    """

    __slots__ = ("_on_overflow", "_seen", "cap", "name")

    def __init__(self, name: str, cap: int, on_overflow: Callable[[str], None] | None = None):
        if cap < 1:
            raise ValueError("a label cap must be at least 1")
        self.name = name
        self.cap = cap
        self._seen: dict[Any, str] = {}
        self._on_overflow = on_overflow

    def __call__(self, value: Any) -> str:
        try:
            label = self._seen.get(value)
        except TypeError:  # unhashable: not a label value
            return OTHER
        if label is not None:
            return label
        if len(self._seen) >= self.cap:
            if self._on_overflow is not None:
                self._on_overflow(self.name)
            return OTHER
        label = UNKNOWN if value is None or value == "" else str(value)[:MAX_LABEL_CHARS]
        self._seen[value] = label
        return label

    def __len__(self) -> int:
        return len(self._seen)


class CachedChildren:
    """Cached children of one labelled metric: one dict lookup per observation."""

    __slots__ = ("_cache", "_metric")

    def __init__(self, metric: Any) -> None:
        self._metric = metric
        self._cache: dict[tuple[Any, ...], Any] = {}

    def __call__(self, *labels: Any) -> Any:
        child = self._cache.get(labels)
        if child is None:
            child = self._metric.labels(*labels)
            self._cache[labels] = child
        return child
