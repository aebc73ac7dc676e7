"""Trivy JSON reports: one event per finding plus a scan_completed summary with finding keys."""

from __future__ import annotations

import copy
from collections import Counter

import orjson
import pytest

from app.masking import MaskingPolicy
from app.sources.errors import ErrorCode, NormalizeError
from app.sources.files import file_records
from app.sources.normalize import Normalizer
from app.sources.trivy import TrivyAdapter

#: fixture -> (events, {type: count}); every report also yields one scan_completed.
TRIVY_FILES = {
    "alpine-39.json": (7, {"vulnerability": 6}),
    "centos-7.json": (4, {"vulnerability": 3}),
    "debian-stretch.json": (6, {"vulnerability": 5}),
    "defectdojo-filesystem-misconfig-and-secrets.json": (
        6,
        {"vulnerability": 2, "misconfiguration": 1, "secret": 2},
    ),
    "defectdojo-teamdojo-alpine-and-jars.json": (6, {"vulnerability": 5}),
    "photon-30.json": (4, {"vulnerability": 3}),
    "pom.json": (3, {"vulnerability": 2}),
    "ubuntu-1804.json": (6, {"vulnerability": 5}),
}
IMAGE = "image:ghcr.io/aquasecurity/trivy-test-images"


def load(fixtures_dir, name: str) -> dict:
    ((_, raw),) = list(file_records(fixtures_dir / "trivy" / name))
    return orjson.loads(raw)


def run(doc: dict, **kwargs) -> list:
    return Normalizer(**kwargs).normalize(orjson.dumps(doc), family="scans")


def keys_of(events) -> list[str]:
    return [e.attributes["finding_key"] for e in events if e.type != "scan_completed"]


@pytest.mark.parametrize(("name", "expected"), sorted(TRIVY_FILES.items()))
def test_every_trivy_report_normalizes(fixtures_dir, name, expected):
    total, by_type = expected
    events = []
    for _, raw in file_records(fixtures_dir / "trivy" / name):
        events.extend(Normalizer().normalize(raw, family="scans"))
    assert len(events) == total
    assert all(e.source == "trivy" for e in events)
    assert Counter(e.type for e in events) == {**by_type, "scan_completed": 1}
    assert len({e.id for e in events}) == total, "event ids must be unique per finding"
    completed = events[-1]
    assert completed.type == "scan_completed"
    assert completed.attributes["finding_keys"] == sorted(keys_of(events))
    assert len(set(keys_of(events))) == total - 1
    assert {e.ts_ms for e in events} == {completed.ts_ms}
    assert {e.entity for e in events} == {completed.entity}


def test_vulnerability_fields(fixtures_dir):
    events = run(load(fixtures_dir, "alpine-39.json"))
    vuln = events[0]
    assert vuln.type == "vulnerability"
    assert vuln.entity == IMAGE  # from RepoTags: ArtifactName is a .tar.gz path
    assert vuln.time == "2021-08-25T12:20:30.000Z"
    assert vuln.severity == "medium"
    attrs = vuln.attributes
    assert attrs["vulnerability_id"] == "CVE-2019-1549"
    assert attrs["pkg_name"] == "libcrypto1.1"
    assert attrs["pkg_id"] == "libcrypto1.1@1.1.1b-r1"
    assert attrs["purl"] == "pkg:apk/alpine/libcrypto1.1@1.1.1b-r1?arch=x86_64&distro=3.9.4"
    assert attrs["installed_version"] == "1.1.1b-r1"
    assert attrs["fixed_version"] == "1.1.1d-r0"
    assert attrs["status"] == "fixed"
    assert attrs["severity_label"] == "MEDIUM"
    assert attrs["cvss"] == 5.3
    assert attrs["cvss_vector"] == "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:L/I:N/A:N"
    assert attrs["cvss_source"] == "nvd"
    assert attrs["cwe_ids"] == ["CWE-330"]
    assert attrs["published_date"] == "2019-09-10T17:15:00Z"
    assert attrs["class"] == "os-pkgs"
    assert attrs["target"] == "testdata/fixtures/images/alpine-39.tar.gz (alpine 3.9.4)"
    assert attrs["artifact"] == "ghcr.io/aquasecurity/trivy-test-images"
    assert attrs["title"] == "openssl: information disclosure in fork()"
    assert len(attrs["finding_key"]) == 16
    assert "epss" not in attrs and "kev" not in attrs
    assert "Description" not in attrs and "References" not in attrs


@pytest.mark.parametrize("name", sorted(TRIVY_FILES))
def test_masking_leaves_package_identifiers_alone(fixtures_dir, name):
    doc = load(fixtures_dir, name)
    masked = run(doc)
    clear = run(doc, masking=MaskingPolicy(enabled=False))
    assert [e.attributes for e in masked] == [e.attributes for e in clear]


def test_scan_completed_summary(fixtures_dir):
    completed = run(load(fixtures_dir, "alpine-39.json"))[-1]
    attrs = completed.attributes
    assert completed.severity == "info"
    assert attrs["tool"] == "trivy"
    assert attrs["artifact"] == "ghcr.io/aquasecurity/trivy-test-images"
    assert attrs["artifact_type"] == "container_image"
    assert attrs["targets"] == ["testdata/fixtures/images/alpine-39.tar.gz (alpine 3.9.4)"]
    assert attrs["counts"]["vulnerabilities"] == 6
    assert attrs["counts"]["secrets"] == 0  # plural: a bare `secret` key would be masked
    assert attrs["time_source"] == "CreatedAt"
    assert attrs["artifact_id"].startswith("sha256:988a8e3e")


def test_max_cvss_across_sources_and_tag_only_image(fixtures_dir):
    events = run(load(fixtures_dir, "defectdojo-teamdojo-alpine-and-jars.json"))
    freetype = events[0]
    assert freetype.entity == "image:teamdojo"  # `teamdojo:latest` without its tag
    assert freetype.attributes["cvss"] == 8.6  # redhat 8.6 beats nvd 6.5
    assert freetype.attributes["cvss_source"] == "redhat"
    assert freetype.severity == "medium"  # Trivy's label wins over the CVSS score
    assert freetype.attributes["pkg_path"] == "app/libs/freetype-2.9.1-r2"
    completed = events[-1]
    assert completed.attributes["targets"] == [
        "teamdojo:latest (alpine 3.9.4)",
        "app/libs/HdrHistogram-2.1.9.jar",
        "app/libs/commons-compress-1.14.jar",
    ]
    # No CreatedAt and no ImageConfig: the newest advisory date is the lower bound.
    assert completed.attributes["time_source"] == "Vulnerabilities.LastModifiedDate"
    assert completed.time == "2021-06-29T15:15:00.000Z"


def test_filesystem_misconfigurations_and_secrets(fixtures_dir):
    events = run(load(fixtures_dir, "defectdojo-filesystem-misconfig-and-secrets.json"))
    assert {e.entity for e in events} == {"fs:."}
    misconf = next(e for e in events if e.type == "misconfiguration")
    assert misconf.severity == "high"
    assert misconf.attributes["check_id"] == "DS002"
    assert misconf.attributes["status"] == "FAIL"
    assert misconf.attributes["target"] == "Dockerfile"
    secrets = [e for e in events if e.type == "secret"]
    assert [s.severity for s in secrets] == ["critical", "critical"]
    assert [s.attributes["target"] for s in secrets] == ["Dockerfile", "secret.txt"]
    assert secrets[0].attributes["rule_id"] == "github-pat"
    assert secrets[0].attributes["start_line"] == 24
    completed = events[-1]
    assert completed.attributes["counts"] == {
        "vulnerabilities": 2,
        "misconfigurations": 1,
        "secrets": 2,
        "misconfigurations_passed": 22,  # from MisconfSummary.Successes
        "misconfigurations_excepted": 0,
    }
    # ImageConfig.created is Go's zero time (0001-01-01) and is ignored.
    assert completed.attributes["time_source"] == "Vulnerabilities.LastModifiedDate"
    assert completed.time == "2021-12-08T20:34:00.000Z"


def test_repository_scan_entity(fixtures_dir):
    events = run(load(fixtures_dir, "pom.json"))
    assert {e.entity for e in events} == {"fs:testdata/fixtures/repo/pom"}
    assert events[0].attributes["purl"].startswith("pkg:maven/")


def test_finding_key_ignores_severity_cvss_fixed_version_and_time(fixtures_dir):
    doc = load(fixtures_dir, "alpine-39.json")
    before = keys_of(run(doc))
    changed = copy.deepcopy(doc)
    changed["CreatedAt"] = "2026-06-01T00:00:00Z"  # a later scan (not ahead of the clock)
    changed["ArtifactID"] = "sha256:" + "0" * 64  # a rebuilt image
    changed["Metadata"]["RepoTags"] = ["ghcr.io/aquasecurity/trivy-test-images:v2"]
    for vuln in changed["Results"][0]["Vulnerabilities"]:
        vuln["Severity"] = "CRITICAL"
        vuln["CVSS"] = {"nvd": {"V3Score": 9.9, "V3Vector": "CVSS:3.1/AV:N"}}
        vuln["FixedVersion"] = "99.0"
        vuln["Status"] = "will_not_fix"
        vuln["Title"] = "retitled"
        vuln["PkgIdentifier"]["PURL"] += "&epoch=0"  # qualifiers are not identity
    after = run(changed)
    assert keys_of(after) == before
    assert {e.severity for e in after if e.type == "vulnerability"} == {"critical"}

    other = copy.deepcopy(doc)
    other["Results"][0]["Vulnerabilities"][0]["VulnerabilityID"] = "CVE-2099-0001"
    assert keys_of(run(other))[0] != before[0]
    assert keys_of(run(other))[1:] == before[1:]


def test_misconfiguration_and_secret_keys_ignore_line_numbers(fixtures_dir):
    doc = load(fixtures_dir, "defectdojo-filesystem-misconfig-and-secrets.json")
    before = keys_of(run(doc))
    moved = copy.deepcopy(doc)
    moved["Results"][1]["Misconfigurations"][0]["CauseMetadata"].update(StartLine=7, EndLine=9)
    moved["Results"][1]["Misconfigurations"][0]["Severity"] = "LOW"
    for result in moved["Results"][2:]:
        for secret in result["Secrets"]:
            secret.update(StartLine=100, EndLine=101, Match="GITHUB_PAT=*****moved")
    assert keys_of(run(moved)) == before


def test_rescan_without_some_cves_drops_exactly_their_keys(fixtures_dir):
    first = load(fixtures_dir, "alpine-39.json")
    second = copy.deepcopy(first)
    second["CreatedAt"] = "2021-09-01T00:00:00Z"
    vulns = second["Results"][0]["Vulnerabilities"]
    gone = [v for v in vulns if v["VulnerabilityID"] == "CVE-2019-1549"]
    assert len(gone) == 2  # libcrypto1.1 and libssl1.1
    second["Results"][0]["Vulnerabilities"] = [v for v in vulns if v not in gone]
    first_events, second_events = run(first), run(second)
    old = set(first_events[-1].attributes["finding_keys"])
    new = set(second_events[-1].attributes["finding_keys"])
    gone_keys = {
        e.attributes["finding_key"]
        for e in first_events
        if e.attributes.get("vulnerability_id") == "CVE-2019-1549"
    }
    assert new < old
    assert old - new == gone_keys
    assert second_events[-1].entity == first_events[-1].entity


def _secret_report() -> tuple[dict, str]:
    token = "ghp_" + "A1b2C3d4E5f6G7h8I9j0" * 2
    return {
        "SchemaVersion": 2,
        "CreatedAt": "2024-05-01T10:00:00Z",
        "ArtifactName": "/src/app",
        "ArtifactType": "filesystem",
        "Results": [
            {
                "Target": "config/.env",
                "Class": "secret",
                "Secrets": [
                    {
                        "RuleID": "github-pat",
                        "Category": "GitHub",
                        "Severity": "CRITICAL",
                        "Title": "GitHub Personal Access Token",
                        "StartLine": 3,
                        "EndLine": 3,
                        "Match": f"GITHUB_TOKEN={token}",
                        "Code": {"Lines": [{"Number": 3, "Content": f"GITHUB_TOKEN={token}"}]},
                    },
                    {
                        "RuleID": "generic-password",
                        "Severity": "HIGH",
                        "StartLine": 4,
                        "Match": "DB_PASS=correct-horse-battery",
                        "Code": {"Lines": [{"Content": "DB_PASS=correct-horse-battery"}]},
                    },
                ],
            }
        ],
    }, token


def test_secret_text_never_leaves_the_adapter():
    doc, token = _secret_report()
    for masking in (MaskingPolicy(), MaskingPolicy(enabled=False)):
        events = run(doc, masking=masking)
        text = orjson.dumps([e.to_dict() for e in events]).decode()
        assert token not in text
        assert token[:12] not in text
        assert "correct-horse-battery" not in text
        assert "Match" not in text and "Code" not in text
        assert [e.type for e in events] == ["secret", "secret", "scan_completed"]
        assert events[0].entity == "fs:/src/app"
        assert events[0].attributes["rule_id"] == "github-pat"
        assert events[-1].attributes["counts"]["secrets"] == 2


def test_pass_and_exception_misconfigurations_are_counted_not_emitted():
    def check(status: str, check_id: str) -> dict:
        return {"ID": check_id, "Title": "t", "Severity": "MEDIUM", "Status": status}

    doc = {
        "SchemaVersion": 2,
        "CreatedAt": "2024-05-01T10:00:00Z",
        "ArtifactName": "infra",
        "ArtifactType": "repository",
        "Results": [
            {
                "Target": "main.tf",
                "Class": "config",
                "Misconfigurations": [
                    check("PASS", "AVD-1"),
                    check("FAIL", "AVD-2"),
                    check("EXCEPTION", "AVD-3"),
                    check("PASS", "AVD-4"),
                ],
            }
        ],
    }
    events = run(doc)
    assert [e.type for e in events] == ["misconfiguration", "scan_completed"]
    assert events[0].attributes["check_id"] == "AVD-2"
    counts = events[-1].attributes["counts"]
    assert counts["misconfigurations"] == 1
    assert counts["misconfigurations_passed"] == 2
    assert counts["misconfigurations_excepted"] == 1


def _vuln_report(**vuln) -> dict:
    return {
        "SchemaVersion": 2,
        "ArtifactName": "registry.local:5000/team/api:1.4@sha256:" + "ab" * 32,
        "ArtifactType": "container_image",
        "Results": [
            {
                "Target": "requirements.txt",
                "Class": "lang-pkgs",
                "Vulnerabilities": [
                    {"VulnerabilityID": "CVE-2024-1", "PkgName": "flask", **vuln},
                ],
            }
        ],
    }


def test_unknown_severity_uses_cvss_band_or_medium():
    doc = _vuln_report(
        Severity="UNKNOWN",
        CVSS={"ghsa": {"V3Score": 9.8}},
        PublishedDate="2024-03-01T00:00:00Z",
    )
    (vuln, completed) = run(doc)
    assert vuln.entity == "image:registry.local:5000/team/api"
    assert vuln.severity == "critical"
    assert vuln.attributes["severity_label"] == "UNKNOWN"
    assert completed.attributes["time_source"] == "Vulnerabilities.PublishedDate"
    (vuln, _) = run(_vuln_report(PublishedDate="2024-03-01T00:00:00Z"))
    assert vuln.severity == "medium"


def test_epss_and_kev_are_kept_when_present():
    doc = _vuln_report(
        Severity="HIGH",
        PublishedDate="2024-03-01T00:00:00Z",
        EPSS={"Score": 0.91, "Percentile": 0.99},
        KEV={"knownRansomwareCampaignUse": "Known"},
    )
    attrs = run(doc)[0].attributes
    assert attrs["epss"] == 0.91
    assert attrs["epss_percentile"] == 0.99
    assert attrs["kev"] is True
    assert attrs["kev_ransomware"] == "Known"


def test_report_without_findings_still_completes_a_scan():
    doc = {
        "SchemaVersion": 2,
        "CreatedAt": "2024-05-01T10:00:00Z",
        "ArtifactName": "alpine:3.20",
        "ArtifactType": "container_image",
    }
    (completed,) = run(doc)
    assert completed.type == "scan_completed"
    assert completed.entity == "image:alpine"
    assert completed.attributes["finding_keys"] == []
    assert completed.attributes["targets"] == []


def test_image_config_created_is_a_time_fallback():
    doc = _vuln_report(PublishedDate="2019-01-01T00:00:00Z")
    doc["Metadata"] = {"ImageConfig": {"created": "2023-07-04T12:00:00Z"}}
    completed = run(doc)[-1]
    assert completed.attributes["time_source"] == "Metadata.ImageConfig.created"
    assert completed.time == "2023-07-04T12:00:00.000Z"


def test_trivy_does_not_claim_sarif(fixtures_dir):
    ((_, raw),) = list(file_records(fixtures_dir / "sarif" / "trivy-alpine-310.sarif.json"))
    assert not TrivyAdapter().matches(orjson.loads(raw))
    events = Normalizer().normalize(raw, family="scans")
    assert {e.source for e in events} == {"sarif"}


@pytest.mark.parametrize(
    ("doc", "code"),
    [
        ({"SchemaVersion": 2, "Results": []}, ErrorCode.MISSING_FIELD),  # no ArtifactName
        ({"SchemaVersion": 2, "ArtifactName": 5}, ErrorCode.WRONG_TYPE),
        ({"SchemaVersion": 2, "ArtifactName": " "}, ErrorCode.INVALID_VALUE),
        ({"SchemaVersion": 2, "ArtifactName": "a", "Results": {}}, ErrorCode.WRONG_TYPE),
        ({"SchemaVersion": 2, "ArtifactName": "a", "Results": [3]}, ErrorCode.WRONG_TYPE),
        ({"SchemaVersion": 2, "ArtifactName": "a", "Results": [{}]}, ErrorCode.MISSING_FIELD),
        (_vuln_report(), ErrorCode.MISSING_FIELD),  # no CreatedAt, no dates at all
        ({**_vuln_report(), "CreatedAt": "not a time"}, ErrorCode.INVALID_VALUE),
        ({**_vuln_report(), "CreatedAt": "0001-01-01T00:00:00Z"}, ErrorCode.INVALID_VALUE),
        ({**_vuln_report(), "CreatedAt": 1e300}, ErrorCode.INVALID_VALUE),
        ({**_vuln_report(Severity="SEVERE"), "CreatedAt": "2024-01-01"}, ErrorCode.INVALID_VALUE),
        ({**_vuln_report(CVSS=[1]), "CreatedAt": "2024-01-01"}, ErrorCode.WRONG_TYPE),
        ({"SchemaVersion": 1, "ArtifactName": "a", "Results": []}, ErrorCode.UNKNOWN_FORMAT),
    ],
)
def test_bad_trivy_reports_fail_with_a_code(doc, code):
    with pytest.raises(NormalizeError) as info:
        run(doc)
    assert info.value.code == code


def test_missing_vulnerability_id_names_its_position():
    doc = {**_vuln_report(), "CreatedAt": "2024-01-01T00:00:00Z"}
    del doc["Results"][0]["Vulnerabilities"][0]["VulnerabilityID"]
    with pytest.raises(NormalizeError) as info:
        run(doc)
    assert info.value.code == ErrorCode.MISSING_FIELD
    assert "Results[0].Vulnerabilities[0]" in info.value.message
