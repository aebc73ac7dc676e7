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

import aiohttp
import orjson
from aiohttp.web import Response
from faust.web import Request

from app.faust_app import app
from app.web import snapshots, views
from app.web.alert_groups import (
    STATES,
    detailed,
    group_order,
    group_summaries,
    parse_filter,
    select_alerts,
    silence_matchers,
)
from app.web.gather import json_response, me, page_params, remote_parts
from app.web.views import MAX_PAGE, AuthedView


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

        query = "|".join(str(m) for m in matchers)

        async def grouped() -> dict[str, Any]:
            selected = select_alerts(await snapshots.alerts(), matchers, state, _silences())
            summaries, members = group_summaries(selected)
            worker = me()
            for summary in summaries:
                summary["worker"] = worker
            return {
                "alerts": len(selected),
                "summaries": summaries,
                "by_key": {s["group"]: s for s in summaries},
                "members": members,
            }

        mine = await snapshots.shared(f"alerts|{state}|{query}", grouped)
        if request.query.get("local") == "1":
            if "groups" in request.query:  # the second step: these groups in full
                try:
                    keys = _group_keys(request.query["groups"])
                except ValueError as exc:
                    return json_response({"error": str(exc)}, status=400)
                return json_response({"items": _in_full(mine, keys)})
            return json_response(_summaries(mine, offset + limit))
        try:
            parts = [_summaries(mine, offset + limit), *await remote_parts(request)]
            page = sorted((g for p in parts for g in p["items"]), key=group_order)
            page = page[offset : offset + limit]
            full = await _page_in_full(request, mine, page)
        except (RuntimeError, aiohttp.ClientError, TimeoutError) as exc:
            return json_response({"error": f"a worker did not answer: {exc}"}, status=502)
        for group in full:
            group["silence"] = silence_matchers(group["labels"])
            for alert in group["alerts"]:
                alert["silence"] = silence_matchers({"entity": alert["entity"], **alert["labels"]})
        return json_response(
            {
                "total": sum(p["total"] for p in parts),
                "alerts": sum(p["alerts"] for p in parts),
                "offset": offset,
                "filter": [str(m) for m in matchers],
                "items": full,
            }
        )


def _summaries(mine: dict[str, Any], count: int) -> dict[str, Any]:
    """This worker's first `count` group summaries (each names this worker)."""
    items = mine["summaries"][:count]
    return {"total": len(mine["summaries"]), "alerts": mine["alerts"], "items": items}


def _in_full(mine: dict[str, Any], keys: list[str]) -> list[dict[str, Any]]:
    by_key = mine["by_key"]
    return [detailed(by_key[k], mine["members"]) for k in keys if k in by_key]


def _group_keys(text: str) -> list[str]:
    """The `groups` parameter: a JSON list of at most MAX_PAGE group keys."""
    try:
        keys = orjson.loads(text)
    except orjson.JSONDecodeError:
        raise ValueError("groups must be a JSON list of group keys") from None
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        raise ValueError("groups must be a JSON list of group keys")
    if len(keys) > MAX_PAGE:
        raise ValueError(f"at most {MAX_PAGE} groups")
    return keys


async def _page_in_full(
    request: Request, mine: dict[str, Any], page: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The page's groups in full, each from the worker that holds it, in page order."""
    keys_of: dict[str, list[str]] = {}
    for summary in page:
        keys_of.setdefault(summary["worker"], []).append(summary["group"])
    full = {g["group"]: g for g in _in_full(mine, keys_of.pop(me(), []))}
    for worker, keys in keys_of.items():
        (answer,) = await remote_parts(request, [worker], {"groups": orjson.dumps(keys).decode()})
        full.update((g["group"], g) for g in answer["items"])
    return [full[s["group"]] for s in page if s["group"] in full]
