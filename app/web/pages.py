"""The dashboard pages' APIs: overview, anomalies, risk over time, drift, pipeline.

Each answers from every worker (app/web/gather.py): this worker's part from its partitions'
tables and its display history (app/web/history.py, agents/history.py), the other workers'
parts with `local=1`; paging and filtering happen on the server. All need the read token.

- `GET /api/overview?minutes=15..60`: events/s per source and alerts/s, counts, what to look at.
- `GET /api/anomalies?kind=metric|rate&entity=&limit=&offset=`: series with anomalies, each with its
  windows `[start_ms, value, low, high, score]` (expected range low..high, score on anomalies).
- `GET /api/risk/history?limit=&offset=&type=`: subjects by score, each with its score and
  contributions over time `[time_ms, score, {factor: points}]`.
- `GET /api/drift?limit=&offset=`: drifted resources, paths, desired vs observed, actor.
- `GET /api/pipeline/workers`: per worker its partitions, lag per topic and partition, partition
  clocks and watermarks, late and dead-letter counts, overflow counters, a lag history.
"""

from __future__ import annotations

import heapq
import time
from typing import Any

from aiohttp.web import Response
from faust.web import Request

from agents.history import HISTORY
from app import metrics
from app.faust_app import app
from app.web import snapshots
from app.web.alert_groups import SEVERITY_RANK
from app.web.gather import gathered, json_response, me, page_params
from app.web.views import AuthedView

#: How many items of each kind "what to look at" lists.
ATTENTION = 5


def _now_ms() -> int:
    return int(time.time() * 1000)


def _bad(message: str) -> Response:
    return json_response({"error": message}, status=400)


def _sum_rates(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-source rates of every worker added up, bucket by bucket."""
    times = sorted({t for p in parts for t in p["times"]})
    index = {t: i for i, t in enumerate(times)}
    sources: dict[str, list[float]] = {}
    for part in parts:
        for name, values in part["sources"].items():
            row = sources.setdefault(name, [0.0] * len(times))
            for t, v in zip(part["times"], values, strict=True):
                row[index[t]] = round(row[index[t]] + v, 3)
    bucket = parts[0]["bucket_ms"] if parts else 10_000
    return {"bucket_ms": bucket, "times": times, "sources": sources}


@app.page("/api/overview")
class OverviewView(AuthedView):
    """Rates, counts and what to look at first."""

    async def get(self, request: Request) -> Response:
        if (refused := self.denied(request)) is not None:
            return refused
        try:
            minutes = max(5, min(60, int(request.query.get("minutes", "15"))))
        except ValueError:
            return _bad("minutes must be an integer")

        async def local() -> dict[str, Any]:
            return await snapshots.shared(f"overview|{minutes}", overview)

        async def overview() -> dict[str, Any]:
            now = _now_ms()
            alerts = await snapshots.alerts()
            firing = [a for a in alerts if a["status"] == "firing" and not a.get("silenced_by")]
            worst = heapq.nsmallest(
                ATTENTION,
                firing,
                key=lambda a: (
                    -SEVERITY_RANK.get(a.get("severity"), 0),
                    -(a.get("last_seen") or 0),
                ),
            )
            risky = [r for r in await snapshots.risk_subjects() if r["score"]]
            entities = await snapshots.entities()
            anomalies = sorted(
                HISTORY.anomalous.values(),
                key=lambda s: (s["last_anomaly"] or {}).get("time") or "",
                reverse=True,
            )
            drifted = [d for d in HISTORY.drift.values() if d.get("status") == "drifted"]
            return {
                "rates": HISTORY.rate_series(now, minutes),
                "entities": entities["count"],
                "events": entities["events"],
                "recent_entities": entities["recent"],
                "alerts": len(alerts),
                "firing": len(firing),
                "anomalous_series": len(anomalies),
                "drifted": len(drifted),
                "top_alerts": [
                    {
                        "alertname": (a.get("labels") or {}).get("alertname"),
                        "entity": a.get("entity"),
                        "severity": a.get("severity"),
                        "group": a.get("group"),
                        "last_seen": a.get("last_seen"),
                    }
                    for a in worst
                ],
                "top_anomalies": [
                    {k: s[k] for k in ("series", "entity", "kind", "name", "last_anomaly")}
                    for s in anomalies[:ATTENTION]
                ],
                "top_risk": [
                    {k: r[k] for k in ("subject", "type", "score")}
                    for r in heapq.nlargest(ATTENTION, risky, key=lambda r: r["score"])
                ],
                "top_services": heapq.nlargest(
                    ATTENTION,
                    (r for r in risky if r["type"] == "service"),
                    key=lambda r: (r["score"], r["subject"]),
                ),
                "recent_drift": [
                    {k: d.get(k) for k in ("resource", "paths", "time", "out_of_band")}
                    for d in drifted[-ATTENTION:]
                ],
            }

        def merge(parts: list[dict[str, Any]]) -> dict[str, Any]:
            rank = SEVERITY_RANK
            out: dict[str, Any] = {"rates": _sum_rates([p["rates"] for p in parts])}
            for name in ("entities", "events", "alerts", "firing", "anomalous_series", "drifted"):
                out[name] = sum(p[name] for p in parts)
            out["recent_entities"] = heapq.nlargest(
                snapshots.RECENT_ENTITIES,
                (e for p in parts for e in p["recent_entities"]),
                key=lambda e: e.get("last_ts_ms") or 0,
            )
            top_alerts = [a for p in parts for a in p["top_alerts"]]
            out["top_alerts"] = sorted(
                top_alerts,
                key=lambda a: (-rank.get(a.get("severity"), 0), -(a.get("last_seen") or 0)),
            )[:ATTENTION]
            out["top_anomalies"] = sorted(
                (a for p in parts for a in p["top_anomalies"]),
                key=lambda s: (s["last_anomaly"] or {}).get("time") or "",
                reverse=True,
            )[:ATTENTION]
            out["top_risk"] = sorted(
                (r for p in parts for r in p["top_risk"]), key=lambda r: -r["score"]
            )[:ATTENTION]
            out["recent_drift"] = [d for p in parts for d in p["recent_drift"]][-ATTENTION:]
            out["top_services"] = heapq.nlargest(
                ATTENTION,
                (r for p in parts for r in p["top_services"]),
                key=lambda r: (r["score"], r["subject"]),
            )
            return out

        return await gathered(request, local, merge)


@app.page("/api/anomalies")
class AnomaliesView(AuthedView):
    """Series with anomalies, newest anomaly first, with their windows and expected range."""

    async def get(self, request: Request) -> Response:
        if (refused := self.denied(request)) is not None:
            return refused
        try:
            limit, offset = page_params(request, default=20, most=100)
        except ValueError:
            return _bad("limit and offset must be integers")
        kind = request.query.get("kind") or None
        if kind not in (None, "metric", "rate"):
            return _bad("kind must be metric or rate")
        entity = request.query.get("entity") or None

        def newest_first(items: Any) -> list[dict[str, Any]]:
            return sorted(
                items,
                key=lambda s: ((s["last_anomaly"] or {}).get("time") or "", s["series"]),
                reverse=True,
            )

        def local() -> dict[str, Any]:
            series = newest_first(
                s for s in HISTORY.anomalous.values() if entity is None or s["entity"] == entity
            )
            kinds = {k: sum(1 for s in series if s["kind"] == k) for k in ("metric", "rate")}
            if kind is not None:
                series = [s for s in series if s["kind"] == kind]
            shown = [HISTORY.series_of(s["series"]) for s in series[: offset + limit]]
            return {"total": len(series), "by_kind": kinds, "items": shown}

        def merge(parts: list[dict[str, Any]]) -> dict[str, Any]:
            items = newest_first(s for p in parts for s in p["items"])
            return {
                "total": sum(p["total"] for p in parts),
                "by_kind": {k: sum(p["by_kind"][k] for p in parts) for k in ("metric", "rate")},
                "offset": offset,
                "items": items[offset : offset + limit],
            }

        return await gathered(request, local, merge)


@app.page("/api/risk/history")
class RiskHistoryView(AuthedView):
    """Risk subjects by score, each with its score and contributions over time."""

    async def get(self, request: Request) -> Response:
        if (refused := self.denied(request)) is not None:
            return refused
        try:
            limit, offset = page_params(request, default=8, most=50)
        except ValueError:
            return _bad("limit and offset must be integers")
        kind = request.query.get("type") or None

        def ranked(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
            return sorted(items, key=lambda s: (-(s["score"] or 0), s["subject"]))

        async def by_score() -> list[dict[str, Any]]:
            subjects = await snapshots.risk_subjects()
            return ranked([r for r in subjects if not kind or r["type"] == kind])

        async def local() -> dict[str, Any]:
            subjects = await snapshots.shared(f"risk-ranked|{kind or ''}", by_score)
            top = [
                {**r, "points": HISTORY.risk_of(r["subject"])} for r in subjects[: offset + limit]
            ]
            return {"total": len(subjects), "items": top}

        def merge(parts: list[dict[str, Any]]) -> dict[str, Any]:
            items = ranked([s for p in parts for s in p["items"]])
            total = sum(p["total"] for p in parts)
            return {"total": total, "offset": offset, "items": items[offset : offset + limit]}

        return await gathered(request, local, merge)


@app.page("/api/drift")
class DriftView(AuthedView):
    """Drifted resources: paths with desired and observed values, actor, out-of-band, since."""

    async def get(self, request: Request) -> Response:
        if (refused := self.denied(request)) is not None:
            return refused
        try:
            limit, offset = page_params(request, default=50, most=200)
        except ValueError:
            return _bad("limit and offset must be integers")

        async def local() -> dict[str, Any]:
            rows = []
            for key, drifted in await snapshots.drifted():
                last = HISTORY.drift.get(key) or {}
                paths = [
                    {
                        "path": path,
                        "desired": d.get("d"),
                        "observed": d.get("o"),
                        "since": d.get("since"),
                    }
                    for path, d in sorted(drifted.items())
                ]
                rows.append(
                    {
                        "resource": key,
                        "paths": paths,
                        "since": max((p["since"] or 0) for p in paths),
                        "actor": last.get("actor"),
                        "out_of_band": last.get("out_of_band"),
                        "source": last.get("source"),
                        "time": last.get("time"),
                    }
                )
            return {"items": rows}

        def merge(parts: list[dict[str, Any]]) -> dict[str, Any]:
            items = sorted(
                (r for p in parts for r in p["items"]), key=lambda r: (-r["since"], r["resource"])
            )
            return {"total": len(items), "offset": offset, "items": items[offset : offset + limit]}

        return await gathered(request, local, merge)


def _lag_by_partition() -> dict[str, dict[str, int]]:
    """This worker's consumer lag per topic and partition (as `/metrics` reports it)."""
    collector = metrics.METRICS._app_collector
    out: dict[str, dict[str, int]] = {}
    if collector is None:
        return out
    for family in collector.collect():
        if family.name == "vigil_consumer_lag":
            for sample in family.samples:
                topic, partition = sample.labels["topic"], sample.labels["partition"]
                out.setdefault(topic, {})[partition] = int(sample.value)
    return out


def _counter_totals(counter: Any, label: str) -> dict[str, float]:
    totals: dict[str, float] = {}
    for family in counter.collect():
        for sample in family.samples:
            if sample.name.endswith("_total"):
                key = sample.labels.get(label, "")
                totals[key] = totals.get(key, 0) + sample.value
    return totals


def _overflow() -> dict[str, Any]:
    out: dict[str, Any] = {}
    for family in metrics.METRICS._bounds.collect():
        for sample in family.samples:
            name = sample.labels.get("buffer") or "events_behind_clock"
            out[name] = int(sample.value)
    return out


def _assignment() -> list[tuple[str, int]]:
    """This worker's assigned (topic, partition)s, sorted."""
    consumer = app.consumer
    return sorted((tp.topic, tp.partition) for tp in (consumer.assignment() if consumer else []))


@app.timer(interval=10.0)
async def _sample_lag() -> None:
    """A lag sample for the pipeline page's chart, every 10 s."""
    try:
        lag = sum(v for parts in _lag_by_partition().values() for v in parts.values())
        HISTORY.sample_lag(lag, _now_ms())
    except Exception:  # display only
        pass


@app.page("/api/pipeline/workers")
class PipelineWorkersView(AuthedView):
    """Every worker: partitions, lag, clocks and watermarks, late, dead letters, overflow."""

    async def get(self, request: Request) -> Response:
        if (refused := self.denied(request)) is not None:
            return refused

        def local() -> dict[str, Any]:
            assignment = _assignment()
            return {
                "workers": [
                    {
                        "worker": me(),
                        "rebalancing": bool(getattr(app, "rebalancing", False)),
                        "assignment": [f"{t}:{p}" for t, p in assignment],
                        "lag": _lag_by_partition(),
                        "clocks": {str(p): c for p, c in sorted(HISTORY.clocks.items())},
                        "late": _counter_totals(metrics.METRICS.late, "source"),
                        "dead_letters": _counter_totals(metrics.METRICS.dead_letters, "error_code"),
                        "overflow": _overflow(),
                        "lag_history": HISTORY.lag_series(),
                    }
                ]
            }

        def merge(parts: list[dict[str, Any]]) -> dict[str, Any]:
            workers = sorted((w for p in parts for w in p["workers"]), key=lambda w: w["worker"])
            return {"workers": workers}

        return await gathered(request, local, merge)
