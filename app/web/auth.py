"""Bearer-token authentication for the web view: read-only and admin roles.

Tokens come from `VIGIL_READ_TOKENS` and `VIGIL_ADMIN_TOKENS` (comma lists). With none
configured every API request is refused: nothing from a table is served without auth.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from app.settings import Settings

ROLES = ("read", "admin")


@dataclass(frozen=True, slots=True)
class TokenAuth:
    """Checks `Authorization: Bearer <token>` headers against configured tokens."""

    read_tokens: tuple[str, ...]
    admin_tokens: tuple[str, ...]

    @classmethod
    def from_settings(cls, settings: Settings) -> TokenAuth:
        """Tokens from settings; blanks are ignored."""

        def split(value: str) -> tuple[str, ...]:
            return tuple(t.strip() for t in value.split(",") if t.strip())

        return cls(split(settings.read_tokens), split(settings.admin_tokens))

    def role_of(self, authorization: str | None) -> str | None:
        """`admin`, `read` or None for an Authorization header value."""
        if not authorization or not authorization.startswith("Bearer "):
            return None
        token = authorization[len("Bearer ") :].strip()
        if not token:
            return None
        if any(hmac.compare_digest(token, t) for t in self.admin_tokens):
            return "admin"
        if any(hmac.compare_digest(token, t) for t in self.read_tokens):
            return "read"
        return None

    def allows(self, authorization: str | None, needed: str) -> bool:
        """True when the header's role covers `needed` (`read` or `admin`)."""
        role = self.role_of(authorization)
        return role == "admin" or (role == "read" and needed == "read")
