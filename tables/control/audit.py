"""A tamper-evident audit trail: every record carries the hash of the one before it.

Records are appended by one writer (the control agent, on the single-partition control topic),
so the chain is a single sequence: `hash = sha256(prev_hash + canonical JSON of the record)`.
Changing, dropping or reordering any record breaks every hash after it (`verify_chain`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

import orjson

GENESIS = "0" * 64


def append(
    head: dict[str, Any] | None,
    who: str,
    what: str,
    when: str,
    why: str,
    details: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The next audit record after `head` (None for the first one)."""
    previous = head["hash"] if head else GENESIS
    seq = head["seq"] + 1 if head else 1
    body = {
        "seq": seq,
        "who": who,
        "what": what,
        "when": when,
        "why": why,
        "details": details or {},
        "prev_hash": previous,
    }
    return {**body, "hash": record_hash(body)}


def record_hash(body: dict[str, Any]) -> str:
    """SHA-256 over the previous hash and the record's canonical JSON (sorted keys)."""
    canonical = orjson.dumps(
        {k: v for k, v in body.items() if k != "hash"}, option=orjson.OPT_SORT_KEYS
    )
    return hashlib.sha256(body["prev_hash"].encode() + canonical).hexdigest()


def verify_chain(records: Iterable[dict[str, Any]]) -> tuple[bool, int, str]:
    """(intact, records checked, problem) for records in order."""
    previous, expected_seq, checked = GENESIS, 1, 0
    for record in records:
        if record.get("prev_hash") != previous:
            return False, checked, f"record {record.get('seq')} does not follow its predecessor"
        if record.get("seq") != expected_seq:
            return False, checked, f"expected seq {expected_seq}, found {record.get('seq')}"
        if record_hash(record) != record.get("hash"):
            return False, checked, f"record {record.get('seq')} was altered"
        previous, expected_seq, checked = record["hash"], expected_seq + 1, checked + 1
    return True, checked, ""
