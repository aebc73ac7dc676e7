"""HTTP views: the live dashboard page, a JSON API over table state, and health probes."""

from __future__ import annotations

from importlib import resources
from typing import Any

from faust.web import Request, Response, View

from app.faust_app import app
from tables.definitions import entity_stats


def _page(name: str) -> str:
    return resources.files("app.web").joinpath("static", name).read_text()


@app.page("/")
class DashboardView(View):
    """The dashboard page; it polls the JSON API and updates in place."""

    async def get(self, request: Request) -> Response:
        return self.html(_page("dashboard.html"))


@app.page("/api/entities")
class EntitiesView(View):
    """Entity activity held by this worker: `?limit=` (default 100), newest first."""

    async def get(self, request: Request) -> Response:
        try:
            limit = max(1, min(1000, int(request.query.get("limit", "100"))))
        except ValueError:
            return self.json({"error": "limit must be an integer"}, status=400)
        rows: list[dict[str, Any]] = [value for _, value in entity_stats.items() if value]
        rows.sort(key=lambda row: row["last_ts_ms"], reverse=True)
        return self.json({"total": len(rows), "items": rows[:limit]})


@app.page("/health/live")
class LiveView(View):
    """Liveness: the process serves HTTP."""

    async def get(self, request: Request) -> Response:
        return self.json({"status": "ok"})
