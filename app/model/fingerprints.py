"""Label-set fingerprints as Prometheus Alertmanager computes them (REFERENCE.md)."""

from __future__ import annotations

_FNV64_OFFSET = 14695981039346656037
_FNV64_PRIME = 1099511628211
_SEPARATOR = 0xFF


def alertmanager_fingerprint(labels: dict[str, str]) -> str:
    """Alertmanager's alert fingerprint of a label set, as 16 lowercase hex digits.

    FNV-1a 64-bit over the label names in byte order, each name and each value followed by the
    separator byte 0xFF (prometheus/common `labelSetToFingerprint`; `Fingerprint.String()` is
    `%016x`). An empty label set hashes to the FNV offset basis.
    """
    digest = _FNV64_OFFSET
    for name in sorted(labels, key=lambda n: n.encode()):
        for part in (name.encode(), labels[name].encode()):
            for byte in part:
                digest = ((digest ^ byte) * _FNV64_PRIME) & 0xFFFFFFFFFFFFFFFF
            digest = ((digest ^ _SEPARATOR) * _FNV64_PRIME) & 0xFFFFFFFFFFFFFFFF
    return f"{digest:016x}"
