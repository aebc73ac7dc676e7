"""The web API through real workers: auth, Faust's /table and /router endpoints off, and key
lookups routed to the owning worker so that either of two workers answers for any key."""

from __future__ import annotations

import time

import aiohttp
import pytest

from app.replay import file_family
from app.sources.files import file_records
from tests.fixture_counts import FIXTURE_EVENT_COUNTS
from tests.integration.harness import run_sync

pytestmark = pytest.mark.integration

READ, ADMIN = "read-token-for-tests", "admin-token-for-tests"
TOKENS = {"VIGIL_READ_TOKENS": READ, "VIGIL_ADMIN_TOKENS": ADMIN}
FIXTURES = (
    "falco/falco-test-single_rule_with_cat_write.jsonl",
    "k8s-audit/audit2rbac-demo.jsonl",
    "github/workflow_run.completed.failure.json",
    "gitlab/pipeline.json",
    "cloudtrail/stratus-aws.defense-evasion.cloudtrail-stop.json",
    "alertmanager/prometheus-msteams-large-19-alerts.json",
)


async def _get(url: str, token: str | None = None, method: str = "GET", json=None):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, url, headers=headers, json=json) as response,
    ):
        body = await response.json(content_type=None) if response.status != 404 else None
        return response.status, body


def get(url: str, token: str | None = None, **kwargs):
    return run_sync(_get(url, token, **kwargs))


def wait_for(predicate, timeout_s: float = 60.0):
    """Poll `predicate` until it returns a truthy value or the deadline passes."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(0.5)
    raise AssertionError("condition not met before the deadline")


def _ready(port: int) -> bool:
    try:
        status, body = get(f"http://127.0.0.1:{port}/health/ready")
    except aiohttp.ClientError:
        return False
    # Ready means: the first assignment was recovered, and no rebalance or recovery runs now.
    busy = body["rebalancing"] or body["recovering"]
    assert (status == 200) == (body["ready"] and body["assigned"] and not busy), body
    return status == 200


def test_two_workers_answer_for_every_key(workers, fixtures_dir):
    produced = 0
    expected = sum(FIXTURE_EVENT_COUNTS[name] for name in FIXTURES)
    for name in FIXTURES:
        path = fixtures_dir / name
        raws = [raw for _, raw in file_records(path)]
        produced += workers.produce(workers.topic(f"raw:{file_family(path)}"), raws)
    first = workers.start("w1", **TOKENS)
    second = workers.start("w2", **TOKENS)
    ports = [first.web_port, second.web_port]
    for port in ports:
        wait_for(lambda port=port: _ready(port))

    base = [f"http://127.0.0.1:{port}" for port in ports]
    assert get(f"{base[0]}/api/tables/entities")[0] == 401
    assert get(f"{base[0]}/api/tables/entities", "wrong-token")[0] == 401
    assert get(f"{base[0]}/table/entity-stats")[0] == 404
    # Faust's /router/ is off; routing below goes through app.router's in-process metadata
    assert get(f"{base[0]}/router/")[0] == get(f"{base[0]}/router/topics", READ)[0] == 404
    status, _ = get(f"{base[0]}/api/silences", READ, method="POST", json={})
    assert status == 403

    def both_workers_assigned():
        owners = [get(f"{b}/api/pipeline", READ)[1]["event_partitions"] for b in base]
        return (
            owners
            if all(owners) and sorted(p for ps in owners for p in ps) == [0, 1, 2, 3]
            else None
        )

    wait_for(both_workers_assigned, 90)

    def all_entities():
        status, body = get(f"{base[0]}/api/tables/entities?limit=500", READ)
        entities = {row["key"]: row["value"] for row in body["items"]} if status == 200 else {}
        return entities if sum(v["events"] for v in entities.values()) == expected else None

    try:
        entities = wait_for(all_entities, 90)
    except AssertionError:
        for b in base:  # what each worker holds, for the failure report
            status, body = get(f"{b}/api/tables/entities?local=1&limit=500", READ)
            counts = {r["key"]: r["value"]["events"] for r in body.get("items", [])}
            owned = get(f"{b}/api/pipeline", READ)[1].get("event_partitions")
            print(f"{b}: partitions {owned}, {sum(counts.values())} events: {counts}")
        raise
    owners_seen = set()
    for entity, value in entities.items():
        answers = [get(f"{b}/api/tables/entities?key={entity}", READ) for b in base]
        assert [a[0] for a in answers] == [200, 200], entity
        assert answers[0][1]["value"] == answers[1][1]["value"] == value
        assert answers[0][1]["worker"] == answers[1][1]["worker"]
        owners_seen.add(answers[0][1]["worker"])
    assert len(owners_seen) == 2, "the entities spread over both workers"
    listed = get(f"{base[1]}/api/tables/entities?limit=500", READ)[1]
    assert {row["key"] for row in listed["items"]} == set(entities)
