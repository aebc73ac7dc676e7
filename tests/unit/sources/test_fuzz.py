"""Property-based fuzzing of every adapter family through the `Normalizer` front door.

Seeds are the real records under shared/fixtures (split the way `app.sources.files` splits files)
plus a few metric samples written here (shared/ has no metric fixtures). Each input is mutated
(truncated, byte-flipped, keys deleted, values swapped for values of other types, nested deeply,
blown past the size limit) and thrown at every family of `app.sources.registry.FAMILIES`.

Properties: `normalize` returns a list of well-formed events or raises `NormalizeError`; no other
exception escapes; the code is never INTERNAL (an adapter bug); purely malformed input (random
non-JSON bytes, truncated JSON documents) always fails.

Runs under the hypothesis profile `ci`: derandomized and without an example database, so a run is
deterministic. Locally, `VIGIL_FUZZ_SCALE=20 VIGIL_FUZZ_PROFILE=explore` runs 20 times the
examples with fresh random seeds.
"""

from __future__ import annotations

import json
import os
import traceback
from functools import cache
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.model.events import MAX_TS_MS, SEVERITIES, Event
from app.settings import Settings
from app.sources.decode import DecodeLimits, decode_record
from app.sources.errors import ErrorCode, NormalizeError
from app.sources.files import file_records
from app.sources.normalize import Normalizer
from app.sources.registry import FAMILIES, TEXT_FAMILIES, adapters_for

settings.register_profile(
    "ci",
    derandomize=True,
    database=None,
    deadline=None,
    print_blob=True,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,
    ],
)
settings.register_profile("explore", settings.get_profile("ci"), derandomize=False)
PROFILE = settings.get_profile(os.environ.get("VIGIL_FUZZ_PROFILE", "ci"))
SCALE = max(1, int(os.environ.get("VIGIL_FUZZ_SCALE", "1")))


def budget(examples: int) -> settings:
    """The chosen profile (`ci` by default) with `examples` times VIGIL_FUZZ_SCALE examples."""
    return settings(PROFILE, max_examples=examples * SCALE)


SETTINGS = Settings.from_env()
FIXTURES = Path(SETTINGS.shared_dir) / "fixtures"
LIMITS = DecodeLimits(max_bytes=SETTINGS.max_record_bytes, max_depth=SETTINGS.max_depth)
NORMALIZER = Normalizer(limits=LIMITS)

#: Fixture directory -> the raw topic family its records arrive on.
FIXTURE_FAMILIES = {
    "alertmanager": "alertmanager",
    "cloudtrail": "cloudtrail",
    "falco": "falco",
    "fluent-bit": "logs",
    "github": "ci",
    "gitlab": "ci",
    "k8s-audit": "k8s-audit",
    "sarif": "scans",
    "terraform": "terraform",
    "trivy": "scans",
}

#: Metric seeds (JSON samples and exposition text): shared/ has none.
METRIC_SEEDS: list[bytes] = [
    orjson.dumps(
        {
            "name": "up",
            "labels": {"job": "api", "instance": "10.0.0.1:9090"},
            "value": 1,
            "timestamp": 1395066363000,
        }
    ),
    orjson.dumps(
        [
            {
                "name": "cpu_seconds_total",
                "labels": {"host": "web-1"},
                "value": "12.5",
                "timestamp": "2024-01-02T03:04:05Z",
            },
            {
                "labels": {"__name__": "temp_celsius", "app": "x"},
                "value": "NaN",
                "timestamp": 1704164645,
            },
        ]
    ),
    orjson.dumps(
        {
            "timestamp": 1395066363000,
            "samples": [
                {"name": "a", "value": 1},
                {"name": "b", "labels": {"service": "s"}, "value": "+Inf"},
            ],
        }
    ),
    orjson.dumps(
        {
            "timestamp": "2024-01-02T03:04:05.123Z",
            "exposition": '# TYPE x counter\nx{job="j"} 3\ny 4 1395066363000\n',
        }
    ),
    b"# HELP http_requests_total The total number of HTTP requests.\n"
    b"# TYPE http_requests_total counter\n"
    b'http_requests_total{method="post",code="200"} 1027 1395066363000\n'
    b'msdos_file_access_time_seconds{path="C:\\\\DIR\\\\FILE.TXT",error="x:\\n\\"F\\""}'
    b" 1.458255915e9 1395066363000\n"
    b'{"my.metric", "label.x"="v"} -Inf 1520879607.789\n',
]


def _load_seeds() -> dict[str, list[bytes]]:
    seeds: dict[str, list[bytes]] = {family: [] for family in FAMILIES}
    for directory, family in FIXTURE_FAMILIES.items():
        for path in sorted((FIXTURES / directory).iterdir()):
            seeds[family].extend(raw for _, raw in file_records(path))
    seeds["metrics"].extend(METRIC_SEEDS)
    return seeds


SEEDS = _load_seeds()
FAMILY_NAMES = sorted(FAMILIES)
#: (family, seed) for every seed that is a JSON document, and for every seed.
JSON_SEEDS = [(family, raw) for family in FAMILY_NAMES for raw in SEEDS[family] if raw[:1] in b"{["]
ALL_SEEDS = [(family, raw) for family in FAMILY_NAMES for raw in SEEDS[family]]

#: Codes a truncated JSON document may fail with (cut mid-character, inside a string, ...).
TRUNCATION_CODES = {
    ErrorCode.MALFORMED_JSON,
    ErrorCode.INVALID_UTF8,
    ErrorCode.UNKNOWN_FORMAT,
    ErrorCode.EMPTY,
}


# --------------------------------------------------------------------------------------------
# The properties


def _accepts_text(family: str | None) -> bool:
    return family in TEXT_FAMILIES or any(
        getattr(a, "accepts_text", False) for a in adapters_for(family)
    )


def _adapter_traceback(raw: bytes, family: str | None) -> str:
    """Re-run the adapter that failed without the Normalizer's guard, to show the bug."""
    try:
        doc = decode_record(raw, LIMITS, allow_text=_accepts_text(family))
        for adapter in adapters_for(family):
            if adapter.matches(doc):
                adapter.normalize(doc, raw)
                return "(adapter did not fail when re-run)"
    except NormalizeError:
        return "(adapter raised NormalizeError when re-run)"
    except Exception:
        return traceback.format_exc()
    return "(no adapter matched when re-run)"


def check_event(event: Event) -> None:
    """Every canonical event is complete, in range and serializable."""
    assert isinstance(event, Event), event
    for name in ("id", "entity", "type", "source"):
        value = getattr(event, name)
        assert isinstance(value, str) and value, f"{name} is {value!r}"
    assert event.severity in SEVERITIES, event.severity
    assert type(event.ts_ms) is int, type(event.ts_ms)
    assert 0 <= event.ts_ms <= MAX_TS_MS, event.ts_ms
    assert isinstance(event.attributes, dict), type(event.attributes)
    wire = orjson.loads(orjson.dumps(event.to_dict()))
    assert wire["time"].endswith("Z")


def check(raw: bytes, family: str | None, *, must_fail: bool = False) -> Any:
    """Normalize `raw`: events or a NormalizeError (returned), never INTERNAL or anything else."""
    try:
        events = NORMALIZER.normalize(raw, family=family)
    except NormalizeError as exc:
        assert isinstance(exc.code, ErrorCode)
        if exc.code is ErrorCode.INTERNAL:
            pytest.fail(
                f"INTERNAL for family {family}: {exc.message}\n{_adapter_traceback(raw, family)}"
            )
        return exc
    assert not must_fail, f"malformed input normalized to {len(events)} event(s)"
    assert isinstance(events, list)
    for event in events:
        check_event(event)
    return events


# --------------------------------------------------------------------------------------------
# Strategies

BIG_FLOAT = "\x00big-float\x00"  # written as the literal 1e308 (json.dumps would quote it)

NASTY_STRINGS = [
    "",
    " ",
    "\x00",
    "null",
    "true",
    "nan",
    "NaN",
    "inf",
    "-Infinity",
    "1e999",
    "-1",
    "0",
    "123",
    "1.5",
    "10" * 20,
    "0000-00-00T00:00:00Z",
    "9999-12-31T23:59:59.999999999Z",
    "10000-01-01T00:00:00Z",
    "1969-12-31T23:59:59Z",
    "2024-02-30T00:00:00Z",
    "2024-01-01T00:00:00+99:99",
    "2016-08-12 15:23:28 UTC",
    "T",
    ".",
    "...",
    "@",
    ":",
    "/",
    "a/b/c",
    "host:port:",
    "https://",
    "refs/heads/",
    "[]",
    "{}",
    "é🙂\u202e\ufeff",
    "²",  # str.isdigit() but not int()
    "١٢٣",  # Arabic-Indic digits: int() reads them
    "½",
    "Ⅻ",
    "arn:aws:iam::123456789012:user/",
    "arn:",
    "a:b:c:d:e:f:g",
    "https://user:pass@host:99999/a/b?c=d#e",
    "registry:5000/a/b:tag@sha256:",
    "pkg:npm/@scope/",
    "@",
    "::",
    "$0",
    "{0} {1} {2}",
    "{{}}",
    "%s %d",
    "\\",
    "\n\n",
    "9" * 5000,  # int() refuses over 4300 digits
    "{" + "1" * 5000 + "}",
    "CWE-" + "7" * 5000,
    "x" * 70_000,
    "--password=hunter2 AKIAABCDEFGHIJKLMNOP",
]
NASTY_NUMBERS = [
    0,
    -1,
    1,
    2**31,
    2**53 + 1,
    2**63 - 1,
    2**63,
    2**64 - 1,
    -(2**63),
    10**30,  # orjson reads it as the float 1e30
    -(10**30),
    0.5,
    -0.0,
    1e-300,
    1e21,
    BIG_FLOAT,
]
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(st.characters(codec="utf-8"), max_size=20),
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.text(max_size=8), children, max_size=4),
    ),
    max_leaves=12,
)
replacements = st.one_of(
    st.sampled_from(NASTY_STRINGS),
    st.sampled_from(NASTY_NUMBERS),
    st.sampled_from([None, True, False, [], {}, [None], [[[]]], {"": {"": None}}, [{}], [""]]),
    json_values,
)


def dump(doc: Any) -> bytes:
    """JSON bytes, with big ints kept as written and BIG_FLOAT as a literal near the float limit."""
    text = json.dumps(doc, ensure_ascii=False, allow_nan=False)
    return text.replace(json.dumps(BIG_FLOAT), "1e308").encode("utf-8")


@cache
def parsed(raw: bytes) -> Any:
    return orjson.loads(raw)


@cache
def paths_of(raw: bytes) -> tuple[tuple[Any, ...], ...]:
    """Every path (tuple of keys/indexes) to a node of the seed's document, root first."""
    out: list[tuple[Any, ...]] = []
    stack: list[tuple[tuple[Any, ...], Any]] = [((), parsed(raw))]
    while stack:
        path, node = stack.pop()
        out.append(path)
        if isinstance(node, dict):
            stack.extend(((*path, key), value) for key, value in node.items())
        elif isinstance(node, list):
            stack.extend(((*path, index), value) for index, value in enumerate(node))
    out.sort(key=lambda p: (len(p), [str(part) for part in p]))
    return tuple(out)


@cache
def levels_of(raw: bytes) -> tuple[tuple[tuple[Any, ...], ...], ...]:
    """The seed's paths grouped by depth, so shallow fields (the ones adapters read) get picked
    as often as the thousands of leaves of a big report."""
    levels: dict[int, list[tuple[Any, ...]]] = {}
    for path in paths_of(raw):
        levels.setdefault(len(path), []).append(path)
    return tuple(tuple(level) for _, level in sorted(levels.items()))


@cache
def keys_of(family: str) -> tuple[str, ...]:
    """Every object key in the family's seeds: names for keys the fuzzer adds."""
    keys = {
        path[-1]
        for raw in SEEDS[family]
        if raw[:1] in b"{["
        for path in paths_of(raw)
        if path and isinstance(path[-1], str)
    }
    return tuple(sorted(keys))


def get_at(doc: Any, path: tuple[Any, ...]) -> Any:
    for part in path:
        doc = doc[part]
    return doc


def with_change(doc: Any, path: tuple[Any, ...], new: Any, delete: bool = False) -> Any:
    """A copy of `doc` with the node at `path` replaced (or deleted); only the path is copied."""
    if not path:
        return new
    head, rest = path[0], path[1:]
    copy = dict(doc) if isinstance(doc, dict) else list(doc)
    if rest:
        copy[head] = with_change(copy[head], rest, new, delete)
    elif delete:
        del copy[head]
    else:
        copy[head] = new
    return copy


def _existing_path(doc: Any, path: tuple[Any, ...]) -> bool:
    try:
        get_at(doc, path)
    except (KeyError, IndexError, TypeError):
        return False
    return True


@st.composite
def json_mutants(draw: st.DrawFn, seeds: list[tuple[str, bytes]]) -> tuple[str, bytes]:
    """A seed with 1-4 random mutations at any depth: deleted keys, added keys (named like the
    family's real keys) and values swapped for values of other types."""
    family, raw = draw(st.sampled_from(seeds))
    doc = parsed(raw)
    levels = levels_of(raw)
    for _ in range(draw(st.integers(1, 4))):
        path = draw(st.sampled_from(draw(st.sampled_from(levels))))
        if not _existing_path(doc, path):  # removed by an earlier mutation
            continue
        old = get_at(doc, path)
        kind = draw(st.sampled_from(["delete", "replace", "retype", "wrap", "add", "splice"]))
        if kind == "delete" and path:
            doc = with_change(doc, path, None, delete=True)
            continue
        if kind == "splice":  # another node of the same record, e.g. an object for a list
            other = draw(st.sampled_from(paths_of(raw)))
            if _existing_path(doc, other):
                doc = with_change(doc, path, get_at(doc, other))
            continue
        if kind == "add" and isinstance(old, dict):
            path = (*path, draw(st.sampled_from(keys_of(family))))
            new = draw(replacements)
        elif kind == "retype" and isinstance(old, str):
            new = draw(st.sampled_from([len(old), old.upper(), old + "\x00", old[: len(old) // 2]]))
        elif kind == "retype" and isinstance(old, int | float) and not isinstance(old, bool):
            new = draw(st.sampled_from([str(old), -old, old * 10**12, float(old), [old]]))
        elif kind == "wrap":
            new = draw(st.sampled_from([[old], {"value": old}, [old, old]]))
        else:
            new = draw(replacements)
        doc = with_change(doc, path, new)
    return family, dump(doc)


@st.composite
def truncations(draw: st.DrawFn, seeds: list[tuple[str, bytes]]) -> tuple[str, bytes]:
    family, raw = draw(st.sampled_from(seeds))
    stripped = raw.strip()
    cut = draw(st.integers(1, len(stripped) - 1))
    return family, stripped[:cut]


@st.composite
def byte_flips(draw: st.DrawFn, seeds: list[tuple[str, bytes]]) -> tuple[str, bytes]:
    family, raw = draw(st.sampled_from(seeds))
    data = bytearray(raw)
    for _ in range(draw(st.integers(1, 6))):
        index = draw(st.integers(0, len(data) - 1))
        data[index] = draw(
            st.one_of(
                st.integers(0, 255),
                st.sampled_from(b'{}[]",:\\0-.eE \n\x00\xff\xc3'),
            )
        )
    return family, bytes(data)


@st.composite
def token(draw: st.DrawFn, valid: list[str], broken: list[str], may_break: bool) -> str:
    """A valid token, or (when the line `may_break`) one time in three a broken one."""
    return draw(st.sampled_from(broken if may_break and draw(st.integers(0, 2)) == 0 else valid))


@st.composite
def exposition_lines(draw: st.DrawFn) -> str:
    """A Prometheus exposition line: valid, or (one line in three) with broken tokens."""
    may_break = draw(st.integers(0, 2)) == 0
    parts = [
        draw(
            token(["up", "a_b:c", "_x", "http_requests_total"], ["9bad", "", "é", "x.y"], may_break)
        )
    ]
    if draw(st.booleans()):
        pairs = []
        for _ in range(draw(st.integers(0, 3))):
            key = draw(
                token(
                    ["job", "instance", "service", "host", "app", "__name__"],
                    ["9", "", '"q.n"', "é"],
                    may_break,
                )
            )
            equals = draw(token(["=", " = "], ["", "=="], may_break))
            value = draw(
                token(
                    [
                        '"x"',
                        '""',
                        '"a\\"b"',
                        '"a\\\\"',
                        '"a\\n"',
                        '"10.0.0.1:9090"',
                        '"[::1]:80"',
                        '"host:"',
                    ],
                    ['"bad\\q"', '"open', "bare"],
                    may_break,
                )
            )
            pairs.append(key + equals + value)
        parts.append("{" + draw(token([",", ", "], [",,", " "], may_break)).join(pairs))
        parts.append(draw(token(["}", ",}"], ["", "}}"], may_break)))
    for valid, broken in (
        (
            ["1", "-1", "1.5e3", "NaN", "+Inf", "-inf", "Infinity", "-0"],
            ["1_000", "0x10", "1e999", "", "x"],
        ),
        (
            ["", "1395066363000", "1520879607.789", "253402300799999", "0"],
            [
                "-1",
                "1.5",
                "1e3",
                "1e400",
                "nan",
                "9" * 30,
                "9" * 5000,
                "1_000",
                "253402300800000",
                "٣",
            ],
        ),
    ):
        parts.append(
            draw(token([" ", "\t", "  "], [""], may_break)) + draw(token(valid, broken, may_break))
        )
    if may_break and draw(st.integers(0, 3)) == 0:
        parts.append(' # {trace_id="1"} 1')  # an exemplar
    return "".join(parts)


exposition_texts = st.lists(
    st.tuples(
        st.sampled_from(["", "", "", "# HELP x y\n", "# TYPE x counter\n", "\n"]),
        exposition_lines(),
    ).map("".join),
    min_size=1,
    max_size=5,
).map("\n".join)


def not_json(data: bytes) -> bool:
    try:
        orjson.loads(data)
    except orjson.JSONDecodeError:
        return True
    return False


families = st.sampled_from([*FAMILY_NAMES, None])

# --------------------------------------------------------------------------------------------
# Tests


def test_every_family_has_seeds_and_they_normalize(fixtures_dir: Path) -> None:
    assert fixtures_dir.resolve() == FIXTURES.resolve()
    for family in FAMILY_NAMES:
        assert SEEDS[family], f"no seeds for family {family}"
        for raw in SEEDS[family]:
            events = check(raw, family)
            assert isinstance(events, list) and events, (family, raw[:80])


@pytest.mark.parametrize("family", FAMILY_NAMES)
@budget(500)
@given(data=st.data())
def test_json_mutations_of_each_family(family: str, data: st.DataObject) -> None:
    seeds = [(f, raw) for f, raw in JSON_SEEDS if f == family]
    fam, raw = data.draw(json_mutants(seeds))
    check(raw, fam)


@budget(1000)
@given(case=json_mutants(JSON_SEEDS), family=families)
def test_json_mutations_on_any_topic(case: tuple[str, bytes], family: str | None) -> None:
    """A mutant of any format read from any family's topic (or auto-detected)."""
    check(case[1], family)


@budget(600)
@given(case=truncations(JSON_SEEDS), same_family=st.booleans(), family=families)
def test_truncated_json_always_fails(
    case: tuple[str, bytes], same_family: bool, family: str | None
) -> None:
    exc = check(case[1], case[0] if same_family else family, must_fail=True)
    assert exc.code in TRUNCATION_CODES, exc


@budget(200)
@given(case=truncations([(f, raw) for f, raw in ALL_SEEDS if f == "metrics"]))
def test_truncated_metrics_never_crash(case: tuple[str, bytes]) -> None:
    check(case[1], "metrics")


@budget(400)
@given(
    text=exposition_texts,
    envelope=st.sampled_from([None, 1395066363000, "2024-01-02T03:04:05Z", "bad", -5]),
    family=st.sampled_from(["metrics", None]),
)
def test_exposition_text(text: str, envelope: Any, family: str | None) -> None:
    """Prometheus text, bare or in a `{"exposition", "timestamp"}` envelope."""
    if envelope is None:
        raw = text.encode()
    else:
        raw = orjson.dumps({"exposition": text, "timestamp": envelope})
    check(raw, family)


@budget(1000)
@given(case=byte_flips(ALL_SEEDS), same_family=st.booleans(), family=families)
def test_byte_flips(case: tuple[str, bytes], same_family: bool, family: str | None) -> None:
    check(case[1], case[0] if same_family else family)


@budget(300)
@given(
    data=st.one_of(
        st.binary(max_size=200),
        st.text(st.characters(codec="utf-8"), max_size=100).map(str.encode),
    ).filter(not_json)
)
def test_random_non_json_bytes(data: bytes) -> None:
    for family in [*FAMILY_NAMES, None]:
        if _accepts_text(family):
            # may be valid Prometheus text; must not crash and can only yield metrics
            result = check(data, family)
            assert isinstance(result, NormalizeError) or all(e.source == "metrics" for e in result)
        else:
            check(data, family, must_fail=True)


@budget(400)
@given(doc=json_values, family=families)
def test_arbitrary_json_values(doc: Any, family: str | None) -> None:
    check(orjson.dumps(doc), family)


@budget(150)
@given(
    case=st.sampled_from(JSON_SEEDS),
    depth=st.integers(1, 3 * LIMITS.max_depth),
    container=st.sampled_from(["list", "dict"]),
    inside=st.booleans(),
    data=st.data(),
)
def test_deep_nesting(
    case: tuple[str, bytes], depth: int, container: str, inside: bool, data: st.DataObject
) -> None:
    """The record wrapped in `depth` levels, or a `depth`-deep value put inside it."""
    family, raw = case
    if inside:
        nested: Any = "x"
        for _ in range(depth):
            nested = [nested] if container == "list" else {"a": nested}
        path = data.draw(st.sampled_from(paths_of(raw)))
        raw = dump(with_change(parsed(raw), path, nested))
    else:
        opener, closer = (b"[", b"]") if container == "list" else (b'{"a":', b"}")
        raw = opener * depth + raw + closer * depth
    result = check(raw, family)
    total_depth = depth + (0 if inside else 1)
    if not inside and total_depth > LIMITS.max_depth:
        assert isinstance(result, NormalizeError) and result.code is ErrorCode.TOO_DEEP


@pytest.mark.parametrize(("opener", "closer"), [(b"[", b"]"), (b'{"a":', b"}"), (b'{"a":[', b"]}")])
@pytest.mark.parametrize("closed", [True, False])
def test_absurd_nesting_is_too_deep(opener: bytes, closer: bytes, closed: bool) -> None:
    """Past orjson's own 1024-level limit, closed or not, on every topic (text ones too)."""
    raw = opener * 100_000 + (b"1" + closer * 100_000 if closed else b"")
    for family in [*FAMILY_NAMES, None]:
        exc = check(raw, family, must_fail=True)
        assert exc.code is ErrorCode.TOO_DEEP, (family, exc)


@budget(40)
@given(case=st.sampled_from(ALL_SEEDS), extra=st.integers(1, 4096), family=families)
def test_over_the_size_limit(case: tuple[str, bytes], extra: int, family: str | None) -> None:
    raw = case[1]
    padded = raw + b" " * (LIMITS.max_bytes - len(raw) + extra)
    exc = check(padded, family, must_fail=True)
    assert exc.code is ErrorCode.TOO_LARGE


@budget(30)
@given(case=st.sampled_from(JSON_SEEDS), data=st.data())
def test_huge_values_under_the_limit(case: tuple[str, bytes], data: st.DataObject) -> None:
    """A ~600 KB string or list put anywhere in a real record (under the 1 MiB limit)."""
    family, raw = case
    path = data.draw(st.sampled_from(paths_of(raw)))
    filler = data.draw(
        st.sampled_from(
            [
                "A" * 600_000,
                "user@example.com --password=x " * 20_000,
                ["x"] * 100_000,
                [{"a": 1}] * 50_000,
            ]
        )
    )
    check(dump(with_change(parsed(raw), path, filler)), family)


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_matches_never_raises(family: str) -> None:
    values: list[Any] = [
        None,
        True,
        0,
        -1.5,
        10**30,
        "",
        "x",
        "{",
        "# comment",
        [],
        [None],
        [[]],
        [1, 2],
        [{}],
        [{"value": None}],
        {},
        {"": None},
        {"value": None},
        {"samples": None},
        *(parsed(raw) for raw in SEEDS[family] if raw[:1] in b"{["),
    ]
    values += [[v] for v in values] + [{"value": v, "name": v, "rule": v} for v in values]
    for adapter in FAMILIES[family]:
        for value in values:
            adapter.matches(value)  # must not raise


@budget(300)
@given(doc=json_values)
def test_matches_never_raises_on_arbitrary_json(doc: Any) -> None:
    for adapter in adapters_for(None):
        adapter.matches(doc)  # must not raise
