"""Masking of secrets and personal data (app/masking/), alone and through the Normalizer.

`-p` on a command line: only the MySQL/MariaDB clients' attached form `-pSECRET` and
`docker login -p SECRET` (podman alike) are passwords and are masked. `-p 22` (ssh, nc,
`docker run`: a port) and `mysql -p dbname` (the client prompts for the password; `dbname` is
the database) are left as they are. tests/unit/test_masking_corpus.py holds every secret kind in
every place a record can carry it.
"""

from __future__ import annotations

import time
from pathlib import Path

import orjson
import pytest

from app.masking import MASK, MaskingPolicy, mask_text, mask_value
from app.sources.files import file_records
from app.sources.normalize import Normalizer

ON = MaskingPolicy()
OFF = MaskingPolicy(enabled=False)
WITH_IPS = MaskingPolicy(mask_ips=True)

AWS_KEY = "AKIAIOSFODNN7EXAMPLE"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4ifQ"
    ".SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
)
GITHUB_PAT = "ghp_16C7e42F292c6912E7710c838347Ae178B4a"
SLACK = "xoxb-263594206564-2343594206574-FGqddMF8HKHPf1xx"
PRIVATE_KEY = (
    "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo\n"
    "4lgOEePzNm0tRgeLezV6ffAt0gunVTLw7onLRnrq0/IzW7yWR7QkrmBL7jTKEn5u\n"
    "-----END RSA PRIVATE KEY-----"
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mail alice.smith+ci@example.co.uk now", "mail [email] now"),
        (f"key {AWS_KEY} used", f"key AKIA{MASK}[aws-key] used"),
        ("temp ASIAY34FZKBOKMUTVV7A", f"temp ASIA{MASK}[aws-key]"),
        (f"aws_secret_access_key = {AWS_SECRET}", f"aws_secret_access_key = {MASK}[aws-secret]"),
        (f'"SecretAccessKey": "{AWS_SECRET}"', f'"SecretAccessKey": "{MASK}[aws-secret]"'),
        (
            f"export AWS_SECRET_ACCESS_KEY={AWS_SECRET}",
            f"export AWS_SECRET_ACCESS_KEY={MASK}[aws-secret]",
        ),
        ("Authorization: Bearer abc.def-ghi_jkl", f"Authorization: Bearer {MASK}"),
        ("Authorization: Basic dXNlcjpwYXNzd29yZA==", f"Authorization: Basic {MASK}"),
        ("mysql --password=hunter2 -h db", f"mysql --password={MASK} -h db"),
        ("curl --token abc123 https://x", f"curl --token {MASK} https://x"),
        ("app -password 's e c' -v", f"app -password {MASK} -v"),
        ("PASSWORD=hunter2 ./run.sh", f"PASSWORD={MASK} ./run.sh"),
        ("DB_PASSWORD=s3cr3t other=1", f"DB_PASSWORD={MASK} other=1"),
        ("token: abcdef", f"token: {MASK}"),
        ('api_key="xyz" next', f"api_key={MASK} next"),
        ("postgres://admin:s3cret@db:5432/app", f"postgres://{MASK}:{MASK}@db:5432/app"),
        ("https://bob:pw@example.com/x", f"https://{MASK}:{MASK}@example.com/x"),
        (f"key={PRIVATE_KEY} tail", "key=[private-key] tail"),
        ("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXk", "[private-key]"),
        (f"push with {GITHUB_PAT}", f"push with {MASK}[github-token]"),
        ("github_pat_11ABCDEFG0123456789_abcdefghijklmnop", f"{MASK}[github-token]"),
        (f"slack {SLACK}", f"slack {MASK}[slack-token]"),
        (f"cookie {JWT}", f"cookie {MASK}[jwt]"),
        # MySQL's attached -pSECRET is a password ...
        ("mysql -u root -phunter2 shop", f"mysql -u root -p{MASK} shop"),
        ("/usr/bin/mysqldump -h db -p'p w' shop", f"/usr/bin/mysqldump -h db -p{MASK} shop"),
        # ... but -p with a space is a port (ssh, nc) or mysql's prompt + database name
        ("ssh -p 22 host", "ssh -p 22 host"),
        ("nc -l -p 8080", "nc -l -p 8080"),
        ("docker run -p 8080:80 nginx", "docker run -p 8080:80 nginx"),
        ("mysql -p shop", "mysql -p shop"),
        # package ids and plain text stay readable
        ("musl@1.1.20-r4", "musl@1.1.20-r4"),
        ("pkg:npm/lodash@4.17.4", "pkg:npm/lodash@4.17.4"),
        ("pkg:maven/org.apache.logging.log4j/log4j-core@2.14.1", None),
        ("pkg:golang/github.com/docker/docker@v20.10.7+incompatible", None),
        ("python@3.11.4 and node@18.17.0", None),
        ("user@localhost", None),
        ("Write below etc (user=root command=touch /etc/x)", None),
        ("from 10.0.0.1 to 192.168.1.254", None),  # IPs are kept unless mask_ips
        ("", None),
    ],
)
def test_mask_text(text: str, expected: str | None) -> None:
    assert mask_text(text, ON) == (text if expected is None else expected)


@pytest.mark.parametrize(
    "secret",
    ["hunter2", AWS_KEY, AWS_SECRET, JWT, GITHUB_PAT, SLACK, "dXNlcjpwYXNzd29yZA==", "MIIEow"],
)
def test_clear_value_never_survives(secret: str) -> None:
    text = (
        f"--password=hunter2 {AWS_KEY} aws_secret_access_key={AWS_SECRET} Bearer {JWT} "
        f"{GITHUB_PAT} {SLACK} Basic dXNlcjpwYXNzd29yZA== {PRIVATE_KEY}"
    )
    assert secret not in mask_text(text, ON)


def test_ipv4_masking_is_optional() -> None:
    text = "from 10.0.0.1 to 192.168.1.254:443, not 999.1.1.1 or 1.2.3"
    assert mask_text(text, ON) == text
    assert mask_text(text, WITH_IPS) == "from [ip] to [ip]:443, not 999.1.1.1 or 1.2.3"


def test_masking_disabled_changes_nothing() -> None:
    text = f"alice@example.com --password=x {AWS_KEY} {JWT} postgres://u:p@h/db 10.0.0.1"
    assert mask_text(text, OFF) == text
    value = {"password": "x", "nested": [text], "token": 1}
    assert mask_value(value, OFF) == value
    assert mask_value(value, OFF) is value


def test_secret_named_keys_are_masked_whole() -> None:
    value = {
        "password": "not-a-pattern",
        "Token": 12345,
        "client_secret": "abc",
        "Set-Cookie": "session=1",
        "authorization": "whatever",
        "x-api-key": "k",
        "secret": "",  # nothing to hide: kept empty
        "cookie": None,
        "nested": {"api_key": "k", "list": ["alice@example.com"], "passwords": "kept"},
        "password_list": {"password": ["a", ["b"], {"user": "bob"}]},
        "name": "plain",
    }
    assert mask_value(value, ON) == {
        "password": MASK,
        "Token": MASK,
        "client_secret": MASK,
        "Set-Cookie": MASK,
        "authorization": MASK,
        "x-api-key": MASK,
        "secret": "",
        "cookie": None,
        "nested": {"api_key": MASK, "list": ["[email]"], "passwords": MASK},
        "password_list": {"password": [MASK, [MASK], {"user": "bob"}]},
        "name": "plain",
    }


def test_objects_under_secret_keys_keep_their_hints() -> None:
    """CloudTrail `credentials`: the session token goes, the key id keeps its prefix."""
    credentials = {
        "accessKeyId": "ASIAY34FZKBOKMUTVV7A",
        "sessionToken": "IQoJb3JpZ2luX2VjEJr",
        "expiration": "Aug 2, 2024, 9:53:24 AM",
    }
    assert mask_value({"credentials": credentials}, ON) == {
        "credentials": {
            "accessKeyId": f"ASIA{MASK}[aws-key]",
            "sessionToken": MASK,
            "expiration": "Aug 2, 2024, 9:53:24 AM",
        }
    }


@pytest.mark.parametrize(
    "unit", ["eyJ-", "a.", "a-", "1.", "mysql ", "a@a.", "token ", "--password ", "Basic "]
)
def test_masking_stays_linear_on_hostile_text(unit: str) -> None:
    """200 KB of repeated fragments: quadratic regexes would take minutes here."""
    text = unit * (200_000 // len(unit))
    start = time.perf_counter()
    mask_text(text, WITH_IPS)
    assert time.perf_counter() - start < 3.0


def _first_record(path: Path) -> dict:
    _, raw = next(iter(file_records(path)))
    doc = orjson.loads(raw)
    return doc[0] if isinstance(doc, list) else doc["Records"][0] if "Records" in doc else doc


def test_falco_cmdline_secrets_are_masked(fixtures_dir: Path) -> None:
    record = _first_record(fixtures_dir / "falco" / "falco-test-single_rule_with_cat_write.jsonl")
    cmdline = f"mysql --password=hunter2 -h db.internal AWS_ACCESS_KEY_ID={AWS_KEY}"
    record["output"] = f"{record['output']} (cmdline={cmdline})"
    record["output_fields"]["proc.cmdline"] = cmdline
    (event,) = Normalizer().normalize(orjson.dumps(record), family="falco")
    wire = orjson.dumps(event.to_dict()).decode()
    assert "hunter2" not in wire and AWS_KEY not in wire
    fields = event.attributes["output_fields"]
    assert fields["proc.cmdline"] == (
        f"mysql --password={MASK} -h db.internal AWS_ACCESS_KEY_ID=AKIA{MASK}[aws-key]"
    )
    assert event.attributes["output"].endswith(fields["proc.cmdline"] + ")")
    unmasked = Normalizer(masking=OFF).normalize(orjson.dumps(record), family="falco")[0]
    assert unmasked.id == event.id  # ids come from the record, not from the masked copy
    assert "hunter2" in orjson.dumps(unmasked.to_dict()).decode()


def test_cloudtrail_user_email_is_masked(fixtures_dir: Path) -> None:
    path = fixtures_dir / "cloudtrail" / "stratus-aws.initial-access.console-login-without-mfa.json"
    record = _first_record(path)
    email = "alice.smith@example.com"
    record["userIdentity"] = {
        **record["userIdentity"],
        "type": "AssumedRole",
        "principalId": f"AROAY34FZKBOKMUTVV7A:{email}",
        "arn": f"arn:aws:sts::562283505220:assumed-role/Admin/{email}",
        "userName": email,
    }
    record["additionalEventData"]["userEmail"] = email
    events = Normalizer().normalize(orjson.dumps(record), family="cloudtrail")
    assert events
    wire = orjson.dumps([event.to_dict() for event in events]).decode()
    assert email not in wire and "alice.smith" not in wire
    assert "[email]" in wire
    assert all("alice" not in event.entity for event in events)


def _strings(value: object):
    """Every string inside a JSON-like value, keys included."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield str(key)
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def test_shortcut_masks_exactly_what_the_full_pass_masks(fixtures_dir: Path) -> None:
    """`mask_text` skips the patterns for strings without any trigger substring: over every
    fixture string, every generated record and the cases above, it equals the full pass."""
    from app.generator.stream import TelemetryGenerator
    from app.masking import _mask_text

    texts: list[str] = [case[0] for case in test_mask_text.pytestmark[0].args[1]]
    # Unicode case folding: `(?i)` patterns match `ſ` as `s` and `K` (Kelvin) as `k`
    texts += ["paſſword=hunter2 x", "ſecret: abc", "api_\u212aey=abc", "TOKEN abcdefgh12"]
    for path in sorted(fixtures_dir.rglob("*")):
        if path.is_file() and path.suffix in {".json", ".jsonl", ".sarif", ".ndjson", ".log"}:
            for _, raw in file_records(path):
                try:
                    texts.extend(_strings(orjson.loads(raw)))
                except orjson.JSONDecodeError:
                    texts.append(raw.decode("utf-8", "replace"))
    for record in TelemetryGenerator(seed=3, bad_ratio=0.0).records(1_700_000_000_000, 100, 3000):
        try:
            texts.extend(_strings(orjson.loads(record.value)))
        except orjson.JSONDecodeError:
            texts.append(record.value.decode("utf-8", "replace"))
    assert len(texts) > 10_000
    changed = 0
    for text in texts:
        full = _mask_text(text, ON, None)
        assert mask_text(text, ON) == full, text
        changed += full != text
    assert changed > 10  # the corpus holds secrets and e-mails that the shortcut must not skip
