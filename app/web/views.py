"""HTTP views: dashboard, authenticated JSON API over table state, health probes.

- `GET /health/live`, `GET /health/ready`: no auth (Kubernetes probes).
- `GET /`: the dashboard page (static; it calls the API with the token the user enters).
- `GET /api/tables`: the tables the API serves.
- `GET /api/tables/{name}?key=K` (or `entity=E`): one value, routed to the worker that owns the
  entity's partition, so any worker answers for any key.
- `GET /api/tables/{name}?limit=&offset=&prefix=`: a page of the table, aggregated across every
  worker (`local=1` asks one worker for its own part only); the rows are read by a chunked scan
  off the request path and shared for a few seconds (app/web/snapshots.py).
- `GET /api/silences`, `POST /api/silences` (admin), `POST /api/silences/{id}/expire` (admin).
- `GET /api/pipeline`: this worker's partitions, rebalancing and recovery state.
- `GET /gate/{service}`, `POST /gate/{service}` (read): the release gate.

Public on purpose: the page, the health probes and `/metrics` (no table contents). Everything
else needs a bearer token (app/web/auth.py); the audit trail and silences name the token's
principal, never a header or body value. Bad input is answered 400 (413 for a body over
app/web/schema.py's bound, 404 for an unknown table or silence) with `{"error": reason}`.
Faust's own `/table/`, `/router/` and `/graph/` endpoints are disabled (app/faust_app.py);
CORS stays off.
"""

from __future__ import annotations

import asyncio
import functools
import time
from importlib import resources
from typing import Any

import aiohttp
import orjson
from aiohttp.web import Response
from faust.web import Request, View

from app import metrics
from app.faust_app import app, catalog, settings
from app.model.events import format_time
from app.topics import entity_partition
from app.web.auth import Principal, TokenAuth
from app.web.live_views import chunked
from app.web.schema import (
    MAX_BODY_BYTES,
    BadRequest,
    check_service,
    claimed_caller,
    gate_change,
    json_body,
)
from tables.alerts.silences import check_silence_bounds
from tables.control.commands import apply_command
from tables.definitions import (
    alert_state,
    audit_state,
    desired_state,
    entity_stats,
    group_state,
    inhibitors,
    observed_state,
    posture_state,
    risk_state,
    series_state,
    silences,
)

AUTH = TokenAuth.from_settings(settings)

#: API name -> (table, the topic whose partitions it follows, or None for a global table).
#: Keys of `events`-partitioned tables start with their entity; `risk` keys are services.
TABLES: dict[str, tuple[Any, str | None]] = {
    "entities": (entity_stats, "events"),
    "series": (series_state, "events"),
    "alerts": (alert_state, "events"),
    "groups": (group_state, "events"),
    "risk": (risk_state, "risk_signals"),
    "posture": (posture_state, "events"),
    "desired": (desired_state, "events"),
    "observed": (observed_state, "events"),
    "silences": (silences, None),
    "inhibitors": (inhibitors, None),
}
MAX_PAGE = 500


def _visible(key: str) -> bool:
    """Internal bookkeeping keys (watermarks, detector state, scan scopes) are not listed."""
    return not key.startswith("~") and not key.endswith("#det") and "|~" not in key


def entity_of(key: str) -> str:
    """The entity a table key belongs to (`<entity>|...` or `<entity>:{...}`)."""
    cut = [i for i in (key.find("|"), key.find(":{")) if i > 0]
    return key[: min(cut)] if cut else key


class Refused(Exception):
    """A request refused before it is served (401, 403)."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status)
        self.response = response


class AuthedView(View):
    """A view that needs a bearer token (`read` role unless a method asks for `admin`)."""

    def principal(self, request: Request, needed: str = "read") -> Principal:
        """The caller's principal; raises Refused (401/403) when it may not proceed."""
        principal = AUTH.principal_of(request.headers.get("Authorization"))
        if principal is None:
            raise Refused(
                self.json(
                    {"error": "unauthorized: send Authorization: Bearer <token>"},
                    status=401,
                    headers={"WWW-Authenticate": 'Bearer realm="vigil"'},
                )
            )
        if not principal.allows(needed):
            raise Refused(self.json({"error": f"forbidden: needs the {needed} role"}, status=403))
        return principal

    def denied(self, request: Request, needed: str = "read") -> Response | None:
        """A 401/403 response when the request may not proceed, else None."""
        try:
            self.principal(request, needed)
        except Refused as refused:
            return refused.response
        return None

    def bad(self, problem: BadRequest) -> Response:
        """The JSON answer to a bad request."""
        return self.json({"error": str(problem)}, status=problem.status)


async def _read_body(request: Request) -> bytes:
    """The request body, refused (413) beyond MAX_BODY_BYTES when it says its length (a
    chunked one is read up to aiohttp's 1 MiB bound, then checked by `json_body`)."""
    if (request.content_length or 0) > MAX_BODY_BYTES:
        raise BadRequest(f"request body larger than {MAX_BODY_BYTES} bytes", status=413)
    return await request.read()


#: The vendored chart library (uPlot, MIT: app/web/static/uplot-<version>.LICENSE), fetched from
#: the npm registry and checked against its integrity by scripts/vendor_uplot.sh.
UPLOT_VERSION = "1.6.32"


@functools.lru_cache(maxsize=4)
def _page(name: str) -> str:
    """A static page, with the chart library inlined where it says `<!-- vendor:uplot -->`:
    the page works offline and needs no route of its own for scripts."""
    static = resources.files("app.web").joinpath("static")
    text = static.joinpath(name).read_text()
    if "<!-- vendor:uplot -->" in text:
        stem = f"uplot-{UPLOT_VERSION}"
        inlined = (
            f"<style>{static.joinpath(stem + '.min.css').read_text()}</style>\n"
            f"<script>/*! uPlot {UPLOT_VERSION} (c) Leon Sorokin, MIT: {stem}.LICENSE */\n"
            f"{static.joinpath(stem + '.iife.min.js').read_text()}</script>"
        )
        text = text.replace("<!-- vendor:uplot -->", inlined)
    return text


@app.page("/")
class DashboardView(View):
    """The dashboard page; data comes from the API with the token entered on the page."""

    async def get(self, request: Request) -> Response:
        return self.html(_page("dashboard.html"))


@app.page("/health/live")
class LiveView(View):
    """Liveness: the process serves HTTP."""

    async def get(self, request: Request) -> Response:
        return self.json({"status": "live"})


@app.page("/health/ready")
class ReadyView(View):
    """Readiness: only once the first assignment was recovered, and not while rebalancing or
    recovering tables (before the first assignment Faust is neither, yet owns nothing)."""

    async def get(self, request: Request) -> Response:
        recovery = app.tables.recovery
        recovering = bool(getattr(recovery, "in_recovery", False))
        rebalancing = bool(getattr(app, "rebalancing", False))
        assigned = recovery.completed.is_set()
        ready = assigned and not (recovering or rebalancing)
        body = {
            "ready": ready,
            "assigned": assigned,
            "rebalancing": rebalancing,
            "recovering": recovering,
        }
        return self.json(body, status=200 if ready else 503)


@app.page("/metrics")
class MetricsView(View):
    """Prometheus metrics (no auth, like the health probes; no table contents)."""

    async def get(self, request: Request) -> Response:
        body, content_type = metrics.render(request.headers.get("Accept"))
        return self.bytes(body, headers={"Content-Type": content_type})


@app.page("/api/tables")
class TablesView(AuthedView):
    """The tables the API serves."""

    async def get(self, request: Request) -> Response:
        if (refused := self.denied(request)) is not None:
            return refused
        return self.json(
            {
                name: {"table": table.name, "partitioned": source is not None, "help": table.help}
                for name, (table, source) in TABLES.items()
            }
        )


@app.page("/api/tables/{name}")
class TableView(AuthedView):
    """One key (routed to its owner) or a page of a table (aggregated across workers)."""

    async def get(self, request: Request, name: str) -> Response:
        if (refused := self.denied(request)) is not None:
            return refused
        if name not in TABLES:
            return self.json(
                {"error": f"unknown table {name[:64]!r}", "tables": list(TABLES)}, status=404
            )
        table, source = TABLES[name]
        key = request.query.get("key")
        entity = request.query.get("entity")
        if key or entity:
            return await self._get_one(request, table, source, key, entity)
        try:
            limit = max(1, min(MAX_PAGE, int(request.query.get("limit", "100"))))
            offset = max(0, int(request.query.get("offset", "0")))
        except ValueError:
            return self.json({"error": "limit and offset must be integers"}, status=400)
        prefix = request.query.get("prefix", "")
        everywhere = source is not None and request.query.get("local") != "1"
        from app.web import snapshots  # imports the agents' indexes: not at module load

        async def rows_now() -> list[dict[str, Any]]:
            rows = await _local_rows(table, prefix)
            if everywhere:
                rows += await _remote_rows(request, name, prefix)
            rows.sort(key=lambda row: row["key"])
            return rows

        scope = "all" if everywhere else "local"
        try:
            rows = await snapshots.shared(f"table|{name}|{scope}|{prefix}", rows_now)
        except (RuntimeError, aiohttp.ClientError, TimeoutError) as exc:
            return self.json({"error": f"a worker did not answer: {exc}"}, status=502)
        return self.json(
            {"total": len(rows), "offset": offset, "items": rows[offset : offset + limit]}
        )

    async def _get_one(
        self, request: Request, table: Any, source: str | None, key: str | None, entity: str | None
    ) -> Response:
        key = key or entity or ""
        if source is not None and request.query.get("local") != "1":
            partition = entity_partition(entity or entity_of(key), settings.partitions)
            owner = _owner_of_partition(catalog.name(source), partition)
            if owner is None:
                return self.json({"error": "owner unknown (rebalancing?), retry"}, status=503)
            if owner != _me():
                return await _forward(request, owner)
        value = table.get(key)
        if value is None:
            return self.json({"error": "not found", "key": key}, status=404)
        return self.json({"key": key, "value": value, "worker": str(app.conf.canonical_url)})


def _me() -> str:
    return str(app.conf.canonical_url).rstrip("/")


def _owner_of_partition(topic: str, partition: int) -> str | None:
    """URL of the worker that consumes `partition` of `topic` (and holds its table state)."""
    for url, topics in app.router.external_topics_metadata().items():
        if partition in topics.get(topic, ()):
            return str(url).rstrip("/")
    return None


async def _forward(request: Request, owner: str, body: Any = None) -> Response:
    """Ask the owning worker for its local answer (same path and method, `local=1`)."""
    params = {**request.query, "local": "1"}
    headers = {
        name: request.headers[name]
        for name in ("Authorization", "X-Vigil-Caller")
        if name in request.headers
    }
    try:
        async with app.http_client.request(
            request.method,
            f"{owner}{request.path}",
            params=params,
            headers=headers,
            data=orjson.dumps(body) if body is not None else None,
        ) as response:
            body = await response.read()
            return Response(body=body, status=response.status, content_type="application/json")
    except (aiohttp.ClientError, TimeoutError) as exc:
        error = {"error": f"the owning worker {owner} did not answer: {exc}"}
        return Response(body=orjson.dumps(error), status=502, content_type="application/json")


async def _local_rows(table: Any, prefix: str) -> list[dict[str, Any]]:
    """This worker's rows of a table, read by a scan that yields to the event loop."""
    return [
        {"key": key, "value": value}
        async for key, value in chunked(table.items())
        if isinstance(key, str) and key.startswith(prefix) and _visible(key) and value is not None
    ]


async def _remote_rows(request: Request, name: str, prefix: str) -> list[dict[str, Any]]:
    """Every other worker's rows of a partitioned table (their `local=1` answers)."""
    hosts = {str(url).rstrip("/") for url in app.router.external_topics_metadata()} - {_me()}
    headers = {"Authorization": request.headers.get("Authorization", "")}

    async def fetch(host: str) -> list[dict[str, Any]]:
        url = f"{host}/api/tables/{name}"
        params = {"local": "1", "limit": str(10**9), "prefix": prefix}
        async with app.http_client.get(url, params=params, headers=headers) as response:
            if response.status != 200:
                raise RuntimeError(f"{host} answered {response.status}")
            return (orjson.loads(await response.read()))["items"]

    results = await asyncio.gather(*(fetch(h) for h in sorted(hosts)), return_exceptions=True)
    rows: list[dict[str, Any]] = []
    for result in results:
        if isinstance(result, BaseException):
            raise result
        rows.extend(result)
    return rows


@app.page("/api/silences")
class SilencesView(AuthedView):
    """List silences (read); create one (admin)."""

    async def get(self, request: Request) -> Response:
        if (refused := self.denied(request)) is not None:
            return refused
        now = int(time.time() * 1000)
        items = []
        for _, silence in silences.items():
            if silence:
                state = (
                    "pending"
                    if now < silence["starts_ms"]
                    else ("expired" if now >= silence["ends_ms"] else "active")
                )
                items.append({**silence, "state": state})
        return self.json({"items": sorted(items, key=lambda s: s["starts_ms"])})

    async def post(self, request: Request) -> Response:
        """Create a silence; its `createdBy` is the token's principal (a body value is
        ignored), its bounds those of tables/alerts/silences.py `check_silence_bounds`."""
        try:
            principal = self.principal(request, "admin")
            body = json_body(await _read_body(request), allow_empty=False)
            if not isinstance(body, dict):
                raise BadRequest("silence: must be a JSON object")
            command = {
                "command": "silence.create",
                "silence": {**body, "createdBy": principal.name},
            }
            (silence,) = apply_command(command, silences).values()
            max_ms = int(settings.silence_max_hours * 3_600_000)
            check_silence_bounds(silence, int(time.time() * 1000), max_ms)
        except Refused as refused:
            return refused.response
        except BadRequest as problem:
            return self.bad(problem)
        except ValueError as exc:
            return self.json({"error": str(exc)}, status=400)
        await _send_control({"command": "silence.create", "silence": silence})
        return self.json({"silence": silence, "status": "accepted"}, status=202)


@app.page("/api/silences/{silence_id}/expire")
class ExpireSilenceView(AuthedView):
    """Expire a silence now (admin)."""

    async def post(self, request: Request, silence_id: str) -> Response:
        """The body is optional (empty or a JSON object, ignored): who expires the silence is
        the token's principal."""
        try:
            principal = self.principal(request, "admin")
            body = json_body(await _read_body(request))
            if body is not None and not isinstance(body, dict):
                raise BadRequest("body must be empty or a JSON object")
        except Refused as refused:
            return refused.response
        except BadRequest as problem:
            return self.bad(problem)
        if silences.get(silence_id) is None:
            return self.json({"error": "no such silence"}, status=404)
        command = {
            "command": "silence.expire",
            "id": silence_id,
            "at": format_time(int(time.time() * 1000)),
            "by": principal.name,
        }
        await _send_control(command)
        return self.json({"status": "accepted", "command": command}, status=202)


async def _send_control(command: dict[str, Any]) -> None:
    from agents.control import control_topic

    await control_topic.send(value=orjson.dumps(command))


@app.page("/api/posture")
class PostureView(AuthedView):
    """Compliance posture per framework, control and scope, aggregated across workers."""

    async def get(self, request: Request) -> Response:
        if (refused := self.denied(request)) is not None:
            return refused
        from app.web import snapshots
        from app.web.gather import gathered
        from tables.compliance.posture import posture_rows

        framework = request.query.get("framework")

        async def local() -> dict[str, Any]:
            return {"rows": await snapshots.posture_rows()}

        def merge(parts: list[dict[str, Any]]) -> dict[str, Any]:
            rows = (row for part in parts for row in part["rows"])
            result = posture_rows((row["key"], row["value"]) for row in rows)
            if framework:
                result = [row for row in result if row.get("framework") == framework]
            return {"items": result}

        return await gathered(request, local, merge)


@app.page("/api/audit")
class AuditView(AuthedView):
    """The most recent audit records (newest last), from the worker that writes the chain."""

    async def get(self, request: Request) -> Response:
        if (refused := self.denied(request)) is not None:
            return refused
        if request.query.get("local") != "1":
            owner = _owner_of_partition(catalog.name("control"), 0)
            if owner is None:
                return self.json({"error": "audit writer unknown (rebalancing?)"}, status=503)
            if owner != _me():
                return await _forward(request, owner)
        return self.json(
            {"items": audit_state.get("recent") or [], "head": audit_state.get("head")}
        )


@app.page("/gate/{service}")
class GateView(AuthedView):
    """The release gate: allow, warn or block for a service, from live risk state.

    `GET` judges the service as it stands; `POST` a proposed change (app/web/schema.py: JSON
    with `commit_sha`, `branch`, `artifact`, `environment`, `lines_changed`, `files_changed`,
    ...; other keys are refused). Answered by the worker that owns the service's risk
    partition; every decision is audited under the token's principal (`X-Vigil-Caller`, when
    sent, is kept as `details.claimed_by` only). A service neither in the catalogue nor with
    risk state gets `VIGIL_GATE_UNKNOWN_DECISION` with reason `unknown_service`.
    """

    async def get(self, request: Request, service: str) -> Response:
        return await self._judge(request, service, read_body=False)

    async def post(self, request: Request, service: str) -> Response:
        return await self._judge(request, service, read_body=True)

    async def _judge(self, request: Request, service: str, read_body: bool) -> Response:
        try:
            principal = self.principal(request)
            check_service(service)
            claimed = claimed_caller(request.headers.get("X-Vigil-Caller"))
            change = gate_change(json_body(await _read_body(request))) if read_body else None
        except Refused as refused:
            return refused.response
        except BadRequest as problem:
            return self.bad(problem)
        if request.query.get("local") != "1":
            partition = entity_partition(service, settings.partitions)
            owner = _owner_of_partition(catalog.name("risk_signals"), partition)
            if owner is None:
                return self.json({"error": "risk owner unknown (rebalancing?)"}, status=503)
            if owner != _me():
                return await _forward(request, owner, change)
        from agents.risk import stage
        from tables.risk.scorecards import gate, unknown_gate

        now_ms = int(time.time() * 1000)
        state = risk_state.get(service)
        if state is None and service not in stage.services:
            decision = unknown_gate(service, settings.gate_unknown_decision, now_ms)
        else:
            decision = gate(stage.current(state, risk_state), change, now_ms, stage.config)
            decision["service"] = service
        details = {"service": service, "score": decision.get("score"), "change": change or {}}
        if claimed is not None:
            details["claimed_by"] = claimed
        await _send_control(
            {
                "command": "audit.append",
                "who": principal.name,
                "what": f"gate.{decision['decision']}",
                "why": "; ".join(
                    str(r.get("message", r)) if isinstance(r, dict) else str(r)
                    for r in decision.get("reasons") or []
                )
                or "no findings",
                "details": details,
            }
        )
        return self.json(decision)


@app.page("/api/pipeline")
class PipelineView(AuthedView):
    """This worker: assigned partitions, rebalancing and recovery."""

    async def get(self, request: Request) -> Response:
        if (refused := self.denied(request)) is not None:
            return refused
        assignment = (
            sorted((tp.topic, tp.partition) for tp in app.consumer.assignment())
            if app.consumer
            else []
        )
        events_topic = catalog.name("events")
        return self.json(
            {
                "worker": str(app.conf.canonical_url),
                "rebalancing": bool(getattr(app, "rebalancing", False)),
                "recovering": bool(getattr(app.tables.recovery, "in_recovery", False)),
                "event_partitions": [p for t, p in assignment if t == events_topic],
                "assignment": [f"{t}:{p}" for t, p in assignment],
            }
        )


# The pages' APIs register their routes on import (after this module's helpers exist).
from app.web import alerts_page as _alerts_page  # noqa: E402, F401
from app.web import pages as _pages  # noqa: E402, F401
