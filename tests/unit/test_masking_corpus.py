"""Masking corpus: every kind of secret the review found passing unmasked, in every place a Falco
alert can carry it, through the real Falco adapter; and in dead letters.

Each case is (kind, text placed in the record, clear values that must not survive). Places:
(a) the alert's `output` string, (b) `output_fields["proc.cmdline"]`, (c) a key of
`output_fields`, (d) a record that fails to parse (its dead letter keeps masked bytes).
"""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import orjson
import pytest

from app.dead_letters import dead_letter
from app.masking import MASK, MaskingPolicy, mask_raw, mask_text, mask_value
from app.model.outputs import Origin
from app.replay import file_family
from app.sources.errors import ErrorCode, NormalizeError
from app.sources.files import file_records
from app.sources.normalize import Normalizer
from tests.fixture_counts import FIXTURE_EVENT_COUNTS

ON = MaskingPolicy()

SLACK_PATH = "T0123ABCD/B0456EFGH/Zx9Qw8Er7Ty6Ui5Op4As3Df2"
GCP_KEY = "AIzaSyD7Kq2Lm9Np4Rs6Tv8Wz1Yb3Cd5Fg7Hj9K"
STRIPE = "sk_live_4eC39HqLyjWDarjtT1zdp7dc"
NPM = "npm_Ab3De6Gh9Jk2Mn5Pq8St1Vw4Yz7Bc0Ef3Hi6"
GITLAB = "glpat-Xy7zAb3Cd5Ef7Gh9Ij1K"
AZURE_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)
AWS_SECRET = "Zx81kQ9pLm2Vb7Rt5Yw3Nc6Hd4Jf0SaQe8Uo1Ti/"
GITHUB = "ghp_16C7e42F292c6912E7710c838347Ae178B4a"

#: (kind, text placed in the record, clear values that must not survive)
CORPUS: list[tuple[str, str, tuple[str, ...]]] = [
    (
        "slack-webhook",
        f"curl -d @m.json https://hooks.slack.com/services/{SLACK_PATH}",
        (SLACK_PATH,),
    ),
    ("card-spaced", "pay 4111 1111 1111 1111 now", ("4111 1111 1111 1111",)),
    ("card", "card=4111111111111111", ("4111111111111111",)),
    ("card-dashed", "mc 5500-0000-0000-0004", ("5500-0000-0000-0004",)),
    ("amex", "amex 3782 822463 10005", ("3782 822463 10005",)),
    ("ssn", "ssn 123-45-6789 on file", ("123-45-6789",)),
    ("gcp-api-key", f"gcloud --key {GCP_KEY}", (GCP_KEY,)),
    ("stripe", f"STRIPE={STRIPE} ./charge", (STRIPE, STRIPE.removeprefix("sk_live_"))),
    ("npm", f"npm config set //registry.npmjs.org/:_authToken {NPM}", (NPM,)),
    ("gitlab", f"git clone https://oauth2:{GITLAB}@gitlab.com/x/y.git", (GITLAB,)),
    (
        "azure-storage",
        f"DefaultEndpointsProtocol=https;AccountName=acct;AccountKey={AZURE_KEY};"
        "EndpointSuffix=core.windows.net",
        (AZURE_KEY, AZURE_KEY[:40]),
    ),
    (
        "docker-login-p",
        "docker login -u ci -p Hunter2Registry reg.example.com",
        ("Hunter2Registry",),
    ),
    (
        "docker-login-password",
        "docker login --password Hunter3Registry reg.example.com",
        ("Hunter3Registry",),
    ),
    ("passphrase", "openssl rsa -passin passphrase=CorrectHorseBattery", ("CorrectHorseBattery",)),
    ("aws-secret-bare", f"aws configure import {AWS_SECRET} done", (AWS_SECRET,)),
    ("json-in-string", '{"client_secret": "Js0nInner5ecret", "user": "bob"}', ("Js0nInner5ecret",)),
    (
        "escaped-json",
        'curl -d "{\\"client_secret\\": \\"Esc4ped5ecret\\"}" https://auth.example.com',
        ("Esc4ped5ecret",),
    ),
    ("db_password", "db_password=DbPa55word ./migrate", ("DbPa55word",)),
    ("secretKey", "java -DsecretKey=SecretKeyValue9 -jar app.jar", ("SecretKeyValue9",)),
    ("apiToken", "apiToken: ApiTokenValue9", ("ApiTokenValue9",)),
    ("DB_PASSWORD", "env DB_PASSWORD=UpperDbPa55 psql", ("UpperDbPa55",)),
    ("github", f"git push https://{GITHUB}@github.com/x/y", (GITHUB,)),
]
KINDS = [case[0] for case in CORPUS]


def _falco_record(fixtures_dir: Path) -> dict:
    path = fixtures_dir / "falco" / "falco-test-single_rule_with_cat_write.jsonl"
    _, raw = next(iter(file_records(path)))
    return orjson.loads(raw)


def _wire(record: dict) -> str:
    """The record through the real Falco adapter (the normalize entry point), serialized."""
    events = Normalizer().normalize(orjson.dumps(record), family="falco")
    assert events
    return orjson.dumps([event.to_dict() for event in events]).decode()


def _assert_gone(wire: str, secrets: tuple[str, ...]) -> None:
    for secret in secrets:
        assert secret not in wire, (secret, wire)
        assert secret.replace("/", "\\/") not in wire


@pytest.mark.parametrize(("kind", "text", "secrets"), CORPUS, ids=KINDS)
def test_secret_in_falco_output_is_masked(fixtures_dir, kind, text, secrets) -> None:
    """(a) in the alert's `output` string."""
    record = _falco_record(fixtures_dir)
    record["output"] = f"{record['output']} (cmdline={text})"
    _assert_gone(_wire(record), secrets)


@pytest.mark.parametrize(("kind", "text", "secrets"), CORPUS, ids=KINDS)
def test_secret_in_falco_field_is_masked(fixtures_dir, kind, text, secrets) -> None:
    """(b) in `output_fields["proc.cmdline"]`."""
    record = _falco_record(fixtures_dir)
    record["output_fields"]["proc.cmdline"] = text
    _assert_gone(_wire(record), secrets)


@pytest.mark.parametrize(("kind", "text", "secrets"), CORPUS, ids=KINDS)
def test_secret_as_a_dict_key_is_masked(fixtures_dir, kind, text, secrets) -> None:
    """(c) as a key of `output_fields` (and of a nested object)."""
    record = _falco_record(fixtures_dir)
    record["output_fields"][text] = 1
    record["output_fields"]["nested"] = {text: {"x": 1}}
    _assert_gone(_wire(record), secrets)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("db_password", "DbPa55word"),
        ("secretKey", "SecretKeyValue9"),
        ("apiToken", "ApiTokenValue9"),
        ("DB_PASSWORD", "UpperDbPa55"),
        ("X-Auth-Token", "HeaderTok3n"),
        ("client_secret", "Cl1entSecret"),
        ("signing_key", "Zx81kQ9pLm2Vb7Rt5Yw3Nc6Hd4"),
    ],
)
def test_values_under_secret_like_field_names_are_masked(fixtures_dir, name, value) -> None:
    record = _falco_record(fixtures_dir)
    record["output_fields"][name] = value
    wire = _wire(record)
    assert value not in wire
    assert orjson.loads(wire)[0]["attributes"]["output_fields"][name] == MASK


def _broken_records(text: str) -> list[bytes]:
    """Records that fail to parse or to normalize, each holding `text`."""
    escaped = orjson.dumps(text)
    return [
        b'{"rule": "Write below etc", "priority": "Err", "output": ' + escaped,  # cut short
        orjson.dumps({"rule": "r", "priority": "Warning", "output_fields": {"x": text}}),
        orjson.dumps({"unknown": "format", "note": text, text: 1}),
        b"\xff\xfe not utf-8 " + text.encode(),
        text.encode(),  # not JSON at all
    ]


@pytest.mark.parametrize(("kind", "text", "secrets"), CORPUS, ids=KINDS)
def test_secret_in_a_dead_letter_is_masked(kind, text, secrets) -> None:
    """(d) a record that fails to parse: its dead letter keeps masked bytes and the SHA-256 of
    the original."""
    for raw in _broken_records(text):
        with pytest.raises(NormalizeError) as caught:
            Normalizer().normalize(raw, family="falco")
        dead = dead_letter(Origin("vigil.raw.falco", 0, 7), caught.value, raw).value
        kept = base64.b64decode(dead["raw_b64"])
        wire = orjson.dumps(dead).decode() + kept.decode("utf-8", "replace")
        _assert_gone(wire, secrets)
        assert dead["raw_masked"] is True
        assert dead["raw_sha256"] == hashlib.sha256(raw).hexdigest()
        assert dead["raw_bytes"] == len(raw)


def test_a_clean_dead_letter_keeps_the_exact_bytes() -> None:
    raw = b'{"rule": "Write below etc", "priority": "Err'
    with pytest.raises(NormalizeError) as caught:
        Normalizer().normalize(raw, family="falco")
    dead = dead_letter(Origin("vigil.raw.falco", 0, 7), caught.value, raw).value
    assert base64.b64decode(dead["raw_b64"]) == raw
    assert dead["raw_masked"] is False and dead["raw_truncated"] is False


def test_dead_letter_masking_follows_the_policy() -> None:
    raw = f'{{"note": "{STRIPE}"'.encode()
    error = NormalizeError(ErrorCode.MALFORMED_JSON, "invalid JSON")
    clear = dead_letter(Origin("t", 0, 1), error, raw, masking=MaskingPolicy(enabled=False))
    assert base64.b64decode(clear.value["raw_b64"]) == raw
    assert clear.value["raw_masked"] is False
    masked = dead_letter(Origin("t", 0, 1), error, raw)
    assert STRIPE not in base64.b64decode(masked.value["raw_b64"]).decode()
    assert masked.value["id"] == clear.value["id"]  # ids come from the original bytes


@pytest.mark.parametrize(
    "text",
    [
        "key: app",
        "primary_key=id",
        "ts 1700000000000 and 1618474224423478700",  # epoch ms and ns times
        "account 493817265094 at 2024-08-02T09:53:24Z",
        "uuid 5dd59182-3917-421c-9b2c-7c92954b66ee",
        "/apis/apps/v1/namespaces/prod/deployments/checkout",
        "sha1 9400117309c1759c455b54e8d0d1dc2050bb99b2",
        "4111 1111 1111 1112",  # fails the Luhn check
        "000-12-3456 and 666-12-3456",  # never issued as SSNs
        "docker run -p 8080:80 nginx",
        "token_type=bearer",
    ],
)
def test_ordinary_values_stay(text: str) -> None:
    assert mask_text(text, ON) == text


def test_ordinary_field_names_stay() -> None:
    value = {
        "key": "app",
        "primary_key": "id",
        "idempotency_key": "5dd59182-3917-421c-9b2c-7c92954b66ee",
        "finding_key": "c85387f1a38a07dba8776190cb533dab0a7fd7a1c0c03c5edea78a0c433f2a7d",
        "labels": {"app.kubernetes.io/name": "checkout", "rbac.authorization.k8s.io/x": "true"},
        "secret_id": "prod/db",
        "token_type": "bearer",
        "clientToken": "5dd59182-3917-421c-9b2c-7c92954b66ee",
        "counts": {"secrets": 2, "tokens": 0},
        "password_last_used": "2024-08-02T09:53:24Z",
    }
    assert mask_value(value, ON) == value


def test_fixture_event_counts_are_unchanged(fixtures_dir: Path) -> None:
    normalizer = Normalizer()
    for name, expected in FIXTURE_EVENT_COUNTS.items():
        path = fixtures_dir / name
        family = file_family(path)
        count = sum(len(normalizer.normalize(raw, family=family)) for _, raw in file_records(path))
        assert count == expected, name


def test_record_shortcut_masks_exactly_what_the_full_walk_masks(fixtures_dir: Path) -> None:
    """`mask_value` scans a value serialized as JSON once and walks only what its triggers
    allow (or nothing): over every fixture record, every event's attributes, generated records
    and the corpus, it equals the walk of every step over every string and key."""
    from app.generator.stream import TelemetryGenerator
    from app.masking import _mask

    clear = Normalizer(masking=MaskingPolicy(enabled=False))
    values: list[object] = []
    for name in sorted(FIXTURE_EVENT_COUNTS):
        path = fixtures_dir / name
        for _, raw in file_records(path):
            values.append(orjson.loads(raw))
            values += [e.attributes for e in clear.normalize(raw, family=file_family(path))]
    for record in TelemetryGenerator(seed=5, bad_ratio=0.0).records(1_700_000_000_000, 100, 2000):
        values += [e.attributes for e in clear.normalize(record.value, family=record.family)]
    for _, text, _ in CORPUS:
        values += [{"f": text}, {text: 1}, [{"nested": {"db_password": text}}], {"k": [text]}]
    changed = 0
    for value in values:
        full = _mask(value, ON, None, None)
        assert mask_value(value, ON) == full, value
        changed += full != value
    assert changed > 100


@pytest.mark.parametrize(
    "unit",
    [
        "docker login ", "docker login -p ", "4111 ", "4111-", "123-45-", "Ab1/" * 9 + "x ",
        '\\"secret\\": ', "secretKey", '{"a": ', "hooks.slack.com/services/", "AIza", "sk_live_",
    ],
)  # fmt: skip
def test_new_patterns_stay_linear_on_hostile_text(unit: str) -> None:
    """200 KB of repeated fragments through every step and the JSON check."""
    import time

    text = unit * (200_000 // len(unit))
    start = time.perf_counter()
    mask_text(text, MaskingPolicy(mask_ips=True))
    mask_raw(text.encode(), ON)
    assert time.perf_counter() - start < 3.0
