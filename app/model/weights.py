"""What a severity label, an asset's criticality and its exposure weigh: shared by the alert
score (tables/alerts/scoring.py) and the risk score (tables/risk/), so both judge alike."""

from __future__ import annotations

#: Grype's severity-label midpoints (CVSS scale).
SEVERITY_MIDPOINT: dict[str, float] = {
    "negligible": 0.5,
    "info": 0.5,
    "none": 0.5,
    "low": 3.0,
    "medium": 5.0,
    "moderate": 5.0,
    "high": 7.5,
    "critical": 9.0,
    "unknown": 5.0,
}
#: Asset criticality from the service catalogue; `UNKNOWN_CRITICALITY` for an entity in no
#: service.
CRITICALITY_WEIGHT: dict[str, float] = {"low": 0.6, "medium": 0.8, "high": 1.0, "critical": 1.2}
UNKNOWN_CRITICALITY = 0.8
EXPOSURE_WEIGHT: dict[str, float] = {"internet": 1.25, "internal": 1.0}
