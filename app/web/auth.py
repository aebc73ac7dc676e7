"""Bearer-token authentication for the web view: named principals with a read or admin role.

Tokens come from three settings:

- `VIGIL_TOKENS`: named tokens, a comma list of `principal:role:token`, e.g.
  `alice:admin:3f9c...,ci-payments:read:a71e...`. `principal` is letters, digits, `.`, `_`,
  `@`, `-` (starting with a letter or digit, at most 64 characters); `role` is `read` or
  `admin` (admin implies read); `token` is everything after the second colon, printable ASCII
  without spaces or commas.
- `VIGIL_READ_TOKENS` / `VIGIL_ADMIN_TOKENS` (comma lists of bare tokens, kept for existing
  deployments): their principals are `read-token-N` / `admin-token-N`, N the token's position
  in its list from 1 (the principal never reveals anything about the token).

The principal is who the audit trail and silences name: identities come from the token, never
from a header or a request body. A token listed twice is a configuration error (ValueError at
startup). With no token configured every API request is refused.
"""

from __future__ import annotations

import hmac
import re
from dataclasses import dataclass

from app.settings import Settings

ROLES = ("read", "admin")
PRINCIPAL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
_TOKEN = re.compile(r"^[\x21-\x7e]+$")  # printable ASCII, no spaces


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a token belongs to, and what it may do."""

    name: str
    role: str

    def allows(self, needed: str) -> bool:
        """True when the role covers `needed` (`read` or `admin`)."""
        return self.role == "admin" or needed == "read"


@dataclass(frozen=True, slots=True)
class TokenAuth:
    """Checks `Authorization: Bearer <token>` headers against the configured tokens."""

    tokens: tuple[tuple[bytes, Principal], ...]

    @classmethod
    def from_settings(cls, settings: Settings) -> TokenAuth:
        """Tokens from `VIGIL_TOKENS`, `VIGIL_ADMIN_TOKENS` and `VIGIL_READ_TOKENS`; blanks are
        ignored, a malformed entry or a token listed twice raises ValueError."""
        entries: list[tuple[str, Principal]] = []
        for entry in (e.strip() for e in settings.tokens.split(",")):
            if not entry:
                continue
            parts = entry.split(":", 2)
            if len(parts) != 3:
                raise ValueError("VIGIL_TOKENS: each entry is principal:role:token")
            name, role, token = parts
            if not PRINCIPAL.match(name):
                raise ValueError(f"VIGIL_TOKENS: invalid principal {name!r}")
            if role not in ROLES:
                raise ValueError(f"VIGIL_TOKENS: {name}: role must be read or admin")
            entries.append((token, Principal(name, role)))
        for role, value in (("admin", settings.admin_tokens), ("read", settings.read_tokens)):
            listed = [t.strip() for t in value.split(",") if t.strip()]
            entries += [(t, Principal(f"{role}-token-{i}", role)) for i, t in enumerate(listed, 1)]
        seen: set[str] = set()
        for token, principal in entries:
            if not _TOKEN.match(token):
                raise ValueError(
                    f"token of {principal.name}: printable ASCII without spaces or commas"
                )
            if token in seen:
                raise ValueError(f"token of {principal.name} is listed more than once")
            seen.add(token)
        return cls(tuple((token.encode(), principal) for token, principal in entries))

    def principal_of(self, authorization: str | None) -> Principal | None:
        """The principal of an `Authorization` header value, or None (no or unknown token)."""
        if not authorization or authorization[:7].lower() != "bearer ":
            return None
        # Bytes, not str: compare_digest refuses non-ASCII str; surrogates survive the encode.
        token = authorization[7:].strip().encode("utf-8", "surrogateescape")
        found = None
        for known, principal in self.tokens:  # every token compared: no early exit
            if hmac.compare_digest(token, known) and token:
                found = principal
        return found
