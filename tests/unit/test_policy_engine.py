"""The Rego engine wrapper (app/policy/engine.py) and the rego-cpp behaviour it guards against."""

from __future__ import annotations

import pytest

from app.policy.engine import UNDEFINED, RegoEngine, RegoError, v0_constructs

DENY = (
    "package main\n\ndeny contains msg if {\n  input.x == 1\n"
    '  msg := sprintf("x is %v", [input.x])\n}\n'
)


def test_query_returns_the_set_as_a_list_and_undefined_for_missing_rules():
    engine = RegoEngine()
    engine.load_module("main.rego", DENY)
    assert engine.query("data.main.deny", {"x": 1}) == ["x is 1"]
    assert engine.query("data.main.deny", {"x": 2}) == []
    assert engine.query("data.main.allow", {}) is UNDEFINED


def test_parse_error_names_file_line_and_column_and_keeps_stdout_clean(capfd):
    engine = RegoEngine()
    with pytest.raises(RegoError, match=r"bad\.rego:3:22: this is unclosed"):
        engine.load_module("bad.rego", "package x\n\ndeny contains msg if {\n  msg := \n")
    assert capfd.readouterr().out == ""


def test_v0_rule_loads_in_rego_cpp_as_an_object_that_yields_nothing():
    """Why the loader checks syntax and result types: v0 `deny[msg] { ... }` is no error."""
    engine = RegoEngine()
    engine.load_module("v0.rego", 'package main\n\ndeny[msg] {\n  input.x == 1\n  msg := "m"\n}\n')
    assert engine.query("data.main.deny", {"x": 1}) == {"m": True}
    assert v0_constructs(engine.sources["v0.rego"]) == [(3, "deny[msg] {")]


@pytest.mark.parametrize(
    ("source", "lines"),
    [
        ('violation[{"msg": msg, "details": {}}] {\n  x\n}', [1]),
        ("input_containers[c] {\n  c := 1\n}", [1]),
        ("p = true { x }", [1]),
        ("f(x) = y { y := x }", [1]),
        ("allow {\n}", [1]),
        ("q if {\n  1\n} else := 2 {\n  3\n}", [3]),
        ('violation contains {"msg": msg} if {\n  msg := "m"\n}', []),
        ('x := {"a": {"b": 1}}', []),
        ("v(p) := {m |\n  m := p\n}", []),
        ("s := {1} | {2}", []),
        ('g(i) := plan({"a": {"b": 1}})', []),
        ("default allow := false\nallow if input.ok", []),
        ('deny contains msg if {\n  y := {"b": 2}\n  msg := "m" # { not a body\n}', []),
    ],
)
def test_v0_constructs(source: str, lines: list[int]):
    found = v0_constructs("package p\n\n" + source + "\n")
    assert [line - 2 for line, _ in found] == lines


def test_with_over_a_rule_calling_a_builtin_is_an_error_not_a_crash():
    """rego-cpp 1.5.2 cannot evaluate it; the error is read from the interpreter (reading it
    from the output, as regopy's str() does, crashes the process)."""
    engine = RegoEngine()
    engine.load_module(
        "t.rego", DENY + 'test_x if {\n  count(deny) == 1 with input as {"x": 1}\n}\n'
    )
    with pytest.raises(RegoError, match="rego-localref"):
        engine.query("data.main.test_x", {})


def test_malformed_engine_output_is_an_error():
    """rego-cpp keeps the quotes of a string literal passed to a function and sprintf'd."""
    engine = RegoEngine()
    engine.load_module(
        "q.rego", 'package q\n\nf(t) := {"a": sprintf("%s.x", [t])}\n\ny := f("lit")\n'
    )
    with pytest.raises(RegoError, match="malformed JSON"):
        engine.query("data.q.y", {})


def test_compiled_entrypoint_gives_the_interpreted_value():
    engine = RegoEngine()
    engine.load_module("main.rego", DENY)
    engine.compile(["main/deny"])
    assert engine.evaluate("main/deny", {"x": 1}) == engine.query("data.main.deny", {"x": 1})
    assert engine.evaluate("main/deny", {"x": 2}) == []
    assert engine.evaluate("main/other", {}) is UNDEFINED  # not compiled: interpreted


def test_the_rego_engine_leaves_rocksdb_usable_in_its_process():
    """librego_shared.so brings its own `operator new`/`delete`: loaded before rocksdict, a
    RocksDB store then aborted the process (app/policy/engine.py imports rocksdict first)."""
    import subprocess
    import sys

    code = "import app.policy.engine, rocksdict; rocksdict.Options(); print('ok')"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-500:]
