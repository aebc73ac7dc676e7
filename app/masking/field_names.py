"""Which dict keys hold secrets: the whole value under a secret-named key (`*password*`,
`*token*`, ... but not `secret_id` or `token_type`), and under other `*key*` names a value that
looks like a random token."""

from __future__ import annotations

import functools
import math
import re
from collections import Counter

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
