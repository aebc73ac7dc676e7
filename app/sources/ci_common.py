"""Helpers shared by the GitHub and GitLab adapters, so that both providers emit the same
`ci_status` severities, event-time fields, change counts, finding keys and ref attributes."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from typing import Any

from app.model.events import parse_time
from app.sources.errors import ErrorCode, NormalizeError

#: Job or workflow names that look like a security job: their failures rank high.
SECURITY_NAME = re.compile(
    r"security|scan|codeql|sast|dast|trivy|snyk|grype|semgrep|gitleaks|secret|dependency|vuln",
    re.IGNORECASE,
)


def ci_severity(ci_status: str | None, *names: str | None) -> str:
    """Shared: severity of a run/job/deployment from its `ci_status` and names.

    failure -> medium (high when a name looks like a security job), cancelled -> low,
    anything else (success, in progress, skipped, ...) -> info.
    """
    if ci_status == "failure":
        return "high" if any(n and SECURITY_NAME.search(n) for n in names) else "medium"
    if ci_status == "cancelled":
        return "low"
    return "info"


def first_time(candidates: Iterable[tuple[str, Any]]) -> tuple[int, str]:
    """Shared: the first present `(field, value)` as epoch ms plus the field's name.

    A present but unparseable value is INVALID_VALUE; none present is MISSING_FIELD.
    """
    names = []
    for name, value in candidates:
        names.append(name)
        if value is None or value == "":
            continue
        try:
            return parse_time(value), name
        except ValueError:
            raise NormalizeError(
                ErrorCode.INVALID_VALUE, f"'{name}' is not a timestamp: {value!r}"
            ) from None
    raise NormalizeError(ErrorCode.MISSING_FIELD, f"no usable time (looked for {', '.join(names)})")


def duration_s(start: Any, end: Any) -> float | None:
    """Shared: seconds from `start` to `end` when both parse and are ordered, else None."""
    try:
        begin, finish = parse_time(start), parse_time(end)
    except ValueError:
        return None
    return (finish - begin) / 1000 if finish >= begin else None


def change_counts(commits: list[Any]) -> dict[str, int]:
    """Shared: distinct added/modified/removed paths over a push's commits."""
    paths: dict[str, set[str]] = {"added": set(), "modified": set(), "removed": set()}
    for commit in commits:
        if not isinstance(commit, dict):
            continue
        for key, seen in paths.items():
            files = commit.get(key)
            if isinstance(files, list):
                seen.update(f for f in files if isinstance(f, str))
    return {f"files_{key}": len(seen) for key, seen in paths.items()}


def finding_key(provider: str, *parts: Any) -> str:
    """Shared: a stable finding identity (SHA-256 hex); never built from severity."""
    return hashlib.sha256("|".join([provider, *map(str, parts)]).encode()).hexdigest()


def split_ref(ref: str | None) -> dict[str, str]:
    """Shared: `refs/heads/x` -> {"branch": x}; `refs/tags/x` -> {"tag": x}."""
    if not ref:
        return {}
    if ref.startswith("refs/tags/"):
        return {"tag": ref.removeprefix("refs/tags/")}
    return {"branch": ref.removeprefix("refs/heads/")}


def compact(attributes: dict[str, Any]) -> dict[str, Any]:
    """Shared: drop absent (None) attributes."""
    return {key: value for key, value in attributes.items() if value is not None}
