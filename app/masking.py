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

#: A substring that every pattern above (but the IPv4 one) needs in order to match: a string
#: without any of them is returned as it is, without running the patterns (most strings in
#: telemetry are identifiers, paths and numbers). tests/unit/test_masking.py checks the
#: shortcut against the full pass over every fixture and generated record.
_MAY_HOLD_SECRET = re.compile(
    r"(?i)-----BEGIN|://|secret|passw|-pass|pwd|token|bearer|basic|api[-_]?key|access[-_]?key|"
    r"-auth|mysql|mariadb|@[a-z0-9-]+\.|"
    r"(?-i:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA|gh[pousr]_|github_pat_|xox|eyJ)"
)
#: The same over a whole value serialized as JSON, plus what secret-named keys hold
#: (`SECRET_KEYS`): one search decides that a record needs no masking at all. No trigger holds
#: a character JSON escapes, so a trigger inside a string is found in its serialized form too.
_MAY_HOLD_SECRET_OR_KEY = re.compile(
    _MAY_HOLD_SECRET.pattern.encode() + rb"|private_?key|authorization|cookie|credential"
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
    if not policy.mask_ips and _MAY_HOLD_SECRET.search(text) is None:
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
        clean = blob is not None and _MAY_HOLD_SECRET_OR_KEY.search(blob) is None
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
