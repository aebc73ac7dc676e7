"""Nested keys and dotted attribute paths into JSON values."""

from __future__ import annotations

from app.model.paths import dig, flatten, is_under, value_at


def test_dig_stops_at_anything_that_is_not_an_object():
    doc = {"a": {"b": [1]}, "c": "x"}
    assert dig(doc, "a", "b") == [1]
    assert dig(doc, "a", "b", "0") is None
    assert dig(doc, "c", "d") is None
    assert dig(None, "a") is None


def test_flatten_sorts_keys_and_keeps_empty_leaves():
    value = {"b": [1, {}], "a": {"x.y": None}}
    assert flatten(value) == [("a.x.y", None), ("b.0", 1), ("b.1", {})]
    assert flatten(3) == [("*", 3)]


def test_value_at_prefers_the_longest_dotted_key():
    value = {"tags": {"app.kubernetes.io/name": "api"}, "ingress": [{"port": 22}]}
    assert value_at(value, "tags.app.kubernetes.io/name") == "api"
    assert value_at(value, "ingress.0.port") == 22
    assert value_at(value, "ingress.3.port") is None
    assert value_at(value, "*") is value


def test_is_under():
    assert is_under("a.b", {"a"}) and is_under("a", {"a"}) and is_under("z", {"*"})
    assert not is_under("ab", {"a"})
