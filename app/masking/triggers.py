"""The prefilter: the plain substrings (runs, a few shapes) a string, or a value serialized as
JSON, must hold for a step to change it, so clean strings and whole clean records skip the
regex passes. `tests/unit/test_masking*.py` check it against the full pass."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import ahocorasick

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
    """The triggers of some steps, each with the steps it serves. The literal triggers of a
    kind are one Aho-Corasick automaton (pyahocorasick): one pass over the text finds them all,
    at ~6 ns a character where a substring test costs ~0.5 per trigger (55 lower-case triggers
    over JSON, 11 exact ones). Runs and shapes are searched one by one."""

    #: Lower-case triggers, searched in the lower-cased text; `None` when there are none.
    any_case: ahocorasick.Automaton | None
    #: Triggers found as written; `None` when there are none.
    exact: ahocorasick.Automaton | None
    runs: tuple[tuple[bytes, tuple[tuple[bytes, frozenset[int]], ...]], ...]
    shapes: tuple[tuple[Callable[[Any], Any], frozenset[int]], ...]

    def hits(self, text: Any, lowered: Any) -> set[int]:
        """Indexes of the steps `text` (ASCII, lower case `lowered`) holds a trigger of."""
        found: set[int] = set()
        if isinstance(text, bytes):  # the automata search str (decoding ASCII costs ~1 us)
            text_str, lowered = text.decode(), lowered.decode()
        else:
            text_str = text
        if self.any_case is not None:
            for _, steps in self.any_case.iter(lowered):
                found |= steps
        if self.exact is not None:
            for _, steps in self.exact.iter(text_str):
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


def _grouped(pairs: Iterable[tuple[Any, int]]) -> tuple[tuple[Any, frozenset[int]], ...]:
    """(trigger, step index) pairs -> (trigger, every step index it serves)."""
    grouped: dict[Any, set[int]] = {}
    for trigger, index in pairs:
        grouped.setdefault(trigger, set()).add(index)
    return tuple((trigger, frozenset(indexes)) for trigger, indexes in grouped.items())


def _automaton(pairs: Iterable[tuple[str, int]]) -> ahocorasick.Automaton | None:
    """An automaton of the triggers of (trigger, step index) pairs, whose matches give the
    steps each serves; `None` when there are no triggers."""
    automaton = ahocorasick.Automaton()
    for trigger, steps in _grouped(pairs):
        automaton.add_word(trigger, steps)
    if not len(automaton):
        return None
    automaton.make_automaton()
    return automaton


@functools.lru_cache(maxsize=256)
def _triggers_of(steps: frozenset[int], as_bytes: bool = False) -> _Triggers:
    """The triggers of `steps` (indexes into STEPS), for str or for bytes; over bytes (JSON),
    with the key triggers too, for `_KEYS`."""
    chosen = [(i, STEPS[i]) for i in sorted(steps)]
    any_case = [(t, i) for i, step in chosen for t in step.any_case]
    if as_bytes:
        any_case += [(t, _KEYS) for t in _KEY_TRIGGERS]
    runs: dict[bytes, list[tuple[bytes, int]]] = {}
    for i, step in chosen:
        for run in step.runs:
            table, needle = _parse_run(run)
            runs.setdefault(table, []).append((needle, i))
    return _Triggers(
        _automaton(any_case),
        _automaton((t, i) for i, step in chosen for t in step.exact),
        tuple((table, _grouped(needles)) for table, needles in runs.items()),
        _grouped(
            (
                (as_bytes and step.json_shape)
                or re.compile(step.shape.encode() if as_bytes else step.shape).search,
                i,
            )
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
