"""Mask secrets and personal data in everything Vigil emits.

Applied to every canonical event before it leaves the adapter layer, so nothing downstream
(topics, tables, logs, the web view) ever holds the clear value. Masks keep a short, non-
reversible hint of what was there (`[email]`, `AKIA****[aws-key]`) so analysts can still tell
alerts apart.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any

import orjson

#: The domain's first label must hold a letter and its TLD be alphabetic, so package ids such as
#: `musl@1.1.20-r4` or `pkg:npm/lodash@4.17.4` are not mistaken for e-mail addresses.
_EMAIL = re.compile(
    r"(?<![\w.+-])[\w.+-]{1,64}@(?=[A-Za-z0-9-]*[A-Za-z])(?:[A-Za-z0-9-]{1,63}\.)+[A-Za-z]{2,24}\b"
)
_AWS_ACCESS_KEY = re.compile(r"\b(AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[A-Z0-9]{16}\b")
_AWS_SECRET_ASSIGN = re.compile(
    r"(?i)(aws_secret_access_key|secretaccesskey|aws_secret|secret_key)"
    r"(\s*[:=]\s*|\"\s*:\s*\"|\s+)([A-Za-z0-9/+=]{40})\b"
)
_BEARER = re.compile(r"(?i)\b(bearer|token)\s+([A-Za-z0-9\-._~+/]{8,}=*)")
_AUTH_BASIC = re.compile(r"(?i)\b(basic)\s+([A-Za-z0-9+/]{8,}=*)")
_PRIVATE_KEY = re.compile(
    r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(?:-----END [A-Z ]*PRIVATE KEY-----|$)", re.S
)
#: `--password=x`, `--token x`, `-password x` style flags and `password=x` / `token: x`
#: assignments. A bare `-p` is not a secret flag (ssh, nc, docker use it for a port).
_SECRET_FLAG = re.compile(
    r"(?i)(--?(?:password|passwd|pass|pwd|token|secret|api[-_]?key|access[-_]?key|auth)"
    r"(?:[=\s]+))(\"[^\"]*\"|'[^']*'|\S+)"
)
_SECRET_ASSIGN = re.compile(
    r"(?i)\b((?:[A-Za-z_]*_)?(?:password|passwd|pwd|secret|token|api[-_]?key|access[-_]?key)"
    r"\s*[=:]\s*)(\"[^\"]*\"|'[^']*'|[^\s&,;\"']+)"
)
#: MySQL/MariaDB clients read `-pSECRET` (attached) as the password; `-p secret` (apart) is a
#: prompt for the password followed by a database name, so only the attached form is masked.
_MYSQL_PASSWORD = re.compile(
    r"(\b(?:mysql|mysqldump|mysqladmin|mysqlimport|mysqlshow|mariadb|mariadb-dump)\b[^\n]{0,500}?"
    r"\s-p)(?=[^\s-])(\"[^\"]*\"|'[^']*'|\S+)"
)
_URL_CREDENTIALS = re.compile(r"(?i)\b([a-z][a-z0-9+.-]{0,31}://)([^/\s:@]+):([^/\s@]+)@")
_GITHUB_TOKEN = re.compile(r"\b(gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,})\b")
_SLACK_TOKEN = re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}\b")
_JWT = re.compile(r"(?<![A-Za-z0-9_-])eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\b")
_IPV4 = re.compile(r"\b(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)\b")

#: Keys whose whole value is a secret, whatever it looks like.
SECRET_KEYS = re.compile(
    r"(?i)^(password|passwd|pwd|secret|client_secret|token|access_token|refresh_token|"
    r"api_?key|private_?key|secret_?access_?key|authorization|cookie|set-cookie|"
    r"x-api-key|session_?token|credentials?)$"
)

MASK = "****"

#: Substrings that every pattern above (but the IPv4 one) needs in order to match, lower-cased
#: (the patterns ignore case) and exact (those that do not), plus a hint of an e-mail address.
#: A string without any of them is returned as it is, without running the patterns: most
#: strings in telemetry are identifiers, paths and numbers. Plain substring tests are several
#: times faster than one alternation regex. tests/unit/test_masking.py checks the shortcut
#: against the full pass over every fixture and generated record.
_TRIGGERS_ANY_CASE = (
    "-----begin", "://", "secret", "passw", "-pass", "pwd", "token", "bearer", "basic",
    "apikey", "api-key", "api_key", "accesskey", "access-key", "access_key", "-auth",
    "mysql", "mariadb",
)  # fmt: skip
_TRIGGERS_EXACT = (
    "AKIA", "ASIA", "AGPA", "AIDA", "AROA", "ANPA", "ANVA", "AIPA",
    "ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_", "xox", "eyJ",
)  # fmt: skip
_EMAIL_HINT = re.compile(r"@[A-Za-z0-9-]+\.")
#: What `SECRET_KEYS` needs besides the triggers, for a whole record serialized as JSON (no
#: trigger holds a character JSON escapes, so one inside a string is found in the JSON too).
_KEY_TRIGGERS = ("privatekey", "private_key", "authorization", "cookie", "credential")


@dataclass(frozen=True)
class _Triggers:
    """Trigger substrings for one kind of text (str, or bytes of serialized JSON)."""

    any_case: tuple[Any, ...]
    exact: tuple[Any, ...]
    email_hint: re.Pattern[Any]

    def found_in(self, text: Any) -> bool:
        """False only when no masking pattern can match `text`."""
        if not text.isascii():  # Unicode case folding (`ſ` matches `s`): no shortcut
            return True
        lowered = text.lower()
        return (
            any(t in lowered for t in self.any_case)
            or any(t in text for t in self.exact)
            or self.email_hint.search(text) is not None
        )


_IN_TEXT = _Triggers(_TRIGGERS_ANY_CASE, _TRIGGERS_EXACT, _EMAIL_HINT)
#: The same over a whole value serialized as JSON, secret-named keys included.
_IN_JSON = _Triggers(
    tuple(t.encode() for t in (*_TRIGGERS_ANY_CASE, *_KEY_TRIGGERS)),
    tuple(t.encode() for t in _TRIGGERS_EXACT),
    re.compile(_EMAIL_HINT.pattern.encode()),
)


@functools.lru_cache(maxsize=4096)
def _is_secret_key(key: str) -> bool:
    return SECRET_KEYS.match(key) is not None


@dataclass(frozen=True, slots=True)
class MaskingPolicy:
    """What to mask. `enabled`: master switch; `mask_ips`: also mask IPv4 addresses."""

    enabled: bool = True
    mask_ips: bool = False


def mask_text(text: str, policy: MaskingPolicy) -> str:
    """Mask every secret and piece of personal data found in one string."""
    if not policy.enabled or not text:
        return text
    if not policy.mask_ips and not _IN_TEXT.found_in(text):
        return text
    return _apply_patterns(text, policy)


def _apply_patterns(text: str, policy: MaskingPolicy) -> str:
    """Every masking pattern over `text`, in order (no shortcut)."""
    out = _PRIVATE_KEY.sub("[private-key]", text)
    out = _URL_CREDENTIALS.sub(lambda m: f"{m.group(1)}{MASK}:{MASK}@", out)
    out = _AWS_SECRET_ASSIGN.sub(lambda m: f"{m.group(1)}{m.group(2)}{MASK}[aws-secret]", out)
    out = _AWS_ACCESS_KEY.sub(lambda m: f"{m.group(1)}{MASK}[aws-key]", out)
    out = _GITHUB_TOKEN.sub(f"{MASK}[github-token]", out)
    out = _SLACK_TOKEN.sub(f"{MASK}[slack-token]", out)
    out = _JWT.sub(f"{MASK}[jwt]", out)
    out = _BEARER.sub(lambda m: f"{m.group(1)} {MASK}", out)
    out = _AUTH_BASIC.sub(lambda m: f"{m.group(1)} {MASK}", out)
    out = _SECRET_FLAG.sub(lambda m: f"{m.group(1)}{MASK}", out)
    out = _MYSQL_PASSWORD.sub(lambda m: f"{m.group(1)}{MASK}", out)
    out = _SECRET_ASSIGN.sub(lambda m: f"{m.group(1)}{MASK}", out)
    out = _EMAIL.sub("[email]", out)
    if policy.mask_ips:
        out = _IPV4.sub("[ip]", out)
    return out


def mask_value(value: Any, policy: MaskingPolicy, key: str | None = None) -> Any:
    """Mask strings anywhere inside a JSON-like value; values under secret-named keys go whole.

    A list under a secret-named key is masked item by item (`"password": ["x"]`); an object
    under one is read key by key like any other (CloudTrail `credentials` keeps its hints).
    A value with no trigger substring anywhere (keys included) is returned as it is.
    """
    if not policy.enabled:
        return value
    if isinstance(value, dict | list) and not policy.mask_ips:
        try:
            blob = orjson.dumps(value)
        except TypeError:  # not JSON-serializable as it is: walk it
            blob = None
        clean = blob is not None and not _IN_JSON.found_in(blob)
        if clean and (key is None or not _is_secret_key(key)):
            return value
    return _mask(value, policy, key)


def _mask(value: Any, policy: MaskingPolicy, key: str | None) -> Any:
    if key is not None and _is_secret_key(key):
        if isinstance(value, list):
            return [_mask(v, policy, None if isinstance(v, dict) else key) for v in value]
        if isinstance(value, str | int | float):
            return MASK if value != "" else value
    if isinstance(value, str):
        return mask_text(value, policy)
    if isinstance(value, dict):
        return {k: _mask(v, policy, k if isinstance(k, str) else None) for k, v in value.items()}
    if isinstance(value, list):
        return [_mask(v, policy, None) for v in value]
    return value
