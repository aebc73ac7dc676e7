"""Answers gathered from every worker: this one's own part, and the others' `local=1` answers.

A page's API computes its part of the answer from this worker's partitions (`local`), asks
every other worker for theirs with the same path and query plus `local=1`, then merges and
pages the parts. A worker that does not answer makes the request fail (502), as the table
listing does: a page that silently misses a worker's part would mislead.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import orjson
from aiohttp.web import Response
from faust.web import Request

from app.faust_app import app


def me() -> str:
    """This worker's URL."""
    return str(app.conf.canonical_url).rstrip("/")


def other_workers() -> list[str]:
    """The URLs of the other workers that own partitions (empty before an assignment)."""
    try:
        hosts = {str(url).rstrip("/") for url in app.router.external_topics_metadata()}
    except Exception:  # no assignment yet, or no consumer (tests)
        return []
    return sorted(hosts - {me()})


async def remote_parts(
    request: Request, hosts: list[str] | None = None, extra: dict[str, str] | None = None
) -> list[dict[str, Any]]:
    """The `local=1` answers of `hosts` (every other worker) to this request (GET, same
    query plus `extra`)."""
    hosts = other_workers() if hosts is None else hosts
    if not hosts:
        return []
    headers = {"Authorization": request.headers.get("Authorization", "")}
    params = {**request.query, **(extra or {}), "local": "1"}

    async def fetch(host: str) -> dict[str, Any]:
        async with app.http_client.get(
            f"{host}{request.path}", params=params, headers=headers
        ) as response:
            if response.status != 200:
                raise RuntimeError(f"{host} answered {response.status}")
            return orjson.loads(await response.read())

    return list(await asyncio.gather(*(fetch(h) for h in hosts)))


async def gathered(
    request: Request,
    local: Callable[[], dict[str, Any] | Awaitable[dict[str, Any]]],
    merge: Callable[[list[dict[str, Any]]], dict[str, Any]],
) -> Response:
    """`local()` alone when asked with `local=1`; else `merge` of every worker's part."""
    part = local()
    if asyncio.iscoroutine(part):
        part = await part
    if request.query.get("local") == "1":
        return json_response(part)
    try:
        parts = [part, *await remote_parts(request)]
    except (RuntimeError, aiohttp.ClientError, TimeoutError) as exc:
        return json_response({"error": f"a worker did not answer: {exc}"}, status=502)
    return json_response(merge(parts))


def json_response(body: Any, status: int = 200) -> Response:
    """A JSON answer (orjson: numbers and big lists serialize fast)."""
    return Response(
        body=orjson.dumps(body, option=orjson.OPT_NON_STR_KEYS),
        status=status,
        content_type="application/json",
    )


def page_params(request: Request, default: int = 50, most: int = 200) -> tuple[int, int]:
    """`limit` (1..most) and `offset` (>= 0) of a paged request; ValueError when not numbers."""
    limit = max(1, min(most, int(request.query.get("limit", str(default)))))
    offset = max(0, int(request.query.get("offset", "0")))
    return limit, offset
