"""Secrets and personal data found by context, the checks that confirm them, and `STEPS`: every
masking pass in order.

Context: URL credentials, named and bare AWS secret keys, bearer and basic auth, secret flags
and assignments, registry and MySQL logins. Personal data: card numbers (issuer prefix, length,
Luhn), US SSNs, e-mail addresses, and IPv4 addresses (`_IPV4`, applied only when the policy
asks).
"""

from __future__ import annotations

import functools
import itertools
import re
from collections.abc import Callable

from app.masking.rules import load_rules
from app.masking.steps import MASK, _Step

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
