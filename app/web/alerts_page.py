"""`GET /api/alerts`: alerts grouped by group key, filtered by Alertmanager matchers, paged.

Query: `filter` (`{severity="critical", alertname=~"Vuln.*"}`), `state` (`firing`, the default:
firing whether silenced or not; `active`: firing and not silenced; `silenced`; `resolved`;
`all`), `limit` / `offset` (groups). Each group carries its shared labels, the matchers that
silence it (`silence`), and its alerts, each with the labels and annotations that tell it apart
(`distinct`) and its own matchers. Silencing goes through `POST /api/silences` (admin).
Groups never span workers (a group is one entity's), so each worker groups its own part.
"""

from __future__ import annotations

from typing import Any

from aiohttp.web import Response
from faust.web import Request

from app.faust_app import app
from app.web import snapshots, views
from app.web.alert_groups import (
    STATES,
    group_order,
    page_groups,
    parse_filter,
    select_alerts,
    silence_matchers,
)
from app.web.gather import gathered, json_response, page_params
from app.web.views import AuthedView


def _silences() -> list[dict[str, Any]]:
    return [s for _, s in views.silences.items() if isinstance(s, dict)]


@app.page("/api/alerts")
class AlertGroupsView(AuthedView):
    """Alert groups (read)."""

    async def get(self, request: Request) -> Response:
        if (refused := self.denied(request)) is not None:
            return refused
        try:
            limit, offset = page_params(request, default=25, most=200)
            matchers = parse_filter(request.query.get("filter"))
        except ValueError as exc:
            return json_response({"error": str(exc)}, status=400)
        state = request.query.get("state", "firing")
        if state not in STATES:
            return json_response({"error": f"state must be one of {', '.join(STATES)}"}, 400)

        def compute() -> dict[str, Any]:
            selected = select_alerts(snapshots.alerts(), matchers, state, _silences())
            total, groups = page_groups(selected, offset + limit)
            return {"total": total, "alerts": len(selected), "items": groups}

        def local() -> dict[str, Any]:
            query = "|".join(str(m) for m in matchers)
            return snapshots.shared(f"alerts|{state}|{offset + limit}|{query}", compute)

        def merge(parts: list[dict[str, Any]]) -> dict[str, Any]:
            groups = sorted((g for p in parts for g in p["items"]), key=group_order)
            page = groups[offset : offset + limit]
            for group in page:
                group["silence"] = silence_matchers(group["labels"])
                for alert in group["alerts"]:
                    alert["silence"] = silence_matchers(
                        {"entity": alert["entity"], **alert["labels"]}
                    )
            return {
                "total": sum(p["total"] for p in parts),
                "alerts": sum(p["alerts"] for p in parts),
                "offset": offset,
                "filter": [str(m) for m in matchers],
                "items": page,
            }

        return await gathered(request, local, merge)
