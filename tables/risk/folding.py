"""Folding one risk signal into its subject's state: items (findings, incidents, drift,
anomalies, CI), CI runs, incidents, deployments and changes. Each fold is a commutative merge
(max/min of times, the values of the latest `(time, id)`), so a subject's state depends only
on its signals, not on their order."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

from app.model.events import SEVERITY_RANK
from tables.risk.model import RiskConfig

#: signal kind -> (category, mode): `hold` items count while open; `decay` ones also decay
#: from the time they closed or happened.
ITEM_KINDS: dict[str, tuple[str, str]] = {
    "finding": ("findings", "hold"),
    "incident": ("incidents", "decay"),
    "violation": ("drift", "decay"),
    "drift": ("drift", "hold"),
    "anomaly": ("anomalies", "decay"),
    "ci": ("ci", "hold"),
}
_TERMINAL_RANK = {"cancelled": 0, "success": 1, "failure": 2}
#: A deployment's attributes -> the signal detail each comes from.
DEPLOY_ATTRS = {
    "env": "environment",
    "prod": "production",
    "sha": "commit_sha",
    "branch": "branch",
    "artifact": "artifact",
}


def later(candidate: list[Any], current: list[Any] | None) -> bool:
    """Whether `candidate` (a `[time, id]`-like ordering key) beats `current`."""
    return current is None or candidate > current


def refresh_info(st: dict[str, Any], services: Mapping[str, Mapping[str, Any]]) -> None:
    """A service's catalogue entry (criticality, exposure, owner) beats what signals said."""
    entry = services.get(st["subject"]) if st["type"] == "service" else None
    if entry is not None:
        st["info"] = {k: entry.get(k) for k in ("criticality", "exposure", "owner") if entry.get(k)}


def _horizon(kind: str, config: RiskConfig) -> int:
    """How far behind the subject's clock a signal of this kind still matters."""
    if kind == "deployment":
        return config.cfr_window_ms + config.incident_window_ms
    if kind == "change":
        return config.cfr_window_ms
    return config.retention_ms


def apply_signal(
    st: dict[str, Any],
    signal: Mapping[str, Any],
    config: RiskConfig,
    services: Mapping[str, Mapping[str, Any]],
    stats: Counter[str],
) -> bool:
    """Fold one signal into its subject; False when it is too old to matter."""
    t = int(signal["time_ms"])
    kind = str(signal.get("kind"))
    clock = st["clock"]
    if clock is not None and t < clock - _horizon(kind, config):
        stats["too_old"] += 1
        return False
    st["clock"] = t if clock is None else max(clock, t)
    ident = [t, str(signal["id"])]
    if (signal.get("criticality") or signal.get("exposure")) and later(ident, st["info_at"]):
        st["info"] = {
            "criticality": signal.get("criticality"),
            "exposure": signal.get("exposure"),
        }
        st["info_at"] = ident
    refresh_info(st, services)
    details = signal.get("details") or {}
    if kind in ITEM_KINDS:
        _apply_item(st, signal, kind, t, ident)
    if kind == "ci" and details.get("run_key"):
        run = {
            "t": t,
            "ok": signal.get("status") != "open",
            "n": details.get("name") or signal["key"],
            "sha": details.get("commit_sha"),
            "k": "run" if "|run|" in details["run_key"] else "job",
            "b": details.get("branch"),
            "i": ident,
        }
        current = st["runs"].get(details["run_key"])
        if current is None or later(ident, current.get("i")):
            st["runs"][details["run_key"]] = run
    if _is_incident(kind, signal, config):
        start = details.get("starts_ms")
        start = start if isinstance(start, int) else t
        st["incidents"][f"{kind}|{signal['key']}|{start}"] = start
    if kind == "deployment":
        _apply_deployment(st, signal, t, ident)
    if kind == "change":
        for sha in {details.get("commit_sha"), details.get("merge_commit_sha")} - {None}:
            current = st["changes"].get(sha)
            if current is None or later(ident, current.get("i")):
                st["changes"][sha] = {"t": t, "i": ident, **details, "commit_sha": sha}
    return True


def _is_incident(kind: str, signal: Mapping[str, Any], config: RiskConfig) -> bool:
    if kind == "anomaly":
        return True
    if kind not in ("incident", "violation") or signal.get("status") != "open":
        return False
    rank = SEVERITY_RANK.get(str(signal.get("severity")), 0)
    return rank >= SEVERITY_RANK[config.incident_min_severity]


def _apply_item(
    st: dict[str, Any], signal: Mapping[str, Any], kind: str, t: int, ident: list[Any]
) -> None:
    category, mode = ITEM_KINDS[kind]
    key = f"{kind}|{signal['key']}"
    item = st["items"].get(key) or {
        "c": category,
        "m": mode,
        "o": None,
        "x": None,
        "tr": None,
        "p": 0.0,
        "pt": None,
        "dt": None,
    }
    status = signal.get("status")
    slot = {"open": "o", "closed": "x"}.get(str(status), "tr")
    item[slot] = t if item[slot] is None else max(item[slot], t)
    points = float(signal.get("points_input") or 0.0)
    # Points come from the latest open or transient signal; a close's points only stand
    # in until one arrives (time -1), so the result does not depend on arrival order.
    candidate = [-1 if status == "closed" else t, points, ident[1]]
    if later(candidate, item["pt"]):
        item["p"], item["pt"] = points, candidate
    if later(ident, item["dt"]):
        item["dt"] = ident
        item["sev"] = signal.get("severity")
        item["e"] = signal.get("entity")
        item["d"] = dict(signal.get("details") or {})
    st["items"][key] = item


def _apply_deployment(
    st: dict[str, Any], signal: Mapping[str, Any], t: int, ident: list[Any]
) -> None:
    key = str(signal["key"])
    details = signal.get("details") or {}
    deploy = st["deploys"].get(key) or {
        "t0": t,
        "t": None,
        "state": None,
        "st": None,
        "card": False,
        "first": ident,
        "sig": None,
        "src": {},
    }
    deploy["t0"] = min(deploy["t0"], t)
    if deploy["sig"] is None or ident <= deploy["first"]:
        deploy["first"] = ident
        deploy["sig"] = {
            "key": key,
            "time_ms": t,
            "entity": signal.get("entity"),
            "details": dict(details),
        }
    state = details.get("state")
    if state in _TERMINAL_RANK:
        rank = [t, _TERMINAL_RANK[state]]
        if later(rank, deploy["st"]):
            deploy["state"], deploy["t"], deploy["st"] = state, t, rank
    for attr, name in DEPLOY_ATTRS.items():
        if details.get(name) is not None and later(ident, deploy["src"].get(attr)):
            deploy[attr] = details[name]
            deploy["src"][attr] = ident
    st["deploys"][key] = deploy
