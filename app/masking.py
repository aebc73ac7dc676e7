"""Mask secrets and personal data in everything Vigil emits.

Applied to every canonical event before it leaves the adapter layer, and to the copy of the
original bytes a dead letter keeps (`mask_raw`), so nothing downstream (topics, tables, logs,
the web view) ever holds the clear value. Masks keep a short, non-reversible hint of what was
there (`[email]`, `AKIA****[aws-key]`) so analysts can still tell alerts apart. Masked:

- token formats from a maintained rule set, app/rules/secrets.toml (gitleaks' default rules
  for the formats telemetry carries, in Python `re`), loaded once at import;
- secrets found by context: `password=x` / `"db_password": "x"` / `secretKey: x`, `--token x`,
  `docker login -p x`, `mysql -px`, `user:pass@` in URLs, `Bearer x`, named and bare AWS secret
  access keys (40 characters that look random);
- personal data: e-mail addresses, card numbers (Luhn-checked, known issuer prefixes), US SSNs,
  and IPv4 addresses when asked;
- by key name: the whole value under a secret-named key (`*password*`, `*secret*`, `*token*`,
  `*apikey*`, ... but not `secret_id` or `token_type`), and under other `*key*` names a value
  that looks like a random token; dict keys are masked like values; a string holding a JSON
  object or array is parsed, masked as JSON and serialized again.
"""

from __future__ import annotations

import functools
import itertools
import math
import re
import tomllib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

MASK = "****"

#: The token-format rules (see the file's header for its fields and provenance).
RULES_PATH = Path(__file__).with_name("rules") / "secrets.toml"


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


def _rule_step(rule: dict[str, Any]) -> _Step:
    """A step from one rule of app/rules/secrets.toml."""
    flags = re.S if "s" in rule.get("flags", "") else 0
    pattern = re.compile(rule["regex"], flags)
    fixed = rule.get("replacement")
    label = f"[{rule['label']}]" if rule.get("label") else ""
    keeps = "keep" in pattern.groupindex

    def replace(match: re.Match[str]) -> str:
        if fixed is not None:
            return fixed
        keep = (match.group("keep") or "") if keeps else ""
        return f"{keep}{MASK}{label}"

    keywords = tuple(rule.get("keywords", ()))
    exact = bool(rule.get("exact", False))
    return _Step(
        rule["id"],
        functools.partial(pattern.sub, replace),
        any_case=() if exact else tuple(k.lower() for k in keywords),
        exact=keywords if exact else (),
        runs=tuple(rule.get("runs", ())),
    )


def load_rules(path: Path = RULES_PATH) -> tuple[_Step, ...]:
    """The token-format steps of a rules file, in file order."""
    with path.open("rb") as file:
        return tuple(_rule_step(rule) for rule in tomllib.load(file)["rules"])


#: The domain's first label must hold a letter and its TLD be alphabetic, so package ids such as
#: `musl@1.1.20-r4` or `pkg:npm/lodash@4.17.4` are not mistaken for e-mail addresses.
_EMAIL = re.compile(
    r"(?<![\w.+-])[\w.+-]{1,64}@(?=[A-Za-z0-9-]*[A-Za-z])(?:[A-Za-z0-9-]{1,63}\.)+[A-Za-z]{2,24}\b"
)
_AWS_SECRET_ASSIGN = re.compile(
    r"(?i)(aws_secret_access_key|secretaccesskey|aws_secret|secret_key)"
    r"(\s*[:=]\s*|\"\s*:\s*\"|\s+)([A-Za-z0-9/+=]{40})\b"
)
#: A bare AWS secret access key: 40 characters of base64's alphabet, alone. Whether it looks
#: random (mixed case, a digit, frequent changes of kind) is decided by `_looks_like_aws_secret`.
_AWS_SECRET_BARE = re.compile(r"(?<![A-Za-z0-9/+=])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])")
_BEARER = re.compile(r"(?i)\b(bearer|token)\s+([A-Za-z0-9\-._~+/]{8,}=*)")
_AUTH_BASIC = re.compile(r"(?i)\b(basic)\s+([A-Za-z0-9+/]{8,}=*)")
#: `--password=x`, `--token x`, `-password x` style flags. A bare `-p` is not a secret flag
#: (ssh, nc, docker run use it for a port); see `_REGISTRY_LOGIN` and `_MYSQL_PASSWORD`.
_SECRET_FLAG = re.compile(
    r"(?i)(--?(?:password|passwd|passphrase|pass|pwd|token|secret|api[-_]?key|access[-_]?key|"
    r"auth)(?:[=\s]+))(\"[^\"]*\"|'[^']*'|\S+)"
)
#: `password=x`, `DB_PASSWORD=x`, `secretKey: x`, `apiToken=x`, `"client_secret": "x"` (also
#: with JSON's escaped quotes, `\"client_secret\": \"x\"`, escaped once or more: the value is
#: masked up to its closing quote's backslashes). The name may have any prefix; a
#: value already masked (`"****[aws-secret]"`) is left with its hint.
_SECRET_NAME = (
    r"(?:password|passwd|passphrase|(?<![A-Za-z0-9])pwd|secret|token|api[-_]?key|"
    r"access[-_]?key|private[-_]?key|credentials?)(?:[-_]?(?:key|value))?"
)
_SECRET_ASSIGN = re.compile(
    rf"(?i)({_SECRET_NAME}(?:\\*[\"'])?\s*[=:]\s*)(?![\"']?\*{{4}})"
    r"(\\+\"[^\"\\]*|\"[^\"]*\"|'[^']*'|[^\s&,;\"']+)"
)
#: `docker login -p SECRET` (podman, nerdctl, buildah alike): there `-p` is the password.
_REGISTRY_LOGIN = re.compile(
    r"(\b(?:docker|podman|nerdctl|buildah)\s+login(?:\s+(?!-p\b|--password\b)\S+){0,8}?\s+"
    r"(?:-p|--password)(?:=|\s+))(\"[^\"]*\"|'[^']*'|\S+)"
)
#: MySQL/MariaDB clients read `-pSECRET` (attached) as the password; `-p secret` (apart) is a
#: prompt for the password followed by a database name, so only the attached form is masked.
_MYSQL_PASSWORD = re.compile(
    r"(\b(?:mysql|mysqldump|mysqladmin|mysqlimport|mysqlshow|mariadb|mariadb-dump)\b[^\n]{0,500}?"
    r"\s-p)(?=[^\s-])(\"[^\"]*\"|'[^']*'|\S+)"
)
_URL_CREDENTIALS = re.compile(r"(?i)\b([a-z][a-z0-9+.-]{0,31}://)([^/\s:@]+):([^/\s@]+)@")
#: Card numbers: 13-19 digits, grouped by spaces or dashes the same way throughout (4-4-4-x, or
#: Amex/Diners 4-6-x), not part of a longer number, id or version; `_is_card` checks the issuer
#: prefix, the length and the Luhn digit, so epoch-millisecond times (`17...`) and ids stay.
_CARD = re.compile(
    r"(?<![\w.+-])(?:[2-6]\d{3}([ -]?)\d{4}\1\d{4}\1\d{1,7}|3\d{3}([ -]?)\d{6}\2\d{4,5})"
    r"(?![\w+-]|\.\d)"
)
#: US social security numbers: area not 000, 666 or 9xx; group not 00; serial not 0000.
_SSN = re.compile(
    r"(?<![\w.+-])(?!000|666|9)\d{3}-(?!00)\d{2}-(?!0000)\d{4}(?![\w+-]|\.\d)"
)  # fmt: skip
_IPV4 = re.compile(r"\b(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)\b")


_CARD_SHAPE = r"[2-6]\d{3}(?:[ -]?\d{4}[ -]?\d{4}[ -]?\d|[ -]\d{6}[ -]\d{4})"


_CARD_SHAPE_JSON = re.compile(_CARD_SHAPE.encode())


def _card_in_json(blob: bytes) -> bool:
    """`_CARD_SHAPE` in serialized JSON, but not inside a longer number (nanosecond times):
    after a non-digit, or after an escape `\\u00XX` (a control character)."""
    for match in _CARD_SHAPE_JSON.finditer(blob):
        start = match.start()
        if not blob[start - 1 : start].isdigit() or blob[start - 6 : start - 2] == b"\\u00":
            return True
    return False


def _luhn_ok(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        digit = int(char)
        if index % 2:
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return total % 10 == 0


def _is_card(number: str) -> bool:
    """A known issuer's prefix and length (Visa, Mastercard, Amex, Diners, Discover, JCB,
    UnionPay) and a valid Luhn check digit."""
    digits = number.replace(" ", "").replace("-", "")
    n, head = len(digits), digits[:4]
    if digits[0] == "4":
        issued = n in (13, 16, 19)
    elif digits[0] == "5":
        issued = n == 16 and "51" <= head[:2] <= "55"
    elif digits[0] == "2":
        issued = n == 16 and "2221" <= head <= "2720"
    elif digits[0] == "3":
        issued = (head[:2] in ("34", "37") and n == 15) or (
            head[:2] in ("30", "36", "38", "35") and 14 <= n <= 19
        )
    else:
        issued = 16 <= n <= 19 and (
            head == "6011" or head[:2] in ("62", "65") or "644" <= head[:3] <= "649"
        )
    return issued and _luhn_ok(digits)


def _kind_changes(text: str) -> int:
    """How often the kind of character (upper, lower, digit, other) changes along `text`."""
    kinds = [
        "u" if c.isupper() else "l" if c.islower() else "d" if c.isdigit() else "o" for c in text
    ]
    return sum(a != b for a, b in itertools.pairwise(kinds))


def _looks_like_aws_secret(text: str) -> bool:
    """Random-looking, not a path: upper and lower case, a digit, at most three slashes, and the
    kind of character changing often (12+ times in 40; random base64 changes ~25 times)."""
    return (
        not text.startswith("/")
        and text.count("/") <= 3
        and sum(c.isupper() for c in text) >= 2
        and sum(c.islower() for c in text) >= 2
        and any(c.isdigit() for c in text)
        and _kind_changes(text) >= 12
    )


def _sub_keeping(pattern: re.Pattern[str], label: str = "") -> Callable[[str], str]:
    """`pattern.sub` that keeps group 1 and masks group 2 (or the whole match, when no groups)."""

    def replace(match: re.Match[str]) -> str:
        return f"{match.group(1)}{MASK}{label}" if pattern.groups else f"{MASK}{label}"

    return functools.partial(pattern.sub, replace)


def _sub_checked(pattern: re.Pattern[str], check: Callable[[str], bool], label: str):
    """`pattern.sub` masking only the matches that pass `check`."""
    return functools.partial(
        pattern.sub, lambda m: f"{MASK}{label}" if check(m.group(0)) else m.group(0)
    )


_SECRET_FLAG_TRIGGERS = (
    "-pass", "pwd", "token", "secret", "apikey", "api-key", "api_key", "accesskey", "access-key",
    "access_key", "-auth",
)  # fmt: skip
_SECRET_NAME_TRIGGERS = (
    "passw", "passphrase", "pwd", "secret", "token", "apikey", "api-key", "api_key",
    "accesskey", "access-key", "access_key", "privatekey", "private-key", "private_key",
    "credential",
)  # fmt: skip

#: Every masking pass, in order: the rule file's token formats first, then context, then
#: personal data.
STEPS: tuple[_Step, ...] = (
    *load_rules(),
    _Step(
        "url-credentials",
        lambda t: _URL_CREDENTIALS.sub(lambda m: f"{m.group(1)}{MASK}:{MASK}@", t),
        any_case=("://",),
    ),
    _Step(
        "aws-secret-assign",
        lambda t: _AWS_SECRET_ASSIGN.sub(
            lambda m: f"{m.group(1)}{m.group(2)}{MASK}[aws-secret]", t
        ),
        any_case=("secret",),
    ),
    _Step(
        "bearer",
        lambda t: _BEARER.sub(lambda m: f"{m.group(1)} {MASK}", t),
        any_case=("bearer", "token"),
    ),
    _Step(
        "basic-auth",
        lambda t: _AUTH_BASIC.sub(lambda m: f"{m.group(1)} {MASK}", t),
        any_case=("basic",),
    ),
    _Step("secret-flag", _sub_keeping(_SECRET_FLAG), any_case=_SECRET_FLAG_TRIGGERS),
    _Step(
        "registry-login",
        _sub_keeping(_REGISTRY_LOGIN),
        any_case=("docker", "podman", "nerdctl", "buildah"),
    ),
    _Step("mysql-password", _sub_keeping(_MYSQL_PASSWORD), any_case=("mysql", "mariadb")),
    _Step("secret-assign", _sub_keeping(_SECRET_ASSIGN), any_case=_SECRET_NAME_TRIGGERS),
    _Step(
        "aws-secret-bare",
        _sub_checked(_AWS_SECRET_BARE, _looks_like_aws_secret, "[aws-secret]"),
        runs=("[A-Za-z0-9/+]{40}",),
    ),
    _Step(
        "card-number",
        _sub_checked(_CARD, _is_card, "[card]"),
        shape=_CARD_SHAPE,
        json_shape=_card_in_json,
    ),
    _Step("ssn", functools.partial(_SSN.sub, f"{MASK}[ssn]"), shape=r"-\d{2}-\d{4}"),
    _Step(
        "email",
        functools.partial(_EMAIL.sub, "[email]"),
        shape=r"@[A-Za-z0-9-]+\.",
    ),
)

#: Key names (lower case, without `_`, `-`, `.` and spaces) whose whole value is a secret ...
_SECRET_KEY_PARTS = (
    "password", "passwd", "passphrase", "secret", "token", "apikey", "credential",
    "privatekey", "accesskey", "accountkey", "sessionkey", "signingkey", "encryptionkey",
    "masterkey",
)  # fmt: skip
_SECRET_KEYS_EXACT = frozenset(
    {"pwd", "authorization", "proxyauthorization", "cookie", "setcookie"}
)
#: ... unless the name ends with one of these: it names or describes the secret (`secret_id`,
#: `token_type`, `password_last_used`), and its value is masked like any other.
_DESCRIBING_ENDS = (
    "id", "ids", "arn", "arns", "name", "names", "type", "types", "count", "length", "ttl",
    "expiry", "expiration", "expires", "expiresat", "expiresin", "lastused", "lastchanged",
    "age", "required", "enabled", "policy", "version", "status", "ref", "path", "file",
    "present", "exists", "rotation", "format", "location", "url", "uri", "endpoint", "size",
    "limit", "used", "provided", "set", "list",
)  # fmt: skip
#: Secret-sounding names of ordinary values: idempotency and pagination tokens.
_PLAIN_SECRET_NAMES = frozenset(
    {"clienttoken", "idempotencytoken", "nexttoken", "pagetoken", "paginationtoken",
     "continuationtoken", "nextpagetoken", "synctoken", "resumetoken"}
)  # fmt: skip
#: `*key*` names that hold ordinary values: only a random-looking value under another `*key*`
#: name (`signing_key`, `dbKey`, `X-Key`) is masked.
_PLAIN_KEY_NAMES = (
    "publickey", "primarykey", "foreignkey", "partitionkey", "sortkey", "routingkey",
    "cachekey", "dedupkey", "groupkey", "idempotencykey", "findingkey", "objectkey", "s3key",
    "hashkey", "rangekey", "keypair", "keyring", "keyusage", "keyspec", "keystate", "keymanager",
    "keyalgorithm", "monkey", "turnkey", "keyboard", "keyword", "hotkey", "keyframe", "keychain",
    "keystore",
)  # fmt: skip
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_TOKEN_CHARS = re.compile(r"[A-Za-z0-9+/=_-]{20,}")


def _unique(items: Any) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


#: What a key name needs (as written, ignoring case) for `_key_kind` to see a secret in it:
#: each of the names above holds one of these.
_KEY_TRIGGERS = ("pass", "secret", "token", "credential", "key", "pwd", "authorization", "cookie")


_NAME_NOISE = re.compile(r"[-_. ]")


@functools.lru_cache(maxsize=4096)
def _key_kind(key: str) -> str | None:
    """`"exact"`/`"whole"`: the value under `key` is a secret (`"whole"`: when it is a string, or
    a number under a singular name: `counts.secrets` is a count); `"key"`: when it looks random.

    Only the name after a Kubernetes-style prefix counts (`rbac.authorization.k8s.io/x` is `x`).
    """
    last = key.rsplit("/", 1)[-1].lower()
    if not any(t in last for t in _KEY_TRIGGERS):  # also what the shortcut over JSON relies on
        return None
    name = _NAME_NOISE.sub("", last)
    if name in _SECRET_KEYS_EXACT:
        return "exact"
    if name.endswith(_DESCRIBING_ENDS) or name in _PLAIN_SECRET_NAMES:
        return None
    if any(part in name for part in _SECRET_KEY_PARTS):
        return "whole"
    if "key" in name and not any(plain in name for plain in _PLAIN_KEY_NAMES):
        return "key"
    return None


def _looks_random(value: str) -> bool:
    """A token, not a word, name, path or UUID: 20+ characters of base64/url-safe alphabet with
    letters and digits, and 3.5+ bits of entropy per character."""
    if len(value) < 20 or _TOKEN_CHARS.fullmatch(value) is None or _UUID.fullmatch(value):
        return False
    if not any(c.isdigit() for c in value) or not any(c.isalpha() for c in value):
        return False
    counts = Counter(value).values()
    entropy = -sum(n / len(value) * math.log2(n / len(value)) for n in counts)
    return entropy >= 3.5


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


@dataclass(frozen=True, slots=True)
class MaskingPolicy:
    """What to mask. `enabled`: master switch; `mask_ips`: also mask IPv4 addresses."""

    enabled: bool = True
    mask_ips: bool = False


def mask_text(text: str, policy: MaskingPolicy) -> str:
    """Mask every secret and piece of personal data found in one string."""
    if not policy.enabled:
        return text
    return _mask_text(text, policy, _ALL_STEPS)


def _mask_text(text: str, policy: MaskingPolicy, steps: frozenset[int] | None) -> str:
    """Mask one string with `steps` (indexes into STEPS), each run only when the string holds
    one of its triggers; `None`: every step, whatever the string holds (the full pass)."""
    if not text:
        return text
    if text[0] in "{[" or text[0].isspace():
        embedded = _embedded_json(text)
        if embedded is not None:
            masked = _mask(embedded, policy, None, steps)
            return text if masked == embedded else orjson.dumps(masked).decode()
    out = _apply_steps(text, steps)
    return _IPV4.sub("[ip]", out) if policy.mask_ips else out


def _apply_steps(text: str, steps: frozenset[int] | None) -> str:
    """STEPS over `text`, in order; `None` runs them all (the full pass, no shortcut). Once a
    step has changed the text, every later step is considered again against the new text (a
    mask's hint could in principle trigger another)."""
    if steps is None or not text.isascii():  # Unicode case folding: no shortcut
        for step in STEPS:
            text = step.apply(text)
        return text
    if not steps or (steps, text) in _CLEAN:
        return text
    found = _triggers_of(steps).hits(text, text.lower())
    for index in sorted(found) if found else ():
        masked = STEPS[index].apply(text)
        if masked != text:
            return _apply_steps(masked, _LATER_STEPS[index])
    if len(text) <= _CLEAN_LONGEST:
        if len(_CLEAN) >= _CLEAN_SIZE:
            del _CLEAN[next(iter(_CLEAN))]  # the oldest
        _CLEAN[steps, text] = None
    return text


#: Strings (up to `_CLEAN_LONGEST` characters) that the given steps leave as they are, oldest
#: first: telemetry repeats its keys, names and paths. Only strings with nothing to mask are
#: kept, so the cache never holds a clear secret.
_CLEAN: dict[tuple[frozenset[int], str], None] = {}
_CLEAN_SIZE = 4096
_CLEAN_LONGEST = 256


def _embedded_json(text: str) -> dict[str, Any] | list[Any] | None:
    """The JSON object or array a whole string holds, if it holds one."""
    if not text.lstrip().startswith(("{", "[")):
        return None
    try:
        doc = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    return doc if isinstance(doc, dict | list) else None


def mask_value(value: Any, policy: MaskingPolicy, key: str | None = None) -> Any:
    """Mask strings anywhere inside a JSON-like value, keys included; see the module docstring
    for what secret-named keys do to their values.

    A list under a secret-named key is masked item by item (`"password": ["x"]`); an object
    under one is read key by key like any other (CloudTrail `credentials` keeps its hints).
    The value is serialized once to find which steps its strings can trigger at all: one with
    no trigger anywhere (and no secret-like key) is returned as it is, without a walk.
    """
    if not policy.enabled:
        return value
    steps = _ALL_STEPS
    if isinstance(value, dict | list) and not policy.mask_ips:
        try:
            blob = orjson.dumps(value)
        except TypeError:  # not JSON-serializable as it is: walk it
            blob = None
        if blob is not None:
            steps, keys = _scan_json(blob)
            if not steps and not keys and (key is None or _key_kind(key) is None):
                return value
    return _mask(value, policy, key, steps)


def _mask(value: Any, policy: MaskingPolicy, key: str | None, steps: frozenset[int] | None) -> Any:
    kind = _key_kind(key) if key is not None else None
    if kind == "exact" or kind == "whole":
        if isinstance(value, list):
            return [_mask(v, policy, None if isinstance(v, dict) else key, steps) for v in value]
        if isinstance(value, str):
            return MASK if value != "" else value
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if number and (kind == "exact" or not key.endswith(("s", "S"))):  # type: ignore[union-attr]
            return MASK
    elif kind == "key" and isinstance(value, str) and _looks_random(value):
        return MASK
    if isinstance(value, str):
        return _mask_text(value, policy, steps)
    if isinstance(value, dict):
        return {
            (_mask_text(k, policy, steps) if isinstance(k, str) else k): _mask(
                v, policy, k if isinstance(k, str) else None, steps
            )
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_mask(v, policy, None, steps) for v in value]
    return value


def mask_raw(raw: bytes, policy: MaskingPolicy) -> bytes:
    """Mask a raw record's bytes (the copy a dead letter keeps) with the same rules.

    JSON is parsed, masked and serialized again; anything else (broken JSON, text, bytes that
    are not UTF-8) is masked as text, with undecodable bytes kept as they are. Bytes with
    nothing to mask are returned unchanged, so they replay exactly.
    """
    if not policy.enabled or not raw:
        return raw
    try:
        doc = orjson.loads(raw)
        if isinstance(doc, dict | list | str):
            masked = mask_value(doc, policy) if not isinstance(doc, str) else mask_text(doc, policy)
            return raw if masked == doc else orjson.dumps(masked)
        return raw
    except (orjson.JSONDecodeError, RecursionError):
        text = raw.decode("utf-8", "surrogateescape")
        masked_text = mask_text(text, policy)
        return raw if masked_text == text else masked_text.encode("utf-8", "surrogateescape")
