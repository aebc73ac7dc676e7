"""The Rego engine: regopy (rego-cpp) behind a small, crash-safe interface.

rego-cpp 1.5.2 quirks this module hides (checked in tests/unit/test_policy_engine.py):

- it parses Rego v1 (OPA 1.x) only, and reads v0's `deny[msg] { ... }` as an *object* rule that
  loads without an error and yields `{}`: `v0_constructs` finds such heads in the source, and
  the loader checks that every decision rule evaluates to a set;
- reading an error output's text (`str(output)`) crashes the process (the binding asks the
  output, not the interpreter, for the message): errors are read from the interpreter;
- parse errors are printed on file descriptor 1 besides being raised: `load_module` sends them
  to stderr, so `vigil policy eval` keeps a clean stdout;
- `with` over a rule that calls a built-in fails to evaluate (`shape rego-localref has no field
  rego-refhead`), and poisons every query of the interpreter that holds it: tests hit by it
  fail with that message (docs/drift.md says how to write tests that avoid it);
- `sprintf` of a function argument bound to a string *literal* keeps the quotes and the
  output is not JSON: `query` raises RegoError instead of crashing on it.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
from collections.abc import Iterator
from typing import Any

# isort: split
# rocksdict before regopy: librego_shared.so defines its own `operator new` and `operator
# delete`; when it is the library that loads libstdc++, libstdc++ and RocksDB (in rocksdict,
# loaded later) pair allocations and frees of different allocators, and opening a store aborts
# the worker ("double free or corruption": `import regopy; import rocksdict;
# rocksdict.Options()`). Loaded first, rocksdict brings libstdc++ in with the system allocator.
import rocksdict  # noqa: F401

# isort: split
import orjson
import regopy
from regopy import Interpreter
from regopy import rego_shared as _native

regopy.set_default_log_level("None")

#: `(error <n>:<file>|<offset>|<length> (errormsg <n>:<text>)` in rego-cpp's error sequence.
_ERROR = re.compile(r"\(error \d+:(?P<file>[^|]*)\|(?P<offset>\d+)\|\d+\s*\(errormsg (?P<n>\d+):")
_V1_IF = re.compile(r"\bif\b")
_RULE_HEAD = re.compile(r"[A-Za-z_]")
_VALUE_BEFORE = re.compile(r"(:?=|\bcontains|[|&,(\[+-])\s*$")
_NOT_RULES = ("package ", "import ")


class RegoError(ValueError):
    """Rego that cannot be loaded or evaluated; the message names the file and the cause."""


class Undefined:
    """The result of a query that is undefined (no value)."""

    def __repr__(self) -> str:
        return "undefined"


UNDEFINED = Undefined()


def v0_constructs(source: str) -> list[tuple[int, str]]:
    """(line, text) of each top-level v0-only construct: a rule body opened without `if`.

    A `{` at the rule's own nesting level opens a body unless it directly follows `=` / `:=`
    (an object, set or comprehension value); v1 requires `if` before every body.
    """
    found: list[tuple[int, str]] = []
    depth = 0
    for number, raw in enumerate(source.splitlines(), start=1):
        line = _strip_comment(raw)
        stripped = line.strip()
        level = depth
        if level == 1 and stripped.startswith("}"):  # `} else = x {`
            stripped, level = stripped[1:].lstrip(), 0
            if not stripped.startswith("else"):
                stripped = ""
        if level == 0 and _RULE_HEAD.match(stripped) and not stripped.startswith(_NOT_RULES):
            body = _body_brace(stripped)
            if body is not None and not _V1_IF.search(stripped[:body]):
                found.append((number, stripped[:80]))
        depth = max(depth + _brace_delta(line), 0)
    return found


def _body_brace(text: str) -> int | None:
    """Index of the first top-level `{` that opens a body rather than a value (a `{` right
    after `=`, `:=`, `contains` or an operator starts an object, set or comprehension)."""
    depth, quoted, value_depth = 0, False, None
    for index, char in enumerate(text):
        if char == '"' and (index == 0 or text[index - 1] != "\\"):
            quoted = not quoted
        elif quoted:
            continue
        elif char == "{" and depth == 0 and value_depth is None:
            if not _VALUE_BEFORE.search(text[:index]):
                return index
            value_depth = depth
            depth += 1
        elif char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
            if value_depth is not None and depth == value_depth:
                value_depth = None
    return None


def _strip_comment(line: str) -> str:
    """The line without a `#` comment outside strings."""
    quoted = False
    for index, char in enumerate(line):
        if char == '"' and (index == 0 or line[index - 1] != "\\"):
            quoted = not quoted
        elif char == "#" and not quoted:
            return line[:index]
    return line


def _brace_delta(line: str) -> int:
    delta, quoted = 0, False
    for index, char in enumerate(line):
        if char == '"' and (index == 0 or line[index - 1] != "\\"):
            quoted = not quoted
        elif not quoted and char in "{[(":
            delta += 1
        elif not quoted and char in "}])":
            delta -= 1
    return delta


@contextlib.contextmanager
def _stdout_to_stderr() -> Iterator[None]:
    """Send what the native library prints on fd 1 to fd 2 for the duration."""
    sys.stdout.flush()
    try:
        saved = os.dup(1)
    except OSError:  # no fd 1 (a daemon): nothing to protect
        yield
        return
    try:
        os.dup2(2, 1)
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def describe_error(message: str, sources: dict[str, str]) -> str:
    """rego-cpp's error sequence as `file:line:col: message` lines (raw text if unparsable)."""
    lines = []
    for match in _ERROR.finditer(message):
        length = int(match["n"])
        text = message[match.end() : match.end() + length]
        name, offset = match["file"], int(match["offset"])
        source = sources.get(name)
        if source is not None:
            line = source.count("\n", 0, offset) + 1
            col = offset - (source.rfind("\n", 0, offset) + 1) + 1
            lines.append(f"{name}:{line}:{col}: {text}")
        else:
            lines.append(f"{name}: {text}")
    return "; ".join(dict.fromkeys(lines)) if lines else message.strip()


class RegoEngine:
    """One interpreter holding a set of modules; `query` evaluates against an input document.

    Not thread-safe (one input at a time), like the interpreter itself.
    """

    def __init__(self) -> None:
        self._interpreter = Interpreter()
        self.sources: dict[str, str] = {}
        self._bundle: Any = None
        self._entrypoints: frozenset[str] = frozenset()

    def load_module(self, name: str, source: str) -> None:
        """Add a module; RegoError names the file, line and cause of a parse error."""
        self.sources[name] = source
        try:
            with _stdout_to_stderr():
                self._interpreter.add_module(name, source)
        except regopy.RegoError as exc:
            raise RegoError(describe_error(str(exc), self.sources)) from None

    def query(self, query: str, document: Any = None) -> Any:
        """The value of `query` (first expression of the first result) with `input` = document.

        Returns UNDEFINED when the query has no value; RegoError when evaluation fails.
        """
        if document is not None:
            self.set_input(document)
        try:
            output = self._interpreter.query(query)
        except ValueError as exc:  # the engine printed a value that is not JSON
            raise RegoError(f"{query}: the engine returned malformed JSON ({exc})") from None
        return self._value(output)

    def _value(self, output: Any) -> Any:
        if not output.ok():
            raise RegoError(_native.rego_get_error(self._interpreter._impl) or "evaluation failed")
        results = output.results
        if not results or not results[0].expressions:
            return UNDEFINED
        return results[0].expressions[0]

    def compile(self, entrypoints: list[str]) -> None:
        """Build the loaded modules into a bundle for these entrypoints (`pkg/path/rule`):
        evaluating a bundle skips the compilation an interpreted query repeats every time
        (0.4-0.5 ms instead of 5-10 ms per query for the bundled policies)."""
        try:
            with _stdout_to_stderr():
                self._bundle = self._interpreter.build(None, entrypoints)
        except regopy.RegoError as exc:
            raise RegoError(describe_error(str(exc), self.sources)) from None
        self._entrypoints = frozenset(entrypoints)

    def evaluate(self, entrypoint: str, document: Any) -> Any:
        """The value of a compiled entrypoint with `input` = document (see `compile`);
        an entrypoint that was not compiled is queried (`data.` + the path with dots)."""
        if self._bundle is None or entrypoint not in self._entrypoints:
            return self.query("data." + entrypoint.replace("/", "."), document)
        self.set_input(document)
        try:
            output = self._interpreter.query_bundle_entrypoint(self._bundle, entrypoint)
        except ValueError as exc:
            raise RegoError(f"{entrypoint}: the engine returned malformed JSON ({exc})") from None
        return self._value(output)

    def set_input(self, document: Any) -> None:
        """Set `input` from a JSON-encodable document (parsed natively: cheaper than walking)."""
        self._interpreter.set_input_term(orjson.dumps(document).decode())
