"""Human-readable pieces shared by the sink payloads: title, score explanation, link."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

#: The score's factors in formula order (tables/alerts/scoring.py), with their readable names.
SCORE_FACTORS: tuple[tuple[str, str], ...] = (
    ("severity", "severity"),
    ("exploitability", "exploitability"),
    ("asset_criticality", "asset criticality"),
    ("exposure", "exposure"),
    ("confidence", "confidence"),
    ("recency", "recency"),
)
#: Other facts the scorer reports beside the factors.
SCORE_EXTRAS: tuple[str, ...] = ("service", "grype_risk", "epss", "kev")


def alertname(record: Mapping[str, Any]) -> str:
    """The alert's name: its `alertname` label, else its kind."""
    labels = record.get("labels") or {}
    return str(labels.get("alertname") or f"Vigil {record.get('kind') or 'alert'}")


def title(record: Mapping[str, Any]) -> str:
    """`[FIRING] <alertname> on <entity>` (`REPEAT`, `RESOLVED` by notification)."""
    state = str(record.get("notification") or record.get("status") or "firing").upper()
    return f"[{state}] {alertname(record)} on {record.get('entity') or 'unknown'}"


def _num(value: Any) -> str:
    return (
        f"{value:g}"
        if isinstance(value, int | float) and not isinstance(value, bool)
        else str(value)
    )


def factors_summary(factors: Mapping[str, Any] | None) -> str:
    """`severity=0.75 exploitability=1.25 ...`: every factor, formula order first."""
    if not factors:
        return ""
    known = [name for name, _ in SCORE_FACTORS if name in factors]
    rest = sorted(k for k in factors if k not in known)
    return " ".join(f"{k}={_num(factors[k])}" for k in [*known, *rest])


def explanation(record: Mapping[str, Any]) -> str:
    """How the score came about, e.g. `score 67.5 = 100 × severity 0.75 × ... (service api)`."""
    score = record.get("score")
    factors = record.get("factors") or {}
    terms = [f"{label} {_num(factors[name])}" for name, label in SCORE_FACTORS if name in factors]
    if score is None:
        return "no score"
    text = f"score {_num(score)}/100"
    if terms:
        text += " = 100 × " + " × ".join(terms)
        if score >= 100:
            text += " (capped at 100)"
    extras = [
        f"{name} {_num(factors[name])}" for name in SCORE_EXTRAS if factors.get(name) is not None
    ]
    if extras:
        text += f" ({', '.join(extras)})"
    return text


def vigil_link(public_url: str, record: Mapping[str, Any]) -> str:
    """Link to the alert in Vigil's web view: `<public>/?entity=<entity>&alert=<fingerprint>`."""
    entity = quote(str(record.get("entity") or ""), safe="")
    fingerprint = quote(str(record.get("fingerprint") or ""), safe="")
    return f"{public_url.rstrip('/')}/?entity={entity}&alert={fingerprint}"
