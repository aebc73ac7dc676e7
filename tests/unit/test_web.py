"""The web view's handlers through aiohttp's test client (no broker): every endpoint
authenticated or public on purpose, Faust's /router/ off, 4xx (never 500) for bad input, the
gate's request schema and unknown services, and identities from the token's principal."""

from __future__ import annotations

import time

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

import app.web.views as views
from agents.risk import stage
from app.catalogue import Catalogue
from app.faust_app import app
from app.model.events import format_time
from app.settings import Settings
from app.web.auth import Principal, TokenAuth
from app.web.schema import MAX_BODY_BYTES, BadRequest, gate_change
from tables.risk.model import new_subject

ALICE, CI, LEGACY_READ, LEGACY_ADMIN = "tok-alice", "tok-ci", "legacy-read", "legacy-admin"
AUTH = Settings(
    tokens=f"alice:admin:{ALICE},ci-payments:read:{CI}",
    read_tokens=LEGACY_READ,
    admin_tokens=LEGACY_ADMIN,
)
PUBLIC = {"/", "/health/live", "/health/ready", "/metrics"}
SILENCE = {"matchers": ['alertname="x"'], "comment": "why"}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class Web:
    """The app's routes on a fresh aiohttp app, with tables and the control topic faked."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.sent: list[dict] = []
        self.silences: dict[str, dict] = {}
        self.risk: dict[str, dict] = {}
        monkeypatch.setattr(views, "AUTH", TokenAuth.from_settings(AUTH))
        monkeypatch.setattr(views, "silences", self.silences)
        monkeypatch.setattr(views, "risk_state", self.risk)
        monkeypatch.setattr(views, "_owner_of_partition", lambda topic, partition: views._me())
        monkeypatch.setattr(stage, "services", {"payments": {"name": "payments"}})

        async def send(command: dict) -> None:
            self.sent.append(command)

        monkeypatch.setattr(views, "_send_control", send)
        app.web.blueprints.apply(app.web)  # Faust's own blueprints, as a started worker has
        self.app = web.Application()
        self.paths = set()
        for route in app.web.web_app.router.routes():
            self.paths.add((route.method, route.resource.canonical))
            self.app.router.add_route(route.method, route.resource.canonical, route.handler)

    @property
    def audits(self) -> list[dict]:
        return [c for c in self.sent if c["command"] == "audit.append"]


@pytest.fixture
async def client(monkeypatch):
    server = Web(monkeypatch)
    async with TestClient(TestServer(server.app)) as test_client:
        test_client.web = server
        yield test_client


async def call(client, method: str, path: str, token: str | None = ALICE, **kwargs):
    headers = {**(bearer(token) if token else {}), **kwargs.pop("headers", {})}
    async with client.request(method, path, headers=headers, **kwargs) as response:
        return response.status, await response.json(content_type=None)


# ---- auth ---------------------------------------------------------------------------------


async def test_every_endpoint_but_the_public_ones_needs_a_token(client):
    paths = client.web.paths
    assert not any(path.startswith(("/router", "/table", "/graph")) for _, path in paths)
    for method, path in sorted(paths):
        if method == "HEAD" or path in PUBLIC:
            continue
        url = path.replace("{name}", "entities").replace("{service}", "payments")
        url = url.replace("{silence_id}", "s1")
        status, body = await call(client, method, url, token=None)
        assert status == 401, (method, path)
        assert "unauthorized" in body["error"]
    for path in ("/health/live", "/metrics", "/"):
        async with client.get(path) as response:
            assert response.status == 200, path


async def test_faust_router_is_off(client):
    assert app.conf.web_router_enabled is False
    for path in ("/router/", "/router/topics", "/router/entity-stats/"):
        async with client.get(path, headers=bearer(ALICE)) as response:
            assert response.status == 404, path


async def test_tokens_wrong_non_ascii_and_roles(client):
    assert (await call(client, "GET", "/api/tables", token="nope"))[0] == 401
    assert (await call(client, "GET", "/api/tables", token="tök€n"))[0] == 401
    assert (await call(client, "GET", "/api/tables", token=f"{ALICE}é"))[0] == 401
    for token in (ALICE, CI, LEGACY_READ, LEGACY_ADMIN):
        assert (await call(client, "GET", "/api/tables", token=token))[0] == 200
    status, body = await call(client, "POST", "/api/silences", token=CI, json=SILENCE)
    assert status == 403 and "admin" in body["error"]


def test_named_and_legacy_principals():
    auth = TokenAuth.from_settings(AUTH)
    assert auth.principal_of(f"Bearer {ALICE}") == Principal("alice", "admin")
    assert auth.principal_of(f"bearer {CI}") == Principal("ci-payments", "read")
    assert auth.principal_of(f"Bearer {LEGACY_READ}") == Principal("read-token-1", "read")
    assert auth.principal_of(f"Bearer {LEGACY_ADMIN}") == Principal("admin-token-1", "admin")
    assert auth.principal_of("Bearer t\udcff") is None  # surrogate-escaped bytes
    assert auth.principal_of("Bearer ") is None and auth.principal_of(ALICE) is None
    for bad in ("alice:admin", "al ice:admin:t", "alice:root:t", "a:read:t,b:admin:t"):
        with pytest.raises(ValueError):
            TokenAuth.from_settings(Settings(tokens=bad))
    with pytest.raises(ValueError, match="more than once"):
        TokenAuth.from_settings(Settings(tokens="a:read:t", admin_tokens="t"))


# ---- tables and silences ------------------------------------------------------------------


async def test_unknown_table_is_404_with_the_list(client):
    status, body = await call(client, "GET", "/api/tables/nope")
    assert status == 404 and "entities" in body["tables"]
    status, body = await call(client, "GET", "/api/tables/entities?limit=lots")
    assert status == 400


async def test_silence_created_in_the_principals_name_within_bounds(client):
    start = format_time(int(time.time() * 1000))
    body = {**SILENCE, "startsAt": start, "endsAt": start, "createdBy": "someone-else"}
    status, answer = await call(client, "POST", "/api/silences", json=body)
    assert status == 202, answer
    assert answer["silence"]["createdBy"] == "alice"
    assert client.web.sent[-1]["silence"]["createdBy"] == "alice"
    cases = {
        "endsAt": {**body, "endsAt": "2999-01-01T00:00:00Z"},
        "comment": {**body, "comment": "x" * 5000},
        "matchers": {**body, "matchers": [f'a{i}="x"' for i in range(40)]},
        "value": {**body, "matchers": ['alertname="' + "x" * 2000 + '"']},
    }
    for field_name, bad in cases.items():
        status, answer = await call(client, "POST", "/api/silences", json=bad)
        assert status == 400, field_name
        assert answer["error"].startswith("silence:"), answer
    for raw in (b"", b"[]", b"{", b'"x"'):
        status, answer = await call(client, "POST", "/api/silences", data=raw)
        assert status == 400 and answer["error"], raw
    assert len(client.web.sent) == 1


async def test_expire_names_the_principal_and_refuses_non_objects(client):
    client.web.silences["s1"] = {"id": "s1"}
    status, answer = await call(client, "POST", "/api/silences/s1/expire", data=b"[]")
    assert status == 400 and "JSON object" in answer["error"]
    status, answer = await call(client, "POST", "/api/silences/s1/expire", data=b"{")
    assert status == 400
    status, answer = await call(client, "POST", "/api/silences/nope/expire")
    assert status == 404
    status, answer = await call(
        client, "POST", "/api/silences/s1/expire", json={"by": "someone-else"}
    )
    assert status == 202 and answer["command"]["by"] == "alice"
    status, answer = await call(client, "POST", "/api/silences/s1/expire", token=LEGACY_ADMIN)
    assert status == 202 and answer["command"]["by"] == "admin-token-1"


# ---- the gate -----------------------------------------------------------------------------


async def test_gate_audits_the_principal_not_the_header(client):
    status, answer = await call(
        client, "GET", "/gate/payments", token=CI, headers={"X-Vigil-Caller": "release-bot"}
    )
    assert status == 200 and answer["decision"] == "allow", answer
    (audit,) = client.web.audits
    assert audit["who"] == "ci-payments"
    assert audit["details"]["claimed_by"] == "release-bot"
    status, _ = await call(client, "GET", "/gate/payments", headers={"X-Vigil-Caller": "a\tb"})
    assert status == 400


async def test_gate_unknown_service_gets_the_configured_decision(client, monkeypatch):
    status, answer = await call(client, "POST", "/gate/nobody", json={"commit_sha": "abc1234"})
    assert status == 200
    assert answer["decision"] == "warn" and answer["score"] == 0
    assert [r["code"] for r in answer["reasons"]] == ["unknown_service"]
    assert client.web.audits[-1]["what"] == "gate.warn"
    monkeypatch.setattr(views, "settings", Settings(gate_unknown_decision="block"))
    assert (await call(client, "GET", "/gate/nobody"))[1]["decision"] == "block"
    # known from its risk state alone (no catalogue entry): judged, not unknown
    client.web.risk["legacy"] = new_subject("legacy", "service")
    status, answer = await call(client, "GET", "/gate/legacy")
    assert answer["decision"] == "allow" and answer["reasons"] == []
    with pytest.raises(ValueError, match="VIGIL_GATE_UNKNOWN_DECISION"):
        Settings(gate_unknown_decision="maybe")


@pytest.mark.parametrize(
    "service",
    [".hidden", "..%2F..%2Fadmin", "a" * 7000, "pay%00ments", "pay%0Aments", "-x", "p%20q"],
)
async def test_gate_refuses_bad_service_names(client, service):
    status, answer = await call(client, "GET", f"/gate/{service}")
    assert status in (400, 404), service  # 404: the router refused the path itself
    if status == 400:
        assert "service name" in answer["error"]
    assert client.web.audits == []


async def test_gate_checks_the_token_before_the_body(client):
    status, _ = await call(client, "POST", "/gate/payments", token=None, data=b"{not json")
    assert status == 401
    status, _ = await call(client, "POST", "/gate/payments", data=b"{not json")
    assert status == 400


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"lines_changed": "lots"}, "lines_changed"),
        ({"files_changed": -5}, "files_changed"),
        ({"files_changed": True}, "files_changed"),
        ({"lines_changed": 10**12}, "lines_changed"),
        ({"commit_sha": "xyz"}, "commit_sha"),
        ({"commit_sha": "a" * 65}, "commit_sha"),
        ({"environment": "prod uction"}, "environment"),
        ({"branch": "a\nb"}, "branch"),
        ({f"k{i}": i for i in range(20_000)}, "unknown field"),
        ({"commit_sha": "abc1234", "extra": 1}, "unknown field"),
        ([], "JSON object"),
    ],
)
async def test_gate_request_schema(client, body, reason):
    status, answer = await call(client, "POST", "/gate/payments", json=body)
    assert status in (400, 413), answer
    assert reason in answer["error"] or status == 413
    assert client.web.audits == []


async def test_gate_accepts_a_valid_change_and_bounds_the_body(client):
    change = {
        "commit_sha": "c" * 40,
        "environment": "production",
        "branch": "feature/x",
        "artifact": "registry.example.com/payments:1.2.3",
        "lines_changed": 120,
        "files_changed": 4,
    }
    status, answer = await call(client, "POST", "/gate/payments", json=change)
    assert status == 200, answer
    assert client.web.audits[-1]["details"]["change"] == change
    big = b'{"branch": "' + b"x" * MAX_BODY_BYTES + b'"}'
    status, answer = await call(client, "POST", "/gate/payments", data=big)
    assert status == 413 and "larger than" in answer["error"]
    assert len(client.web.audits) == 1


def test_catalogue_names_follow_the_gates_syntax():
    assert Catalogue.from_dict({"services": [{"name": "cluster-nodes.v2_a"}]}).names() == {
        "cluster-nodes.v2_a"
    }
    for bad in ("../x", "a b", "-x", "x" * 129, "pay\nments"):
        with pytest.raises(ValueError, match="'name'"):
            Catalogue.from_dict({"services": [{"name": bad}]})


def test_gate_change_schema_directly():
    assert gate_change(None) is None
    assert gate_change({}) == {}
    assert gate_change({"additions": 0, "deletions": 3}) == {"additions": 0, "deletions": 3}
    with pytest.raises(BadRequest, match="changes_count"):
        gate_change({"changes_count": 1.5})


async def test_no_handler_answers_500_to_garbage(client):
    """Odd bodies and queries against every route that takes input: 4xx, never 5xx."""
    client.web.silences["s1"] = {"id": "s1"}
    for method, path in sorted(client.web.paths):
        if method == "HEAD" or path in PUBLIC or (method == "GET" and "{" not in path):
            continue
        url = path.replace("{name}", "nope").replace("{service}", "x%00")
        url = url.replace("{silence_id}", "s1")
        for data in (b"[]", b"\xff\xfe", b"null", b"1e999"):
            async with client.request(
                method, url + "?limit=-1&offset=x", headers=bearer(ALICE), data=data
            ) as response:
                assert response.status < 500, (method, path, data, response.status)
