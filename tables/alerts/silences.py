"""Alertmanager-style silences and inhibition rules, evaluated in event time.

Silences (Alertmanager `silence.go`, REFERENCE.md): matchers on labels (`=`, `!=`, `=~`, `!~`;
a regex must match the whole value; a missing label counts as the empty string), `startsAt` /
`endsAt`, `createdBy`, `comment`. State at time t: `pending` before `startsAt`, `active` while
`startsAt <= t < endsAt`, `expired` from `endsAt`. Validation follows Alertmanager: at least one
matcher, valid label names and regular expressions, at least one matcher that does not match
the empty string (a silence must not mute everything), `endsAt` not before `startsAt`, and a
non-empty `createdBy` and `comment`.

Inhibition (Alertmanager `inhibit.go`): a target alert (one matching `target_matchers`) is muted
while a firing source alert (matching `source_matchers`) has the same values for every `equal`
label, a missing label counting as empty. When an alert matches both sides of a rule, only
sources that do not also match the target side can mute it, so an alert never mutes itself.

Both are global: a silence or an inhibiting alert on one partition must mute alerts on every
other. Workers therefore read them from small global tables:
- silences: `Mapping[silence id, parse_silence(...) result]`;
- inhibitors: `Mapping[fingerprint, inhibitor record]` of currently firing alerts that match
  some rule's source side. The dedup stage emits `Output("inhibitors", fingerprint, record)`
  whenever such an alert starts firing (`status: "firing"`) or resolves (`status: "resolved"`);
  the consumer of that topic applies it with `apply_inhibitor`, which keeps firing ones and
  deletes resolved ones.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any

import orjson

from app.model.events import event_id, format_time, parse_time

OPERATORS: tuple[str, ...] = ("=", "!=", "=~", "!~")
LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_MATCHER_TEXT = re.compile(r"^\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*(.*?)\s*$", re.DOTALL)

SILENCE_STATES: tuple[str, ...] = ("pending", "active", "expired")


@dataclass(frozen=True, slots=True)
class Matcher:
    """One label matcher, e.g. `severity=~"high|critical"`."""

    name: str
    op: str
    value: str

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether `labels` satisfy the matcher (a missing label is the empty string)."""
        actual = labels.get(self.name, "")
        if self.op == "=":
            return actual == self.value
        if self.op == "!=":
            return actual != self.value
        found = _regex(self.value).fullmatch(actual) is not None
        return found if self.op == "=~" else not found

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "op": self.op, "value": self.value}

    def __str__(self) -> str:
        return f"{self.name}{self.op}{orjson.dumps(self.value).decode()}"


@functools.lru_cache(maxsize=4096)
def _regex(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


@functools.lru_cache(maxsize=4096)
def _cached_matcher(name: str, op: str, value: str) -> Matcher:
    return Matcher(name, op, value)


def parse_matcher(spec: Any, where: str = "matcher") -> Matcher:
    """A Matcher from `'name="value"'`, `{"name", "op", "value"}` or Alertmanager API v2's
    `{"name", "value", "isRegex", "isEqual"}`; ValueError naming `where` otherwise."""
    if isinstance(spec, Matcher):
        return spec
    if isinstance(spec, str):
        found = _MATCHER_TEXT.match(spec)
        if found is None:
            raise ValueError(f'{where}: cannot parse matcher {spec!r} (expected name="value")')
        name, op, value = found.groups()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            try:
                value = orjson.loads(value)
            except orjson.JSONDecodeError:
                raise ValueError(f"{where}: badly quoted value in {spec!r}") from None
    elif isinstance(spec, dict):
        name, value = spec.get("name"), spec.get("value")
        if "op" in spec:
            op = spec["op"]
        else:
            is_regex, is_equal = spec.get("isRegex", False), spec.get("isEqual", True)
            if not isinstance(is_regex, bool) or not isinstance(is_equal, bool):
                raise ValueError(f"{where}: isRegex and isEqual must be booleans")
            op = {(False, True): "=", (False, False): "!=", (True, True): "=~"}.get(
                (is_regex, is_equal), "!~"
            )
    else:
        raise ValueError(f"{where}: a matcher must be a string or an object, got {spec!r}")
    if not isinstance(name, str) or not LABEL_NAME.match(name):
        raise ValueError(f"{where}: invalid label name {name!r}")
    if op not in OPERATORS:
        raise ValueError(f"{where}: unknown operator {op!r} (use one of {', '.join(OPERATORS)})")
    if not isinstance(value, str):
        raise ValueError(f"{where}: the value of {name!r} must be a string")
    if op in ("=~", "!~"):
        try:
            _regex(value)
        except re.error as exc:
            raise ValueError(f"{where}: invalid regular expression {value!r}: {exc}") from None
    return _cached_matcher(name, op, value)


def matchers_from(specs: Iterable[Any]) -> tuple[Matcher, ...]:
    """Matchers from stored dicts or strings (validated)."""
    return tuple(parse_matcher(spec, f"matchers[{i}]") for i, spec in enumerate(specs))


def matches_all(matchers: Iterable[Matcher], labels: Mapping[str, str]) -> bool:
    """True when every matcher matches (an empty list matches everything)."""
    return all(m.matches(labels) for m in matchers)


# ---- silences -----------------------------------------------------------------------------


def parse_silence(data: dict[str, Any]) -> dict[str, Any]:
    """Validate an Alertmanager-style silence and return its stored form.

    Input: `{matchers, startsAt, endsAt, createdBy, comment, id?}` (matchers as strings or
    objects, see `parse_matcher`). Output adds `starts_ms` / `ends_ms` and normalises matchers
    to `{name, op, value}`; `id` defaults to a deterministic hash of the content. Raises
    ValueError with a message naming the offending field.
    """
    if not isinstance(data, dict):
        raise ValueError("silence: must be a JSON object")
    specs = data.get("matchers")
    if not isinstance(specs, list) or not specs:
        raise ValueError("silence: 'matchers' must be a non-empty list")
    matchers = tuple(parse_matcher(spec, f"silence: matchers[{i}]") for i, spec in enumerate(specs))
    if all(m.matches({}) for m in matchers):
        raise ValueError(
            "silence: at least one matcher must not match the empty string "
            "(this silence would mute every alert)"
        )
    times: dict[str, int] = {}
    for field_name in ("startsAt", "endsAt"):
        value = data.get(field_name)
        if value is None:
            raise ValueError(f"silence: '{field_name}' is required")
        try:
            times[field_name] = parse_time(value)
        except ValueError:
            raise ValueError(f"silence: '{field_name}' is not a timestamp: {value!r}") from None
    if times["endsAt"] < times["startsAt"]:
        raise ValueError("silence: 'endsAt' must not be before 'startsAt'")
    for field_name in ("createdBy", "comment"):
        value = data.get(field_name)
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"silence: '{field_name}' must be a non-empty string")
    content = {
        "matchers": [m.to_dict() for m in matchers],
        "starts_ms": times["startsAt"],
        "ends_ms": times["endsAt"],
        "createdBy": data["createdBy"],
        "comment": data["comment"],
    }
    silence_id = data.get("id")
    if silence_id is not None and (not isinstance(silence_id, str) or not silence_id):
        raise ValueError("silence: 'id' must be a non-empty string when given")
    return {
        "id": silence_id or event_id("silence", content),
        **content,
        "startsAt": format_time(times["startsAt"]),
        "endsAt": format_time(times["endsAt"]),
    }


#: Bounds on a silence created through the API or the CLI (`check_silence_bounds`).
MAX_MATCHERS = 32
MAX_MATCHER_CHARS = 1024
MAX_COMMENT_BYTES = 4096
MAX_NAME_CHARS = 128


def check_silence_bounds(silence: Mapping[str, Any], now_ms: int, max_ms: int) -> None:
    """ValueError with the reason when a parsed silence (`parse_silence`) exceeds the bounds:
    at most MAX_MATCHERS matchers of at most MAX_MATCHER_CHARS characters each, a comment of at
    most MAX_COMMENT_BYTES bytes (UTF-8), `createdBy` and `id` of at most MAX_NAME_CHARS
    characters, and an end at most `max_ms` after `now_ms` (`VIGIL_SILENCE_MAX_HOURS`)."""
    matchers = silence["matchers"]
    if len(matchers) > MAX_MATCHERS:
        raise ValueError(f"silence: at most {MAX_MATCHERS} matchers, got {len(matchers)}")
    for i, matcher in enumerate(matchers):
        if len(matcher["value"]) > MAX_MATCHER_CHARS:
            raise ValueError(
                f"silence: matchers[{i}]: the value is longer than {MAX_MATCHER_CHARS} characters"
            )
    if len(silence["comment"].encode("utf-8", "surrogatepass")) > MAX_COMMENT_BYTES:
        raise ValueError(f"silence: 'comment' is longer than {MAX_COMMENT_BYTES} bytes")
    for field_name in ("createdBy", "id"):
        if len(silence[field_name]) > MAX_NAME_CHARS:
            raise ValueError(f"silence: '{field_name}' is longer than {MAX_NAME_CHARS} characters")
    if silence["ends_ms"] > now_ms + max_ms:
        raise ValueError(
            f"silence: 'endsAt' is more than {max_ms / 3_600_000:g} hours from now "
            "(VIGIL_SILENCE_MAX_HOURS)"
        )


def silence_state(silence: Mapping[str, Any], now_ms: int) -> str:
    """`pending` before startsAt, `active` while startsAt <= now < endsAt, else `expired`."""
    if now_ms < silence["starts_ms"]:
        return "pending"
    return "active" if now_ms < silence["ends_ms"] else "expired"


def silence_matches(silence: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """Whether the silence's matchers select `labels` (whatever its state)."""
    return matches_all(matchers_from(silence["matchers"]), labels)


def silenced_by(
    labels: Mapping[str, str], silences: Mapping[str, Mapping[str, Any]], now_ms: int
) -> list[str]:
    """Ids of the silences active at `now_ms` that match `labels`, sorted."""
    return sorted(
        str(silence.get("id", key))
        for key, silence in silences.items()
        if silence_state(silence, now_ms) == "active" and silence_matches(silence, labels)
    )


def silence_changes(
    labels: Mapping[str, str], silences: Mapping[str, Mapping[str, Any]], after_ms: int
) -> list[int]:
    """Times after `after_ms` at which a silence matching `labels` starts or ends."""
    times: set[int] = set()
    for silence in silences.values():
        if not silence_matches(silence, labels):
            continue
        for boundary in (silence["starts_ms"], silence["ends_ms"]):
            if boundary > after_ms:
                times.add(boundary)
    return sorted(times)


# ---- inhibition ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class InhibitRule:
    """Mute alerts matching `target_matchers` while a source alert with equal labels fires."""

    source_matchers: tuple[Matcher, ...]
    target_matchers: tuple[Matcher, ...]
    equal: tuple[str, ...] = ()

    def source_matches(self, labels: Mapping[str, str]) -> bool:
        return matches_all(self.source_matchers, labels)

    def target_matches(self, labels: Mapping[str, str]) -> bool:
        return matches_all(self.target_matchers, labels)


def parse_inhibit_rule(data: Mapping[str, Any]) -> InhibitRule:
    """An InhibitRule from Alertmanager config: `source_matchers`, `target_matchers`, `equal`
    (also the deprecated `source_match` / `source_match_re` / `target_match[_re]` maps)."""

    def side(prefix: str) -> tuple[Matcher, ...]:
        matchers = [
            parse_matcher(spec, f"{prefix}_matchers[{i}]")
            for i, spec in enumerate(data.get(f"{prefix}_matchers") or [])
        ]
        for op, key in (("=", f"{prefix}_match"), ("=~", f"{prefix}_match_re")):
            for name, value in sorted((data.get(key) or {}).items()):
                matchers.append(parse_matcher({"name": name, "op": op, "value": value}, key))
        return tuple(matchers)

    source, target = side("source"), side("target")
    if not source or not target:
        raise ValueError("inhibit rule: both source and target matchers are required")
    equal = data.get("equal") or []
    if not isinstance(equal, list) or not all(
        isinstance(n, str) and LABEL_NAME.match(n) for n in equal
    ):
        raise ValueError(f"inhibit rule: 'equal' must be a list of label names, got {equal!r}")
    return InhibitRule(source, target, tuple(equal))


def is_inhibition_source(labels: Mapping[str, str], rules: Iterable[InhibitRule]) -> bool:
    """Whether an alert with `labels` can inhibit others (matches some rule's source side)."""
    return any(rule.source_matches(labels) for rule in rules)


def inhibited_by(
    labels: Mapping[str, str],
    rules: Iterable[InhibitRule],
    inhibitors: Mapping[str, Mapping[str, Any]],
    now_ms: int,
) -> list[str]:
    """Fingerprints of the firing source alerts that mute `labels` at `now_ms`, sorted."""
    found: set[str] = set()
    for rule in rules:
        if not rule.target_matches(labels):
            continue
        two_sided = rule.source_matches(labels)
        for fingerprint, source in inhibitors.items():
            if source.get("status", "firing") != "firing":
                continue
            ends = source.get("ends_ms")
            if isinstance(ends, int) and ends <= now_ms:
                continue
            starts = source.get("starts_ms")
            if isinstance(starts, int) and starts > now_ms:
                continue
            source_labels = source.get("labels") or {}
            if not rule.source_matches(source_labels):
                continue
            if any(source_labels.get(n, "") != labels.get(n, "") for n in rule.equal):
                continue
            if two_sided and rule.target_matches(source_labels):
                continue
            found.add(str(source.get("fingerprint", fingerprint)))
    return sorted(found)


def apply_inhibitor(
    table: MutableMapping[str, Any], key: str, value: Mapping[str, Any] | None
) -> None:
    """Apply one `inhibitors` record to the global table: keep firing, delete resolved."""
    if value is None or value.get("status") != "firing":
        if key in table:
            del table[key]
    else:
        table[key] = dict(value)
