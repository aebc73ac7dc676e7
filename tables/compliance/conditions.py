"""A small declarative condition language over JSON-like documents (canonical events as dicts).

Used by the compliance rule pack (app/rules/compliance.yaml, tables/compliance/stage.py). A
condition is one YAML mapping:

- a leaf: `{path: <dotted path>, <operator>: <operand>}` with exactly one operator:
  `eq`, `ne`, `in`, `contains`, `regex`, `exists`, `gt`, `lt`;
- a composite: `{all: [cond, ...]}`, `{any: [cond, ...]}`, `{not: cond}`;
- a quantifier: `{path: <dotted path>, any_item: cond}`: true when some value at `path` (each
  item of a list there) satisfies `cond`, whose paths are relative to that item. It keeps
  fields of one item together (port *and* CIDR of the same permission).

Paths walk objects by key and lists by numeric index (`items.0.cidrIp`); `*` steps into every
item of a list (or every value of an object), so one path may resolve to several values. A
missing step resolves to nothing (a JSON null counts as missing).

Semantics over the resolved values (all of them, when `*` gave several):
- `exists: true` — at least one value; `exists: false` — none.
- `eq`, `in`, `contains`, `regex`, `gt`, `lt` — true when *some* value satisfies it.
- `ne` — true when there is at least one value and *none* equals the operand; a missing field
  is not "different" (write `not: {path: p, eq: x}` for "missing or different").
- `contains` — substring of a string, or member of a list.
- `regex` — Python `re.search`; a string is matched as is, an object or list as its compact
  JSON text (sorted keys), numbers and booleans never.
- `gt`, `lt` — numbers only (booleans are not numbers).
- `eq` and `in` compare JSON values exactly (`1` equals `1.0`, `true` is not `1`).

Compilation validates everything up front and raises ConditionError naming the place
(`match.all[2]: unknown operator 'equals'`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

OPERATORS: tuple[str, ...] = ("eq", "ne", "in", "contains", "regex", "exists", "gt", "lt")
COMPOSITES: tuple[str, ...] = ("all", "any", "not")
QUANTIFIERS: tuple[str, ...] = ("any_item",)

_MISSING = object()


class ConditionError(ValueError):
    """A condition that cannot be compiled; the message names where and why."""


@dataclass(frozen=True, slots=True)
class Condition:
    """A compiled condition: call `test(doc)`; `spec` is the source it came from."""

    spec: Any
    test: Callable[[Any], bool]

    def __call__(self, doc: Any) -> bool:
        return self.test(doc)


def compile_condition(spec: Any, where: str = "condition") -> Condition:
    """Validate and compile a condition (see the module docstring)."""
    return Condition(spec, _compile(spec, where))


def resolve(doc: Any, path: str) -> list[Any]:
    """Every value at a dotted `path` in `doc` (`*` fans out); missing steps give nothing."""
    values = [doc]
    for part in path.split("."):
        following: list[Any] = []
        for value in values:
            if part == "*":
                if isinstance(value, list):
                    following.extend(value)
                elif isinstance(value, dict):
                    following.extend(value.values())
            elif isinstance(value, dict):
                if part in value:
                    following.append(value[part])
            elif isinstance(value, list) and _is_index(part):
                index = int(part)
                if -len(value) <= index < len(value):
                    following.append(value[index])
        values = [v for v in following if v is not None]
        if not values:
            return []
    return values


def first(doc: Any, path: str, default: Any = None) -> Any:
    """The first value at `path`, or `default`."""
    values = resolve(doc, path)
    return values[0] if values else default


def _is_index(part: str) -> bool:
    return part.isdigit() or (part.startswith("-") and part[1:].isdigit())


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _json_equal(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    return a == b


def _text(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, dict | list):
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
    return None


def _check_path(path: Any, where: str) -> str:
    if not isinstance(path, str) or not path or any(not p for p in path.split(".")):
        raise ConditionError(f"{where}: 'path' must be a dotted path such as attributes.verb")
    return path


def _compile(spec: Any, where: str) -> Callable[[Any], bool]:
    if not isinstance(spec, dict) or not spec:
        raise ConditionError(f"{where}: a condition must be a non-empty mapping")
    keys = set(spec)
    composite = keys & set(COMPOSITES)
    if composite:
        if len(keys) != 1:
            raise ConditionError(
                f"{where}: '{sorted(composite)[0]}' must stand alone (found {sorted(keys)})"
            )
        (name,) = composite
        return _compile_composite(name, spec[name], where)
    if "path" not in spec:
        unknown = sorted(keys - set(OPERATORS) - set(QUANTIFIERS))
        if unknown:
            raise ConditionError(
                f"{where}: unknown operator {unknown[0]!r} "
                f"(known: {', '.join(OPERATORS + QUANTIFIERS + COMPOSITES)})"
            )
        raise ConditionError(f"{where}: missing field 'path'")
    path = _check_path(spec["path"], where)
    ops = keys - {"path"}
    unknown = sorted(ops - set(OPERATORS) - set(QUANTIFIERS))
    if unknown:
        raise ConditionError(
            f"{where}: unknown operator {unknown[0]!r} "
            f"(known: {', '.join(OPERATORS + QUANTIFIERS + COMPOSITES)})"
        )
    if len(ops) != 1:
        raise ConditionError(
            f"{where}: a leaf needs exactly one operator besides 'path' (found {sorted(ops)})"
        )
    (op,) = ops
    operand = spec[op]
    if op == "any_item":
        inner = _compile(operand, f"{where}.any_item")

        def any_item(doc: Any) -> bool:
            for value in resolve(doc, path):
                items = value if isinstance(value, list) else [value]
                if any(inner(item) for item in items):
                    return True
            return False

        return any_item
    return _compile_leaf(path, op, operand, where)


def _compile_composite(name: str, operand: Any, where: str) -> Callable[[Any], bool]:
    if name == "not":
        inner = _compile(operand, f"{where}.not")
        return lambda doc: not inner(doc)
    if not isinstance(operand, list) or not operand:
        raise ConditionError(f"{where}: '{name}' needs a non-empty list of conditions")
    parts = [_compile(item, f"{where}.{name}[{i}]") for i, item in enumerate(operand)]
    if name == "all":
        return lambda doc: all(part(doc) for part in parts)
    return lambda doc: any(part(doc) for part in parts)


def _compile_leaf(path: str, op: str, operand: Any, where: str) -> Callable[[Any], bool]:
    if op == "exists":
        if not isinstance(operand, bool):
            raise ConditionError(f"{where}: 'exists' takes true or false")
        return lambda doc: bool(resolve(doc, path)) is operand
    if op in ("eq", "ne"):
        if op == "eq":
            return lambda doc: any(_json_equal(v, operand) for v in resolve(doc, path))

        def ne(doc: Any) -> bool:
            values = resolve(doc, path)
            return bool(values) and not any(_json_equal(v, operand) for v in values)

        return ne
    if op == "in":
        if not isinstance(operand, list) or not operand:
            raise ConditionError(f"{where}: 'in' takes a non-empty list")
        options = list(operand)
        return lambda doc: any(any(_json_equal(v, o) for o in options) for v in resolve(doc, path))
    if op == "contains":
        if isinstance(operand, dict | list) or operand is None:
            raise ConditionError(f"{where}: 'contains' takes a string, number or boolean")

        def contains(doc: Any) -> bool:
            for value in resolve(doc, path):
                if isinstance(value, str) and isinstance(operand, str) and operand in value:
                    return True
                if isinstance(value, list) and any(_json_equal(v, operand) for v in value):
                    return True
            return False

        return contains
    if op == "regex":
        if not isinstance(operand, str):
            raise ConditionError(f"{where}: 'regex' takes a string")
        try:
            pattern = re.compile(operand)
        except re.error as exc:
            raise ConditionError(f"{where}: invalid regex {operand!r}: {exc}") from None

        def regex(doc: Any) -> bool:
            for value in resolve(doc, path):
                text = _text(value)
                if text is not None and pattern.search(text):
                    return True
            return False

        return regex
    # gt / lt
    if not _is_number(operand):
        raise ConditionError(f"{where}: '{op}' takes a number")
    if op == "gt":
        return lambda doc: any(_is_number(v) and v > operand for v in resolve(doc, path))
    return lambda doc: any(_is_number(v) and v < operand for v in resolve(doc, path))
