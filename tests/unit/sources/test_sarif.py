"""SARIF 2.1.0 logs: one sast_finding per result and a scan_completed per run."""

from __future__ import annotations

import copy
from collections import Counter

import orjson
import pytest

from app.sources.errors import ErrorCode, NormalizeError
from app.sources.files import file_records
from app.sources.normalize import Normalizer
from app.sources.sarif import SARIF_FALLBACK_TIME, SarifAdapter, repository_name

#: fixture -> (events, findings); every run also yields one scan_completed.
SARIF_FILES = {
    "codeql-2.5.4-python.sarif.json": (30, 29),
    "devskim-many-vuln.sarif.json": (8, 7),
    "njsscan-0.2.3.sarif.json": (3, 2),
    "semgrep-0.17.0-owasp-benchmark.sarif.json": (26, 25),
    "shiftleft-scan-taint-python.sarif.json": (12, 11),
    "trivy-alpine-310.sarif.json": (5, 4),
}


def load(fixtures_dir, name: str) -> dict:
    ((_, raw),) = list(file_records(fixtures_dir / "sarif" / name))
    return orjson.loads(raw)


def run(doc: dict) -> list:
    return Normalizer().normalize(orjson.dumps(doc), family="scans")


def keys_of(events) -> list[str]:
    return [e.attributes["finding_key"] for e in events if e.type == "sast_finding"]


def log(*results: dict, rules: list | None = None, **run_fields) -> dict:
    """A minimal SARIF log with one run of a tool called `Scanner`."""
    driver = {"name": "Scanner", "version": "1.0", "rules": rules or [{"id": "R1"}]}
    run_doc = {"tool": {"driver": driver}, "results": list(results), **run_fields}
    return {"version": "2.1.0", "runs": [run_doc]}


def result(**fields) -> dict:
    base = {
        "ruleId": "R1",
        "message": {"text": "bad thing"},
        "locations": [
            {
                "physicalLocation": {
                    "artifactLocation": {"uri": "src/app.py"},
                    "region": {"startLine": 10, "snippet": {"text": "eval(x)"}},
                }
            }
        ],
    }
    return {**base, **fields}


@pytest.mark.parametrize(("name", "expected"), sorted(SARIF_FILES.items()))
def test_every_sarif_log_normalizes(fixtures_dir, name, expected):
    total, findings = expected
    events = []
    for _, raw in file_records(fixtures_dir / "sarif" / name):
        events.extend(Normalizer().normalize(raw, family="scans"))
    assert len(events) == total
    assert all(e.source == "sarif" for e in events)
    assert Counter(e.type for e in events) == {"sast_finding": findings, "scan_completed": 1}
    assert len({e.id for e in events}) == total, "event ids must be unique per finding"
    completed = events[-1]
    assert completed.attributes["finding_keys"] == sorted(keys_of(events))
    assert len(set(keys_of(events))) == findings
    assert completed.attributes["counts"]["findings"] == findings


def test_shiftleft_repo_entity_time_and_relative_path(fixtures_dir):
    events = run(load(fixtures_dir, "shiftleft-scan-taint-python.sarif.json"))
    finding = events[0]
    assert finding.entity == "repo:damiencarol/django-DefectDojo"
    assert finding.time == "2021-03-08T15:46:16.000Z"
    assert finding.severity == "high"  # level error
    attrs = finding.attributes
    assert attrs["tool"] == "Python Security Analysis"
    assert attrs["rule_id"] == "taint-xmli"
    assert attrs["rule_name"] == "XML Injection"
    assert attrs["path"] == "dojo/tools/veracode/parser.py"  # workingDirectory stripped
    assert attrs["start_line"] == 35
    assert attrs["fingerprint_source"] == "partialFingerprints"
    completed = events[-1].attributes
    assert completed["time_source"] == "invocations.endTimeUtc"
    assert completed["commit"] == "288c68d1ba1f35ebeff1d1bdb032186a23f0ea5b"
    assert completed["branch"] == "dev"


def test_codeql_rule_index_default_level_and_fallback_time(fixtures_dir):
    events = run(load(fixtures_dir, "codeql-2.5.4-python.sarif.json"))
    finding = events[0]
    assert finding.entity == "scan:codeql"
    assert finding.time == "2020-03-27T00:00:00.000Z" == SARIF_FALLBACK_TIME.replace("Z", ".000Z")
    assert finding.severity == "low"  # no result level: the rule's default `note`
    attrs = finding.attributes
    assert attrs["rule_id"] == "py/empty-except"
    assert attrs["rule_description"] == "Empty except"
    assert attrs["level"] == "note"
    assert attrs["cwe"] == ["CWE-390"]
    assert attrs["tool_version"] == "2.5.4"
    assert events[-1].attributes["time_source"] == "none"


def test_njsscan_default_warning_and_cwe_property(fixtures_dir):
    events = run(load(fixtures_dir, "njsscan-0.2.3.sarif.json"))
    finding = events[0]
    assert finding.entity == "scan:nodejsscan"
    assert finding.time == "2021-03-23T00:10:48.000Z"
    assert finding.severity == "medium"  # no level anywhere: SARIF's default `warning`
    assert finding.attributes["cwe"] == ["CWE-327"]
    assert finding.attributes["path"] == "/src/index.js"
    assert events[1].severity == "high"  # level error


def test_semgrep_rule_resolved_by_rule_id(fixtures_dir):
    finding = run(load(fixtures_dir, "semgrep-0.17.0-owasp-benchmark.sarif.json"))[0]
    assert finding.entity == "scan:semgrep"
    assert finding.severity == "medium"  # rule defaultConfiguration.level warning
    assert finding.attributes["rule_description"].startswith("Using CBC with PKCS5Padding")
    assert finding.attributes["fingerprint_source"] == "message"


def test_trivy_sarif_goes_to_the_sarif_adapter(fixtures_dir):
    events = run(load(fixtures_dir, "trivy-alpine-310.sarif.json"))
    finding = events[0]
    assert finding.source == "sarif"
    assert finding.entity == "image:ghcr.io/aquasecurity/trivy-test-images"
    assert finding.attributes["rule_id"] == "CVE-2019-1549"
    assert finding.attributes["security_severity"] == 5.3
    assert finding.severity == "medium"
    assert finding.attributes["fingerprint_source"] == "location_message"


@pytest.mark.parametrize(
    ("name", "source"),
    [
        ("codeql-2.5.4-python.sarif.json", "partialFingerprints"),
        ("devskim-many-vuln.sarif.json", "snippet"),
        ("semgrep-0.17.0-owasp-benchmark.sarif.json", "message"),
        ("trivy-alpine-310.sarif.json", "location_message"),
    ],
)
def test_finding_key_ignores_line_numbers_and_level(fixtures_dir, name, source):
    doc = load(fixtures_dir, name)
    before = run(doc)
    assert {e.attributes["fingerprint_source"] for e in before[:-1]} == {source}
    moved = copy.deepcopy(doc)
    for res in moved["runs"][0]["results"]:
        res["level"] = "error"
        for location in res.get("locations", []):
            region = location["physicalLocation"].get("region", {})
            for field in ("startLine", "endLine"):
                if field in region:
                    region[field] += 40
    after = run(moved)
    assert keys_of(after) == keys_of(before)
    assert [e.attributes["start_line"] for e in after[:-1]] != [
        e.attributes["start_line"] for e in before[:-1]
    ]


def test_fingerprints_alone_define_identity():
    first = log(result(fingerprints={"v1": "abc"}, partialFingerprints={"line": "1"}))
    second = log(result(fingerprints={"v1": "abc"}, partialFingerprints={"line": "2"}))
    assert keys_of(run(first)) == keys_of(run(second))
    third = log(result(fingerprints={"v1": "abd"}))
    assert keys_of(run(third)) != keys_of(run(first))


def test_same_rule_file_and_snippet_get_distinct_keys():
    events = run(log(result(), result()))
    assert len(set(keys_of(events))) == 2


@pytest.mark.parametrize(
    ("fields", "rule", "severity"),
    [
        ({"level": "error"}, {}, "high"),
        ({"level": "warning"}, {}, "medium"),
        ({"level": "note"}, {}, "low"),
        ({"level": "none"}, {}, "info"),
        ({}, {"defaultConfiguration": {"level": "error"}}, "high"),
        ({"level": "warning"}, {"properties": {"security-severity": "9.1"}}, "critical"),
        ({"level": "note"}, {"properties": {"security-severity": "7.0"}}, "high"),
        ({"level": "error"}, {"properties": {"security-severity": "4.0"}}, "medium"),
        ({"level": "error"}, {"properties": {"security-severity": "0.5"}}, "low"),
        (
            {"properties": {"security-severity": 8.0}},
            {"properties": {"security-severity": 2}},
            "high",
        ),
        ({"level": "error"}, {"properties": {"security-severity": "n/a"}}, "high"),
        ({"kind": "review"}, {}, "info"),
    ],
)
def test_severity_from_level_refined_by_security_severity(fields, rule, severity):
    (finding, _) = run(log(result(**fields), rules=[{"id": "R1", **rule}]))
    assert finding.severity == severity


def test_envelope_gives_time_repository_and_commit(fixtures_dir):
    doc = {
        "sarif": load(fixtures_dir, "codeql-2.5.4-python.sarif.json"),
        "time": "2024-06-01T08:30:00Z",
        "repository": "https://github.com/acme/shop.git",
        "commit": "0123abcd",
    }
    events = run(doc)
    assert len(events) == 30
    assert {e.entity for e in events} == {"repo:acme/shop"}
    assert events[0].time == "2024-06-01T08:30:00.000Z"
    assert events[-1].attributes["time_source"] == "envelope.time"
    assert events[-1].attributes["commit"] == "0123abcd"


def test_rule_resolved_through_tool_extension():
    doc = log(
        result(ruleId=None, rule={"id": "js/xss", "index": 0, "toolComponent": {"index": 0}}),
        invocations=[{"startTimeUtc": "2024-01-02T03:04:05Z"}],
    )
    doc["runs"][0]["results"][0].pop("ruleId")
    doc["runs"][0]["tool"]["extensions"] = [
        {
            "name": "codeql/javascript-queries",
            "rules": [
                {
                    "id": "js/xss",
                    "name": "Cross-site scripting",
                    "properties": {"security-severity": "6.1", "tags": ["external/cwe/cwe-079"]},
                }
            ],
        }
    ]
    (finding, completed) = run(doc)
    assert finding.attributes["rule_id"] == "js/xss"
    assert finding.attributes["rule_name"] == "Cross-site scripting"
    assert finding.attributes["cwe"] == ["CWE-79"]
    assert finding.severity == "medium"
    assert finding.time == "2024-01-02T03:04:05.000Z"
    assert completed.attributes["time_source"] == "invocations.startTimeUtc"


def test_message_from_rule_message_strings():
    rules = [{"id": "R1", "messageStrings": {"default": {"text": "Call to {0} in {1}."}}}]
    res = result(message={"id": "default", "arguments": ["eval", "main"]})
    (finding, _) = run(log(res, rules=rules))
    assert finding.attributes["message"] == "Call to eval in main."


def test_pass_absent_and_suppressed_results():
    events = run(
        log(
            result(kind="pass"),
            result(baselineState="absent"),
            result(suppressions=[{"kind": "inSource"}]),
            result(baselineState="unchanged"),
        )
    )
    assert [e.type for e in events] == ["sast_finding", "sast_finding", "scan_completed"]
    assert events[0].attributes["suppressed"] is True
    assert "suppressed" not in events[1].attributes
    assert events[-1].attributes["counts"] == {
        "findings": 2,
        "passed": 1,
        "absent": 1,
        "suppressed": 1,
    }


def test_run_without_results_still_completes_a_scan():
    (completed,) = run(log())
    assert completed.type == "scan_completed"
    assert completed.entity == "scan:scanner"
    assert completed.attributes["finding_keys"] == []


@pytest.mark.parametrize(
    ("uri", "name"),
    [
        ("https://github.com/owner/name", "owner/name"),
        ("https://gitlab.com/group/sub/project.git", "group/sub/project"),
        ("git@github.com:owner/name.git", "owner/name"),
        ("owner/name", "owner/name"),
    ],
)
def test_repository_name(uri, name):
    assert repository_name(uri) == name


def _with(path: str, value) -> dict:
    """A valid one-result log with one field replaced (dotted path into runs[0])."""
    doc = log(result())
    target = doc["runs"][0]
    *parents, last = path.split(".")
    for part in parents:
        target = target[int(part)] if isinstance(target, list) else target[part]
    if value is KeyError:
        del target[last]
    else:
        target[last] = value
    return doc


@pytest.mark.parametrize(
    ("doc", "code"),
    [
        ({**log(), "version": "2.0.0", "$schema": "sarif-2.0.0.json"}, ErrorCode.INVALID_VALUE),
        ({"version": "2.1.0", "runs": []}, ErrorCode.EMPTY),
        ({"$schema": "https://x/sarif-schema-2.1.0.json", "runs": [{}]}, ErrorCode.MISSING_FIELD),
        ({"version": "2.1.0", "runs": [{}]}, ErrorCode.MISSING_FIELD),
        ({"version": "2.1.0", "runs": ["run"]}, ErrorCode.WRONG_TYPE),
        (_with("tool.driver.name", 7), ErrorCode.WRONG_TYPE),
        (_with("results", {}), ErrorCode.WRONG_TYPE),
        (_with("results.0.level", "loud"), ErrorCode.INVALID_VALUE),
        (_with("results.0.ruleIndex", 5), ErrorCode.INVALID_VALUE),
        (_with("results.0.ruleIndex", "0"), ErrorCode.WRONG_TYPE),
        (_with("results.0.message", KeyError), ErrorCode.MISSING_FIELD),
        (_with("results.0.ruleId", KeyError), ErrorCode.MISSING_FIELD),
        (_with("invocations", [{"endTimeUtc": "yesterday"}]), ErrorCode.INVALID_VALUE),
        (_with("invocations", [{"endTimeUtc": 1e300}]), ErrorCode.INVALID_VALUE),
        ({"sarif": log(), "time": "soon"}, ErrorCode.INVALID_VALUE),
        ({"version": "2.1.0", "runs": {}}, ErrorCode.UNKNOWN_FORMAT),
    ],
)
def test_bad_sarif_logs_fail_with_a_code(doc, code):
    with pytest.raises(NormalizeError) as info:
        run(doc)
    assert info.value.code == code


def test_matches_is_specific():
    adapter = SarifAdapter()
    assert adapter.matches(log())
    assert adapter.matches({"sarif": log()})
    assert not adapter.matches({"runs": []})  # no version, no schema
    assert not adapter.matches({"SchemaVersion": 2, "Results": []})
    assert not adapter.matches([log()])
