"""Alert risk score (0..100) and the factors behind it, computed at notification time.

    score = round(100 × min(1, S × X × A × E × C × R), 1)

- S, severity (0.05..0.95): Grype's severity term, mean(label midpoint / 10, CVSS / 10), the
  CVSS part only when a CVSS base score is known. Midpoints: negligible/info 0.5, low 3,
  medium 5, high 7.5, critical 9, unknown 5 (REFERENCE.md, "Risk scoring"). The label is the
  scanner's own (`severity_label`, e.g. Trivy's) when present, else Vigil's severity.
- X, exploitability (0.5..1.5): for vulnerabilities with EPSS or CISA KEV data,
  0.5 + min(1, threat × kev_factor) with Grype's threat (1 in KEV, else EPSS) and kev_factor
  (1.1 known ransomware use, 1.05 in KEV, else 1); `grype_risk` is reported beside it. Without
  such data a per-kind prior: runtime 1.25 (activity observed on the asset), exposed secrets
  1.2, violations 1.1, prom and anomaly 1.0, other findings and CI 0.8.
- A, asset criticality from the service catalogue: low 0.6, medium 0.8, high 1.0,
  critical 1.2; 0.8 when the entity is in no service.
- E, exposure: internet 1.25, internal 1.0 (also when unknown).
- C, confidence (0..1) that the alert is real: per source or kind (alert_labels.CONFIDENCE),
  the anomaly score for anomalies.
- R, recency: 0.5 ** (age / half-life), age = notification time − last sighting, half-life
  30 days for findings (re-seen by every scan while open), 24 hours for everything else.

Every factor is returned in `factors`, with `grype_risk`, `epss`, `kev` and the service when
known, so a reader can recompute the score.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from app.model.weights import (
    CRITICALITY_WEIGHT,
    EXPOSURE_WEIGHT,
    SEVERITY_MIDPOINT,
    UNKNOWN_CRITICALITY,
)

EXPLOITABILITY_PRIOR: dict[str, float] = {
    "runtime": 1.25,
    "secret": 1.2,
    "secret_scanning_alert": 1.2,
    "violation": 1.1,
    "prom": 1.0,
    "anomaly": 1.0,
    "finding": 0.8,
    "ci": 0.8,
}
DAY_MS = 86_400_000
HALF_LIFE_MS: dict[str, int] = {"finding": 30 * DAY_MS}
DEFAULT_HALF_LIFE_MS = DAY_MS


class Catalogue(Protocol):
    """What scoring needs from a service catalogue (app.catalogue.Catalogue fits)."""

    def service_for(self, entity: str) -> dict[str, Any] | None: ...


def _cvss_mean(cvss: float | Iterable[float] | None) -> float | None:
    if cvss is None:
        return None
    scores = [float(cvss)] if isinstance(cvss, int | float) else [float(c) for c in cvss]
    scores = [s for s in scores if 0 <= s <= 10]
    return sum(scores) / len(scores) if scores else None


def grype_severity(severity_label: str | None, cvss: float | Iterable[float] | None) -> float:
    """mean(label midpoint / 10, mean CVSS base / 10); the label alone without CVSS."""
    label = SEVERITY_MIDPOINT.get((severity_label or "unknown").lower(), 5.0) / 10
    mean_cvss = _cvss_mean(cvss)
    return label if mean_cvss is None else (label + mean_cvss / 10) / 2


def _is_ransomware(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() == "known"
    return value is True


def kev_factor(kev: bool, ransomware: Any) -> float:
    """1.1 with known ransomware use, 1.05 in KEV, else 1."""
    if _is_ransomware(ransomware):
        return 1.1
    return 1.05 if kev else 1.0


def grype_risk(
    epss: float | None,
    kev: bool,
    ransomware: Any,
    severity_label: str | None,
    cvss: float | Iterable[float] | None,
) -> float:
    """Grype's risk: min(threat × severity × kev_factor, 1) × 100.

    threat = 1 if in KEV else EPSS (0 if none); severity = `grype_severity`; kev_factor 1.1
    with known ransomware use (`True` or CISA's "Known"), 1.05 in KEV, else 1.
    """
    kev = bool(kev) or _is_ransomware(ransomware)
    threat = 1.0 if kev else float(epss or 0.0)
    severity = grype_severity(severity_label, cvss)
    return min(threat * severity * kev_factor(kev, ransomware), 1.0) * 100


@dataclass(slots=True)
class Scorer:
    """Scores alerts; `catalogue` (optional) gives asset criticality and exposure."""

    catalogue: Catalogue | None = None

    def score(self, alert: Mapping[str, Any], now_ms: int) -> tuple[float, dict[str, Any]]:
        """(score 0..100, factors) of an alert at `now_ms`.

        `alert` needs `kind`, `type`, `severity`, `entity`, `last_seen` (ms) and `scoring`
        (`epss`, `kev`, `kev_ransomware`, `cvss`, `severity_label`, `confidence`).
        """
        inputs = alert.get("scoring") or {}
        kind = alert.get("kind", "")
        label = inputs.get("severity_label")
        if not isinstance(label, str) or label.lower() not in SEVERITY_MIDPOINT:
            label = alert.get("severity") or "unknown"
        cvss = inputs.get("cvss")
        severity = grype_severity(label, cvss)
        factors: dict[str, Any] = {"severity": round(severity, 4)}

        epss, kev = inputs.get("epss"), bool(inputs.get("kev"))
        ransomware = inputs.get("kev_ransomware")
        if kind == "finding" and (epss is not None or kev or _is_ransomware(ransomware)):
            kev = kev or _is_ransomware(ransomware)
            threat = 1.0 if kev else float(epss or 0.0)
            exploitability = 0.5 + min(1.0, threat * kev_factor(kev, ransomware))
            factors["grype_risk"] = round(grype_risk(epss, kev, ransomware, label, cvss), 2)
            if epss is not None:
                factors["epss"] = epss
            factors["kev"] = kev
        else:
            exploitability = EXPLOITABILITY_PRIOR.get(
                alert.get("type", ""), EXPLOITABILITY_PRIOR.get(kind, 1.0)
            )
        factors["exploitability"] = round(exploitability, 4)

        service = self.catalogue.service_for(alert.get("entity", "")) if self.catalogue else None
        if service:
            criticality = CRITICALITY_WEIGHT.get(service.get("criticality"), UNKNOWN_CRITICALITY)
            exposure = EXPOSURE_WEIGHT.get(service.get("exposure"), 1.0)
            factors["service"] = service.get("name")
        else:
            criticality, exposure = UNKNOWN_CRITICALITY, 1.0
        factors["asset_criticality"] = criticality
        factors["exposure"] = exposure

        confidence = inputs.get("confidence")
        confidence = 0.8 if not isinstance(confidence, int | float) else float(confidence)
        confidence = max(0.0, min(1.0, confidence))
        factors["confidence"] = round(confidence, 4)

        last_seen = alert.get("last_seen")
        age = max(0, now_ms - last_seen) if isinstance(last_seen, int) else 0
        half_life = HALF_LIFE_MS.get(kind, DEFAULT_HALF_LIFE_MS)
        recency = 0.5 ** (age / half_life)
        factors["recency"] = round(recency, 4)

        raw = severity * exploitability * criticality * exposure * confidence * recency
        return round(100 * min(1.0, raw), 1), factors
