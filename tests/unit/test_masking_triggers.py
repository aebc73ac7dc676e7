"""The prefilter's automata find exactly the steps one `trigger in text` test per literal
trigger finds: on the masking corpus, over str and over serialized JSON, and on random ASCII
text built from triggers, pieces of them and noise."""

from __future__ import annotations

import dataclasses
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from app.masking.field_names import _KEY_TRIGGERS
from app.masking.patterns import STEPS
from app.masking.triggers import _ALL_STEPS, _KEYS, _triggers_of
from tests.unit import test_masking, test_masking_corpus

_LITERALS = sorted({t for step in STEPS for t in (*step.any_case, *step.exact)} | {*_KEY_TRIGGERS})


def _plain_hits(steps: frozenset[int], text: Any, lowered: Any) -> set[int]:
    """The steps of `steps` with a literal trigger in `text`, one substring test each."""

    def cast(trigger: str) -> Any:
        return trigger.encode() if isinstance(text, bytes) else trigger

    found = {
        i
        for i in steps
        if any(cast(t) in lowered for t in STEPS[i].any_case)
        or any(cast(t) in text for t in STEPS[i].exact)
    }
    if isinstance(text, bytes) and any(cast(t) in lowered for t in _KEY_TRIGGERS):
        found.add(_KEYS)
    return found


def _automaton_hits(steps: frozenset[int], text: Any, lowered: Any) -> set[int]:
    """What `_Triggers.hits` finds with its literal triggers alone (no runs, no shapes)."""
    triggers = _triggers_of(steps, as_bytes=isinstance(text, bytes))
    return dataclasses.replace(triggers, runs=(), shapes=()).hits(text, lowered)


def _check(text: str) -> None:
    blob = orjson.dumps({text: [text, text.upper()]})
    for steps in (_ALL_STEPS, frozenset(range(0, len(STEPS), 3)), frozenset({22, 25})):
        assert _automaton_hits(steps, text, text.lower()) == _plain_hits(steps, text, text.lower())
        assert _automaton_hits(steps, blob, blob.lower()) == _plain_hits(steps, blob, blob.lower())


def test_automata_find_what_substring_tests_find_on_the_corpus() -> None:
    texts = [text for _, text, _ in test_masking_corpus.CORPUS]
    texts += [case[0] for case in test_masking.test_mask_text.pytestmark[0].args[1]]
    assert len(texts) > 50
    for text in texts:
        if text.isascii():
            _check(text)


_PIECES = st.one_of(
    st.sampled_from(_LITERALS).flatmap(
        lambda t: st.sampled_from((t, t.upper(), t.capitalize(), t[: len(t) // 2], t[1:]))
    ),
    st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=6),
)


@settings(max_examples=400, deadline=None)
@given(st.lists(_PIECES, max_size=12).map("".join))
def test_automata_find_what_substring_tests_find_on_random_text(text: str) -> None:
    _check(text)
