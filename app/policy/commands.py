"""`vigil policy test|eval`: run a policy set's own tests, or its policies on one document.

`test DIR...` loads the set (every load check, tests not yet required) and prints one line per
`test_*` rule, OPA's way (`PASS` / `FAIL` / `ERROR`), then `PASS: n/m`; exit 1 when any test
does not pass, 2 when the set does not load.

`eval --input FILE [--policies DIR]...` evaluates the bundled set, `VIGIL_POLICY_DIR` and the
given directories on one document and prints one JSON line per policy with messages; the
document is recognised by its shape: a Terraform plan (`terraform show -json`), a Kubernetes
object or AdmissionReview (reviewed as a CREATE against every constraint that matches it),
or canonical events (one object, a list, or JSON lines, as `vigil normalize` prints them).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import orjson
import yaml

from app.policy.inputs import review_of
from app.policy.loader import Policy, PolicyError, PolicySet, load_policies, run_policy_tests


def _print(record: Any) -> None:
    sys.stdout.write(orjson.dumps(record, option=orjson.OPT_SORT_KEYS).decode() + "\n")


def _error(message: str) -> None:
    sys.stderr.write(orjson.dumps({"error": message}).decode() + "\n")


def run_tests(dirs: Sequence[str]) -> int:
    """Print every test's outcome; the exit status (0 all pass, 1 a failure, 2 load error)."""
    try:
        policies = load_policies(dirs, run_tests=False)
    except PolicyError as exc:
        _error(str(exc))
        return 2
    results = run_policy_tests(policies.modules)
    for file, name, status in results:
        word = status.split(":", 1)[0].upper()
        detail = status.split(":", 1)[1].strip() if ":" in status else ""
        sys.stdout.write(f"{word}: {name} ({file})" + (f": {detail}" if detail else "") + "\n")
    passed = sum(1 for *_, status in results if status == "pass")
    sys.stdout.write(f"{'PASS' if passed == len(results) else 'FAIL'}: {passed}/{len(results)}\n")
    return 0 if passed == len(results) else 1


def evaluate_file(path: str, dirs: Sequence[str | Path]) -> int:
    """Print the violations of one document; exit 0 when none, 1 with violations, 2 on errors."""
    try:
        policies = load_policies(dirs)
        documents = _documents(Path(path).read_bytes())
    except (PolicyError, OSError, ValueError) as exc:
        _error(str(exc))
        return 2
    found = 0
    for document in documents:
        for policy, messages in violations(policies, document):
            found += 1
            _print(
                {
                    "policy": policy.id,
                    "title": policy.title,
                    "severity": policy.severity,
                    "file": policy.file,
                    "controls": policy.custom.get("controls") or {},
                    "messages": list(messages),
                }
            )
    return 1 if found else 0


def violations(policies: PolicySet, document: Any) -> Iterator[tuple[Policy, tuple[str, ...]]]:
    """(policy, messages) for each policy with something to say about the document."""
    kind = shape_of(document)
    for policy in policies.policies:
        if kind == "event":
            if document.get("type") not in policy.types:
                continue
            messages = policies.check(policy, document)
        elif kind != policy.shape:
            continue
        elif kind == "kubernetes":
            review = document.get("request") if document.get("kind") == "AdmissionReview" else None
            review = review or review_of(document)
            if policy.constraint is None or not policy.constraint.matches(review):
                continue
            messages = policies.messages(
                policy, {"review": review, "parameters": policy.constraint.parameters}
            )
        else:
            messages = policies.messages(policy, document)
        if messages:
            yield policy, messages


def shape_of(document: Any) -> str:
    """`terraform`, `kubernetes` or `event`; ValueError for anything else."""
    if isinstance(document, dict):
        if "resource_changes" in document or "planned_values" in document:
            return "terraform"
        if {"type", "entity", "attributes"} <= document.keys():
            return "event"
        if "apiVersion" in document and "kind" in document:
            return "kubernetes"
    raise ValueError("input is neither a Terraform plan, a Kubernetes object nor a canonical event")


def _documents(raw: bytes) -> list[Any]:
    """One JSON or YAML document, a JSON list of them, or JSON lines."""
    try:
        doc = orjson.loads(raw)
        return doc if isinstance(doc, list) else [doc]
    except orjson.JSONDecodeError:
        pass
    try:
        return [orjson.loads(line) for line in raw.splitlines() if line.strip()]
    except orjson.JSONDecodeError:
        return [d for d in yaml.safe_load_all(raw) if d is not None]
