"""HTTP delivery of sink payloads: timeouts, classified failures, deterministic backoff.

Retryable: connection errors, timeouts, HTTP 5xx, 429 and 408 (the server or the path to it
is in trouble; the same request can succeed later). Permanent: every other non-2xx answer
(3xx included: redirects are not followed, so a token never leaks to another host) and
requests that cannot be built (bad URL, unserializable payload). A permanent failure is
dead-lettered at once; retrying would fail the same way.

Backoff is exponential with "equal jitter" (half fixed, half spread), and the spread is drawn
from a hash of the record, sink and attempt rather than a random generator: a replay or a test
sees the same schedule, and records failing together still spread their retries. A
`Retry-After` header (seconds) raises the delay, within the cap.

Nothing here logs or returns a sink URL: errors carry the URL's host only (`safe_url`) and
their text goes through `redact` (sink URLs removed, secrets masked).
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import orjson

from app.masking import MaskingPolicy, mask_text

#: Deliveries and failures per (sink name, outcome), for logs and tests until Prometheus
#: metrics exist. Outcomes: `delivered`, `attempt_failed`, `deferred` (to the retry topic),
#: `retried`, `dead_lettered`, `superseded` (a newer record for the alert was delivered first).
COUNTS: Counter[tuple[str, str]] = Counter()

#: HTTP statuses worth retrying besides 5xx.
RETRYABLE_STATUSES = frozenset({408, 429})
#: Most response-body bytes kept in an error message.
ERROR_BODY_CHARS = 200
_MASKING = MaskingPolicy(enabled=True)


def count(sink: str, outcome: str, n: int = 1) -> None:
    """Add `n` to the (sink, outcome) counter."""
    if n:
        COUNTS[(sink, outcome)] += n


def safe_url(url: str) -> str:
    """`scheme://host[:port]` of a URL: what may be logged (no credentials, path or query)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or "?"
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<invalid url>"
    return f"{parts.scheme or '?'}://{host}{port}"


def _token_like(part: str) -> bool:
    """A URL path segment or query value that may be a credential: long, with digits or
    mixed case (`T0AAA.../s3cr3t...`), unlike `services` or `api`."""
    return len(part) >= 8 and (
        any(c.isdigit() for c in part) or (part.lower() != part and part.upper() != part)
    )


def redact(text: str, urls: Iterable[str] = ()) -> str:
    """`text` with every given URL replaced by its safe form, every token-like piece of those
    URLs (path segments, query values, user info) removed wherever it appears, and secrets
    masked."""
    for url in sorted(urls, key=len, reverse=True):
        if not url:
            continue
        text = text.replace(url, safe_url(url) + "/…")
        try:
            parts = urlsplit(url)
        except ValueError:
            continue
        pieces = [*parts.path.split("/"), *re.split(r"[&=]", parts.query)]
        pieces += [parts.username or "", parts.password or ""]
        for piece in sorted({p for p in pieces if _token_like(p)}, key=len, reverse=True):
            text = text.replace(piece, "…")
    return mask_text(text, _MASKING)


def is_retryable_status(status: int) -> bool:
    """Whether an HTTP status may succeed on a later attempt (5xx, 429, 408)."""
    return status >= 500 or status in RETRYABLE_STATUSES


class DeliveryError(Exception):
    """One failed request: retryable or permanent, the HTTP status if any, a safe message."""

    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        status: int | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.status = status
        self.retry_after_s = retry_after_s

    def __repr__(self) -> str:
        kind = "retryable" if self.retryable else "permanent"
        return f"DeliveryError({kind}, status={self.status}, {self.message!r})"


def classify_exception(exc: BaseException) -> bool:
    """Whether a client-side exception is worth retrying (network trouble, timeouts)."""
    if isinstance(exc, aiohttp.InvalidURL):
        return False
    return isinstance(
        exc,
        aiohttp.ClientConnectionError | aiohttp.ClientPayloadError | TimeoutError | OSError,
    )


def _retry_after(headers: Any) -> float | None:
    raw = headers.get("Retry-After") if headers is not None else None
    try:
        return max(0.0, float(raw)) if raw is not None else None
    except ValueError:  # an HTTP date: ignored, the backoff applies
        return None


async def post_json(
    session: aiohttp.ClientSession,
    url: str,
    payload: Any,
    timeout_s: float,
    headers: dict[str, str] | None = None,
) -> int:
    """POST `payload` as JSON; return the 2xx status or raise DeliveryError (URL-free)."""
    where = safe_url(url)
    try:
        body = orjson.dumps(payload)
    except (TypeError, orjson.JSONEncodeError) as exc:
        raise DeliveryError(f"payload not serializable: {exc}", retryable=False) from None
    try:
        async with session.post(
            url,
            data=body,
            headers={"Content-Type": "application/json", **(headers or {})},
            timeout=aiohttp.ClientTimeout(total=timeout_s),
            allow_redirects=False,
        ) as response:
            text = (await response.content.read(ERROR_BODY_CHARS * 4)).decode("utf-8", "replace")
            if 200 <= response.status < 300:
                return response.status
            raise DeliveryError(
                redact(
                    f"{where} answered HTTP {response.status}: {text[:ERROR_BODY_CHARS]}", [url]
                ),
                retryable=is_retryable_status(response.status),
                status=response.status,
                retry_after_s=_retry_after(response.headers),
            )
    except DeliveryError:
        raise
    except TimeoutError:
        raise DeliveryError(f"{where}: no answer within {timeout_s:g}s", retryable=True) from None
    except (aiohttp.ClientError, OSError, ValueError) as exc:
        message = redact(f"{where}: {type(exc).__name__}: {exc}", [url])
        raise DeliveryError(message, retryable=classify_exception(exc)) from None


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff with deterministic equal jitter (see the module docstring)."""

    base_ms: int = 500
    max_ms: int = 300_000

    def delay_ms(self, failures: int, key: str, retry_after_s: float | None = None) -> int:
        """Delay before the next attempt after `failures` failed ones (1, 2, ...), in ms.

        In [d/2, d] with d = min(max_ms, base_ms × 2^(failures-1)); where in that range
        depends only on `key` and `failures`. At least `retry_after_s` when given, capped.
        """
        ceiling = min(self.max_ms, self.base_ms * 2 ** max(0, failures - 1))
        digest = hashlib.blake2b(f"{key}\xff{failures}".encode(), digest_size=8).digest()
        spread = int.from_bytes(digest, "big") / 2**64
        delay = int(ceiling / 2 + spread * ceiling / 2)
        if retry_after_s is not None:
            delay = max(delay, min(self.max_ms, int(retry_after_s * 1000)))
        return delay


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    """How one payload fared: delivered or not, requests made, the last error."""

    ok: bool
    attempts: int
    error: DeliveryError | None = None


async def deliver(
    session: aiohttp.ClientSession,
    url: str,
    payload: Any,
    *,
    attempts: int,
    timeout_s: float,
    backoff: Backoff,
    key: str,
    max_sleep_s: float | None = None,
    sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
) -> DeliveryResult:
    """Up to `attempts` requests, sleeping the backoff between retryable failures.

    Stops at the first permanent failure, and when the next delay would exceed `max_sleep_s`
    (e.g. a long `Retry-After`): the caller then schedules the retry elsewhere.
    """
    error: DeliveryError | None = None
    for attempt in range(1, attempts + 1):
        try:
            await post_json(session, url, payload, timeout_s)
            return DeliveryResult(True, attempt)
        except DeliveryError as exc:
            error = exc
        if not error.retryable or attempt == attempts:
            return DeliveryResult(False, attempt, error)
        delay_s = backoff.delay_ms(attempt, key, error.retry_after_s) / 1000
        if max_sleep_s is not None and delay_s > max_sleep_s:
            return DeliveryResult(False, attempt, error)
        await sleep(delay_s)
    return DeliveryResult(False, attempts, error)
