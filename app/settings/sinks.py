"""Sink settings: where alerts go and how hard delivery tries (`Settings.sinks`).

Every knob is documented at its field with its environment variable and default. No sink is
configured by default: the sink agents then do not run.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from app.settings.parse import env_float, env_int


def _url(name: str, raw: str) -> str:
    """A sink URL, checked without ever putting the URL (it may carry a token) in the error."""
    url = raw.strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{name} must hold http(s) URLs with a host (value not shown)")
    return url


@dataclass(frozen=True)
class SinkSettings:
    """Where alert notifications are delivered and how. Built by `Settings.from_env()`."""

    #: Alertmanager base URL (`http://am:9093`; records are POSTed to `<url>/api/v2/alerts`,
    #: a URL already ending in `/api/v2/alerts` is used as is). Env `VIGIL_ALERTMANAGER_URL`.
    #: Default unset: no Alertmanager sink.
    alertmanager_url: str | None = None
    #: Slack-compatible incoming webhooks, comma-separated. Env `VIGIL_WEBHOOK_URLS`.
    #: Default none. They often carry a token in the path: Vigil logs only their host.
    webhook_urls: tuple[str, ...] = ()
    #: Timeout of one HTTP request, seconds (connect + response). Env `VIGIL_SINK_TIMEOUT_S`.
    #: Default 5.
    timeout_s: float = 5.0
    #: Attempts per record and sink before it is dead-lettered (`sink_failed`), counting the
    #: in-line ones and those from the retry topic. Env `VIGIL_SINK_MAX_ATTEMPTS`. Default 12.
    max_attempts: int = 12
    #: Attempts made in line by the alerts agent before a record goes to the retry topic.
    #: Env `VIGIL_SINK_INLINE_ATTEMPTS`. Default 3 (at most `max_attempts`).
    inline_attempts: int = 3
    #: Base of the exponential backoff, ms: the delay after failure n is drawn in
    #: [d/2, d], d = min(max, base × 2^(n-1)), deterministically per record, sink and attempt.
    #: Env `VIGIL_SINK_RETRY_BACKOFF_MS`. Default 500.
    retry_backoff_ms: int = 500
    #: Longest backoff, ms. Env `VIGIL_SINK_RETRY_MAX_BACKOFF_MS`. Default 300000 (5 min).
    retry_max_backoff_ms: int = 300_000
    #: Longest the retry agent sleeps for one record; a record not due by then is re-queued.
    #: Env `VIGIL_SINK_RETRY_MAX_WAIT_S`. Default 30.
    retry_max_wait_s: float = 30.0
    #: Records per delivery batch. Env `VIGIL_SINK_BATCH_SIZE`. Default 100.
    batch_size: int = 100
    #: Longest wait to fill a batch, seconds. Env `VIGIL_SINK_BATCH_WITHIN_S`. Default 1.
    batch_within_s: float = 1.0
    #: How long Alertmanager keeps a firing alert without hearing from Vigil again (its
    #: `endsAt` = delivery time + this). Above Vigil's repeat cadence (repeat_interval 4h +
    #: group_interval 5m) so repeats keep it firing. Env `VIGIL_ALERTMANAGER_FIRING_TTL_S`.
    #: Default 18000 (5 h).
    alertmanager_firing_ttl_s: int = 18_000
    #: Vigil's web view as users reach it, for links (`generatorURL`). Env
    #: `VIGIL_WEB_PUBLIC_URL`. Default `http://<WEB_HOST>:<WEB_PORT>` (`http://127.0.0.1:6066`).
    web_public_url: str = "http://127.0.0.1:6066"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> SinkSettings:
        """Read every sink setting from `env`, else its default."""
        d = cls()
        am = (env.get("VIGIL_ALERTMANAGER_URL") or "").strip()
        hooks = tuple(
            _url("VIGIL_WEBHOOK_URLS", u)
            for u in (env.get("VIGIL_WEBHOOK_URLS") or "").split(",")
            if u.strip()
        )
        public = env.get("VIGIL_WEB_PUBLIC_URL") or (
            f"http://{env.get('WEB_HOST') or '127.0.0.1'}:{env.get('WEB_PORT') or 6066}"
        )
        return cls(
            alertmanager_url=_url("VIGIL_ALERTMANAGER_URL", am) if am else None,
            webhook_urls=hooks,
            timeout_s=env_float(env, "VIGIL_SINK_TIMEOUT_S", d.timeout_s),
            max_attempts=env_int(env, "VIGIL_SINK_MAX_ATTEMPTS", d.max_attempts),
            inline_attempts=env_int(env, "VIGIL_SINK_INLINE_ATTEMPTS", d.inline_attempts),
            retry_backoff_ms=env_int(env, "VIGIL_SINK_RETRY_BACKOFF_MS", d.retry_backoff_ms),
            retry_max_backoff_ms=env_int(
                env, "VIGIL_SINK_RETRY_MAX_BACKOFF_MS", d.retry_max_backoff_ms
            ),
            retry_max_wait_s=env_float(env, "VIGIL_SINK_RETRY_MAX_WAIT_S", d.retry_max_wait_s),
            batch_size=env_int(env, "VIGIL_SINK_BATCH_SIZE", d.batch_size),
            batch_within_s=env_float(env, "VIGIL_SINK_BATCH_WITHIN_S", d.batch_within_s),
            alertmanager_firing_ttl_s=env_int(
                env, "VIGIL_ALERTMANAGER_FIRING_TTL_S", d.alertmanager_firing_ttl_s
            ),
            web_public_url=public.rstrip("/"),
        )

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("VIGIL_SINK_MAX_ATTEMPTS must be at least 1")
        if self.inline_attempts < 1:
            raise ValueError("VIGIL_SINK_INLINE_ATTEMPTS must be at least 1")
        if self.timeout_s <= 0 or self.retry_backoff_ms < 0 or self.batch_size < 1:
            raise ValueError(
                "VIGIL_SINK_TIMEOUT_S must be > 0, VIGIL_SINK_RETRY_BACKOFF_MS >= 0 and "
                "VIGIL_SINK_BATCH_SIZE >= 1"
            )
        object.__setattr__(self, "inline_attempts", min(self.inline_attempts, self.max_attempts))

    @property
    def enabled(self) -> bool:
        """Whether any sink is configured."""
        return bool(self.alertmanager_url or self.webhook_urls)
