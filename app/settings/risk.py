"""Risk scoring and release-gate settings: `VIGIL_RISK_*` and `VIGIL_GATE_*` (docs/risk.md).

Each variable overrides one `RiskConfig` field; the field's meaning and default are documented
at its definition in tables/risk/model.py.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from tables.risk.model import RiskConfig, parse_weights

#: `VIGIL_RISK_*` / `VIGIL_GATE_*` variable -> RiskConfig field (docs/risk.md).
RISK_ENV = {
    "VIGIL_RISK_HALF_LIFE_MS": "half_life_ms",
    "VIGIL_RISK_EMIT_DELTA": "emit_delta",
    "VIGIL_RISK_EMIT_PERIOD_MS": "emit_period_ms",
    "VIGIL_RISK_CHECK_INTERVAL_MS": "check_interval_ms",
    "VIGIL_RISK_RETENTION_MS": "retention_ms",
    "VIGIL_RISK_CI_WINDOW_MS": "ci_window_ms",
    "VIGIL_RISK_CFR_WINDOW_MS": "cfr_window_ms",
    "VIGIL_RISK_INCIDENT_WINDOW_MS": "incident_window_ms",
    "VIGIL_RISK_INCIDENT_MIN_SEVERITY": "incident_min_severity",
    "VIGIL_RISK_WEIGHTS": "weights",
    "VIGIL_RISK_MAIN_BRANCHES": "main_branches",
    "VIGIL_RISK_PRODUCTION_ENVIRONMENTS": "production_environments",
    "VIGIL_RISK_MAX_ITEMS": "max_items",
    "VIGIL_GATE_WARN_SCORE": "warn_score",
    "VIGIL_GATE_BLOCK_SCORE": "block_score",
    "VIGIL_GATE_BLOCK_CRITICAL_FINDINGS": "block_critical_findings",
    "VIGIL_GATE_CI_FAILURE_RATE_WARN": "ci_failure_rate_warn",
    "VIGIL_GATE_MIN_RUNS": "min_runs",
    "VIGIL_GATE_CFR_WARN": "cfr_warn",
    "VIGIL_GATE_MIN_DEPLOYMENTS": "min_deployments",
    "VIGIL_GATE_LARGE_CHANGE_LINES": "large_change_lines",
    "VIGIL_GATE_LARGE_CHANGE_FILES": "large_change_files",
    "VIGIL_GATE_RECENT_MS": "recent_ms",
    "VIGIL_GATE_DEPLOY_COOLDOWN_MS": "deploy_cooldown_ms",
}


def risk_from_env(env: Mapping[str, str]) -> RiskConfig:
    """RiskConfig with every `VIGIL_RISK_*` / `VIGIL_GATE_*` override found in `env`.

    Raises ValueError naming the variable when a value does not parse.
    """
    defaults = RiskConfig()
    changes: dict[str, Any] = {}
    for name, attr in RISK_ENV.items():
        raw = env.get(name)
        if raw is None or raw == "":
            continue
        current = getattr(defaults, attr)
        try:
            if attr == "weights":
                changes[attr] = parse_weights(raw)
            elif isinstance(current, bool):
                changes[attr] = raw.lower() in ("1", "true", "yes", "on")
            elif isinstance(current, int):
                changes[attr] = int(raw)
            elif isinstance(current, float):
                changes[attr] = float(raw)
            elif isinstance(current, tuple):
                changes[attr] = tuple(p.strip() for p in raw.split(",") if p.strip())
            else:
                changes[attr] = raw
        except ValueError as exc:
            raise ValueError(f"{name}: {exc}") from None
    return dataclasses.replace(defaults, **changes)
