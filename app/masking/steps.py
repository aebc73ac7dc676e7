"""What a masking step is: one pass over a string, and what a string must hold for it to run.

Every step masks with `MASK` and a short hint (`[card]`, `[aws-secret]`). `patterns.STEPS` holds
them all, in order; `triggers` turns their triggers into the prefilter.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass

MASK = "****"


@dataclass(frozen=True)
class _Step:
    """One masking pass over a string, and what a string needs for it to change anything.

    `any_case`: lower-case triggers, found ignoring case; `exact`: found as written; `runs`:
    for patterns with no fixed substring, runs of one character class such as `[0-9]{3}-[0-9]{2}`
    (found by mapping the class to one character and searching a plain substring: far cheaper
    than a regex); `shape`: a regex, for the rest. Shapes and runs never look behind, so they
    also find their text inside serialized JSON. A string holding none of them skips the step.
    """

    name: str
    apply: Callable[[str], str]
    any_case: tuple[str, ...] = ()
    exact: tuple[str, ...] = ()
    runs: tuple[str, ...] = ()
    shape: str | None = None
    #: Replaces the `shape` search over serialized JSON, when it can be narrower there.
    json_shape: Callable[[bytes], bool] | None = None

    def __post_init__(self) -> None:
        if self.shape is not None:
            re.compile(self.shape)  # fail at import on a bad pattern
        for run in self.runs:
            _parse_run(run)


_RUN_PART = re.compile(r"\[([^\]]+)\]\{(\d+)\}|([^\[])")


@functools.lru_cache(maxsize=64)
def _parse_run(run: str) -> tuple[bytes, bytes]:
    """`[0-9]{3}-[0-9]{2}` -> (translation table mapping the class to `\\x00`, needle). One
    class per run; the characters between its parts must be outside it."""
    classes, needle = set(), b""
    for part in _RUN_PART.finditer(run):
        chars, count, literal = part.groups()
        if literal is not None:
            needle += literal.encode()
            continue
        classes.add(chars)
        needle += b"\x00" * int(count)
    (chars,) = classes
    members = re.sub(
        r"(.)-(.)", lambda m: "".join(map(chr, range(ord(m[1]), ord(m[2]) + 1))), chars
    )
    table = bytes.maketrans(members.encode(), b"\x00" * len(members))
    return table, needle
