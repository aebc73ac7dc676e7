"""Mask secrets and personal data in everything Vigil emits.

Applied to every canonical event before it leaves the adapter layer, and to the copy of the
original bytes a dead letter keeps (`mask_raw`), so nothing downstream (topics, tables, logs,
the web view) ever holds the clear value. Masks keep a short, non-reversible hint of what was
there (`[email]`, `AKIA****[aws-key]`) so analysts can still tell alerts apart. Masked:

- token formats from a maintained rule set, app/rules/secrets.toml (gitleaks' default rules
  for the formats telemetry carries, in Python `re`), loaded once at import;
- secrets found by context: `password=x` / `"db_password": "x"` / `secretKey: x`, `--token x`,
  `docker login -p x`, `mysql -px`, `user:pass@` in URLs, `Bearer x`, named and bare AWS secret
  access keys (40 characters that look random);
- personal data: e-mail addresses, card numbers (Luhn-checked, known issuer prefixes), US SSNs,
  and IPv4 addresses when asked;
- by key name: the whole value under a secret-named key (`*password*`, `*secret*`, `*token*`,
  `*apikey*`, ... but not `secret_id` or `token_type`), and under other `*key*` names a value
  that looks like a random token; dict keys are masked like values; a string holding a JSON
  object or array is parsed, masked as JSON and serialized again.

The package: `rules` loads the rule file into steps, `patterns` holds the context patterns and
their checks and `STEPS` (every pass, in order), `field_names` decides which keys hold secrets,
`triggers` is the substring prefilter that lets clean strings and records skip the passes, and
`steps` says what a step is. The policy and the `mask_*` functions are here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from app.masking.field_names import _key_kind, _looks_random
from app.masking.patterns import _IPV4, STEPS
from app.masking.rules import RULES_PATH, load_rules
from app.masking.steps import MASK
from app.masking.triggers import _ALL_STEPS, _LATER_STEPS, _scan_json, _triggers_of

__all__ = [
    "MASK",
    "RULES_PATH",
    "STEPS",
    "MaskingPolicy",
    "load_rules",
    "mask_raw",
    "mask_text",
    "mask_value",
]


@dataclass(frozen=True, slots=True)
class MaskingPolicy:
    """What to mask. `enabled`: master switch; `mask_ips`: also mask IPv4 addresses."""

    enabled: bool = True
    mask_ips: bool = False


def mask_text(text: str, policy: MaskingPolicy) -> str:
    """Mask every secret and piece of personal data found in one string."""
    if not policy.enabled:
        return text
    return _mask_text(text, policy, _ALL_STEPS)


def _mask_text(text: str, policy: MaskingPolicy, steps: frozenset[int] | None) -> str:
    """Mask one string with `steps` (indexes into STEPS), each run only when the string holds
    one of its triggers; `None`: every step, whatever the string holds (the full pass)."""
    if not text:
        return text
    if text[0] in "{[" or text[0].isspace():
        embedded = _embedded_json(text)
        if embedded is not None:
            masked = _mask(embedded, policy, None, steps)
            return text if masked == embedded else orjson.dumps(masked).decode()
    out = _apply_steps(text, steps)
    return _IPV4.sub("[ip]", out) if policy.mask_ips else out


def _apply_steps(text: str, steps: frozenset[int] | None) -> str:
    """STEPS over `text`, in order; `None` runs them all (the full pass, no shortcut). Once a
    step has changed the text, every later step is considered again against the new text (a
    mask's hint could in principle trigger another)."""
    if steps is None or not text.isascii():  # Unicode case folding: no shortcut
        for step in STEPS:
            text = step.apply(text)
        return text
    if not steps or (steps, text) in _CLEAN:
        return text
    found = _triggers_of(steps).hits(text, text.lower())
    for index in sorted(found) if found else ():
        masked = STEPS[index].apply(text)
        if masked != text:
            return _apply_steps(masked, _LATER_STEPS[index])
    if len(text) <= _CLEAN_LONGEST:
        if len(_CLEAN) >= _CLEAN_SIZE:
            del _CLEAN[next(iter(_CLEAN))]  # the oldest
        _CLEAN[steps, text] = None
    return text


#: Strings (up to `_CLEAN_LONGEST` characters) that the given steps leave as they are, oldest
#: first: telemetry repeats its keys, names and paths. Only strings with nothing to mask are
#: kept, so the cache never holds a clear secret.
_CLEAN: dict[tuple[frozenset[int], str], None] = {}
_CLEAN_SIZE = 4096
_CLEAN_LONGEST = 256


def _embedded_json(text: str) -> dict[str, Any] | list[Any] | None:
    """The JSON object or array a whole string holds, if it holds one."""
    if not text.lstrip().startswith(("{", "[")):
        return None
    try:
        doc = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    return doc if isinstance(doc, dict | list) else None


def mask_value(value: Any, policy: MaskingPolicy, key: str | None = None) -> Any:
    """Mask strings anywhere inside a JSON-like value, keys included; see the module docstring
    for what secret-named keys do to their values.

    A list under a secret-named key is masked item by item (`"password": ["x"]`); an object
    under one is read key by key like any other (CloudTrail `credentials` keeps its hints).
    The value is serialized once to find which steps its strings can trigger at all: one with
    no trigger anywhere (and no secret-like key) is returned as it is, without a walk.
    """
    if not policy.enabled:
        return value
    steps = _ALL_STEPS
    if isinstance(value, dict | list) and not policy.mask_ips:
        try:
            blob = orjson.dumps(value)
        except TypeError:  # not JSON-serializable as it is: walk it
            blob = None
        if blob is not None:
            steps, keys = _scan_json(blob)
            if not steps and not keys and (key is None or _key_kind(key) is None):
                return value
    return _mask(value, policy, key, steps)


def _mask(value: Any, policy: MaskingPolicy, key: str | None, steps: frozenset[int] | None) -> Any:
    kind = _key_kind(key) if key is not None else None
    if kind == "exact" or kind == "whole":
        if isinstance(value, list):
            return [_mask(v, policy, None if isinstance(v, dict) else key, steps) for v in value]
        if isinstance(value, str):
            return MASK if value != "" else value
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if number and (kind == "exact" or not key.endswith(("s", "S"))):  # type: ignore[union-attr]
            return MASK
    elif kind == "key" and isinstance(value, str) and _looks_random(value):
        return MASK
    if isinstance(value, str):
        return _mask_text(value, policy, steps)
    if isinstance(value, dict):
        return {
            (_mask_text(k, policy, steps) if isinstance(k, str) else k): _mask(
                v, policy, k if isinstance(k, str) else None, steps
            )
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_mask(v, policy, None, steps) for v in value]
    return value


def mask_raw(raw: bytes, policy: MaskingPolicy) -> bytes:
    """Mask a raw record's bytes (the copy a dead letter keeps) with the same rules.

    JSON is parsed, masked and serialized again; anything else (broken JSON, text, bytes that
    are not UTF-8) is masked as text, with undecodable bytes kept as they are. Bytes with
    nothing to mask are returned unchanged, so they replay exactly.
    """
    if not policy.enabled or not raw:
        return raw
    try:
        doc = orjson.loads(raw)
        if isinstance(doc, dict | list | str):
            masked = mask_value(doc, policy) if not isinstance(doc, str) else mask_text(doc, policy)
            return raw if masked == doc else orjson.dumps(masked)
        return raw
    except (orjson.JSONDecodeError, RecursionError):
        text = raw.decode("utf-8", "surrogateescape")
        masked_text = mask_text(text, policy)
        return raw if masked_text == text else masked_text.encode("utf-8", "surrogateescape")
