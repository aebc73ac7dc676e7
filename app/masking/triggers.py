"""The prefilter: the plain substrings (runs, a few shapes) a string, or a value serialized as
JSON, must hold for a step to change it, so clean strings and whole clean records skip the
regex passes. `tests/unit/test_masking*.py` check it against the full pass."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from app.masking.field_names import _KEY_TRIGGERS
from app.masking.patterns import STEPS
from app.masking.steps import _parse_run

#: Every step may run (a string's own triggers still decide).
_ALL_STEPS = frozenset(range(len(STEPS)))
#: The steps after each one.
_LATER_STEPS = tuple(frozenset(range(i + 1, len(STEPS))) for i in range(len(STEPS)))
#: Pseudo step index of the key triggers, in a scan of serialized JSON.
_KEYS = -1


@dataclass(frozen=True, slots=True)
class _Triggers:
    """The triggers of some steps, each with the steps it serves: one comprehension per kind
    finds the steps a text triggers (plain substring tests are several times faster than one
    alternation regex, and a generator per step costs more than the tests). Triggers sharing
    their first two characters are searched as one regex (`gl(?:pat-|rt-)`: `re` factors the
    prefix out and finds it as fast as a substring), serving all their steps."""

    any_case: tuple[tuple[Any, frozenset[int]], ...]
    any_case_shared: tuple[tuple[Callable[[Any], Any], frozenset[int]], ...]
    exact: tuple[tuple[Any, frozenset[int]], ...]
    exact_shared: tuple[tuple[Callable[[Any], Any], frozenset[int]], ...]
    runs: tuple[tuple[bytes, tuple[tuple[bytes, frozenset[int]], ...]], ...]
    shapes: tuple[tuple[Callable[[Any], Any], frozenset[int]], ...]

    def hits(self, text: Any, lowered: Any) -> set[int]:
        """Indexes of the steps `text` (ASCII, lower case `lowered`) holds a trigger of."""
        found: set[int] = set()
        if self.any_case:
            for steps in [i for t, i in self.any_case if t in lowered]:
                found |= steps
        if self.any_case_shared:
            for steps in [i for search, i in self.any_case_shared if search(lowered)]:
                found |= steps
        if self.exact:
            for steps in [i for t, i in self.exact if t in text]:
                found |= steps
        if self.exact_shared:
            for steps in [i for search, i in self.exact_shared if search(text)]:
                found |= steps
        if self.runs:
            raw = text if isinstance(text, bytes) else text.encode()
            for table, needles in self.runs:
                mapped = raw.translate(table)
                for steps in [i for needle, i in needles if needle in mapped]:
                    found |= steps
        if self.shapes:
            for steps in [i for found_in, i in self.shapes if found_in(text)]:
                found |= steps
        return found


def _grouped(pairs: Any, merge: bool = False) -> tuple[tuple[Any, frozenset[int]], ...]:
    """(trigger, step index) pairs -> (trigger, every step index it serves). `merge`: a trigger
    holding a shorter one (`password` holds `pass`) is dropped and its steps served by the
    shorter one, which is found wherever the longer is: fewer passes over the text."""
    grouped: dict[Any, set[int]] = {}
    for trigger, index in pairs:
        grouped.setdefault(trigger, set()).add(index)
    if merge:
        for trigger in sorted(grouped, key=len, reverse=True):
            shorter = [t for t in grouped if t != trigger and t in trigger]
            if shorter:
                grouped[min(shorter, key=len)] |= grouped.pop(trigger)
    return tuple((trigger, frozenset(indexes)) for trigger, indexes in grouped.items())


def _shared(triggers: tuple[tuple[Any, frozenset[int]], ...]) -> tuple[Any, Any]:
    """Triggers split into those alone and regexes for those sharing their first two chars."""
    buckets: dict[Any, list[tuple[Any, frozenset[int]]]] = {}
    for trigger, steps in triggers:
        buckets.setdefault(trigger[:2], []).append((trigger, steps))
    alone = tuple(t for bucket in buckets.values() if len(bucket) == 1 for t in bucket)
    shared = tuple(
        (
            re.compile(
                (b"|" if isinstance(bucket[0][0], bytes) else "|").join(
                    re.escape(t) for t, _ in bucket
                )
            ).search,
            frozenset().union(*(steps for _, steps in bucket)),
        )
        for bucket in buckets.values()
        if len(bucket) > 1
    )
    return alone, shared


@functools.lru_cache(maxsize=256)
def _triggers_of(steps: frozenset[int], as_bytes: bool = False) -> _Triggers:
    """The triggers of `steps` (indexes into STEPS), as str or as bytes; over bytes (JSON),
    with the key triggers too, for `_KEYS`."""

    def cast(text: str) -> Any:
        return text.encode() if as_bytes else text

    chosen = [(i, STEPS[i]) for i in sorted(steps)]
    any_case = [(cast(t), i) for i, step in chosen for t in step.any_case]
    if as_bytes:
        any_case += [(cast(t), _KEYS) for t in _KEY_TRIGGERS]
    runs: dict[bytes, list[tuple[bytes, int]]] = {}
    for i, step in chosen:
        for run in step.runs:
            table, needle = _parse_run(run)
            runs.setdefault(table, []).append((needle, i))
    exact = _grouped(((cast(t), i) for i, step in chosen for t in step.exact), merge=True)
    return _Triggers(
        *_shared(_grouped(any_case, merge=True)),
        *_shared(exact),
        tuple((table, _grouped(needles)) for table, needles in runs.items()),
        _grouped(
            ((as_bytes and step.json_shape) or re.compile(cast(step.shape)).search, i)
            for i, step in chosen
            if step.shape
        ),
    )


#: Whole strings (quoted: keys or values) in Vigil's own and CloudTrail's attributes that hold a
#: trigger (`key`) but that no step and no secret-named key rule acts on: a scan of serialized
#: JSON skips them. Check every pattern and `_key_kind` before adding one.
_PLAIN_IN_JSON = (
    b'"access_key_id"', b'"accesskeyid"', b'"finding_key"', b'"finding_keys"', b'"group_key"'
)  # fmt: skip


def _scan_json(blob: bytes) -> tuple[frozenset[int], bool]:
    """The steps that can change some string of a value serialized as JSON (no trigger holds a
    character JSON escapes, and no shape looks behind, so what a string holds is found in the
    JSON too), and whether some key could be secret-named."""
    if not blob.isascii():  # Unicode case folding (`ſ` matches `s`): no shortcut
        return _ALL_STEPS, True
    lowered = blob.lower()
    for name in _PLAIN_IN_JSON:
        lowered = lowered.replace(name, b"")
    found = _triggers_of(_ALL_STEPS, as_bytes=True).hits(blob, lowered)
    keys = _KEYS in found
    found.discard(_KEYS)
    return frozenset(found), keys
