"""Label-set fingerprints as Prometheus Alertmanager computes them (REFERENCE.md)."""

from __future__ import annotations

import functools

_FNV64_OFFSET = 14695981039346656037
_FNV64_PRIME = 1099511628211
_SEPARATOR = 0xFF


def alertmanager_fingerprint(labels: dict[str, str]) -> str:
    """Alertmanager's alert fingerprint of a label set, as 16 lowercase hex digits.

    FNV-1a 64-bit over the label names in byte order, each name and each value followed by the
    separator byte 0xFF (prometheus/common `labelSetToFingerprint`; `Fingerprint.String()` is
    `%016x`). An empty label set hashes to the FNV offset basis.
    """
    return _fnv_of_pairs(tuple(sorted((name.encode(), labels[name].encode()) for name in labels)))


@functools.lru_cache(maxsize=8192)
def _fnv_of_pairs(pairs: tuple[tuple[bytes, bytes], ...]) -> str:
    """The fingerprint of `(name, value)` pairs in name order. Cached: the hash runs byte by
    byte in Python, and an alert's label set comes again with every event that reports it."""
    digest = _FNV64_OFFSET
    for pair in pairs:
        for part in pair:
            for byte in part:
                digest = ((digest ^ byte) * _FNV64_PRIME) & 0xFFFFFFFFFFFFFFFF
            digest = ((digest ^ _SEPARATOR) * _FNV64_PRIME) & 0xFFFFFFFFFFFFFFFF
    return f"{digest:016x}"
