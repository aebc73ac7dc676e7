"""Every Vigil table stores and changelogs its values with orjson (tables/definitions.py)."""

from __future__ import annotations

import json

import orjson
import pytest

from app.codecs import OrjsonCodec, dumps_value
from app.faust_app import app
from tables import definitions  # noqa: F401  (registers the tables)


def test_every_table_value_goes_through_orjson_and_keys_stay_json() -> None:
    # with the three step journals, the policy reloads, the two clocks and the held events
    assert len(app.tables) == 18
    for table in app.tables.values():
        if table.name.endswith("-journal"):  # JSON bytes written by app/runtime/journal.py
            assert table.value_serializer == "raw", table.name
            continue
        assert table.value_serializer == "orjson", table.name
        assert table.key_serializer == "json", table.name  # as already stored


def test_values_written_by_either_codec_read_the_same() -> None:
    """State written with Faust's stdlib json codec before the change reads the same."""
    value = {"wm": 1_700_000_000_000, "mean": 0.25, "open": [[1, 2.5]], "s": "é", "n": None}
    codec = OrjsonCodec()
    assert codec.loads(json.dumps(value).encode()) == value
    assert json.loads(codec.dumps(value)) == value
    assert orjson.loads(codec.dumps({3: "x"})) == {"3": "x"}  # int keys as stdlib json writes


def test_a_value_is_written_the_same_with_or_without_non_string_keys() -> None:
    """`dumps_value` tries the fast dump first and falls back to orjson's option for
    non-string keys: the bytes are those the option gives, and what neither can dump fails."""
    with_option = orjson.OPT_NON_STR_KEYS
    for value in ({"a": [1, {"b": 2.5}]}, {"a": {7: "x"}}, [{1.5: None}], "s"):
        assert dumps_value(value) == orjson.dumps(value, option=with_option)
    with pytest.raises(TypeError):
        dumps_value({"a": object()})


async def test_every_changelog_is_read_back_with_the_serializers_it_was_written_with() -> None:
    """Recovery decodes each changelog record with the changelog topic's schema; a journal
    record stored compressed failed to decode as JSON there and was dropped from recovery."""
    from faust.types.tuples import ConsumerMessage

    from app.runtime import step_journal

    large = {"o": 7, "w": {"alerts": {f"a{i}": {"state": "firing", "n": i} for i in range(9000)}}}
    compressed = step_journal.encode(large)
    assert compressed[:1] == b"Z"
    for table in app.tables.values():
        value = compressed if table.value_serializer == "raw" else orjson.dumps({"n": 1})
        message = ConsumerMessage(
            table.changelog_topic.get_topic_name(), 0, 1, 0.0, 0, None, b'"k"', value, None
        )
        event = await table.changelog_topic.schema.decode(app, message, propagate=True)
        assert event.key == "k", table.name
        expected = large if table.value_serializer == "raw" else {"n": 1}
        decoded = (
            step_journal.decode(event.value) if table.value_serializer == "raw" else event.value
        )
        assert decoded == expected, table.name
