"""Scan reports: Trivy image reports of each service's running image (the CVEs its scenario
names, EPSS and KEV enriched for some) and Semgrep SARIF logs of its code."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from app.generator.fleet import GITHUB_SERVICES, IMAGES, SERVICES, STACKS, hex_id
from app.generator.scenarios import SCENARIOS
from app.generator.source import Source
from app.generator.vulnerabilities import LANG_CVES, LANG_RESULT, OS_CVES, SEMGREP_RULES, Cve


@dataclass(eq=False)
class Scans(Source):
    """Trivy and Semgrep reports; a service's first scan also finds its scenario's
    `fixed_cves`."""

    #: the services scanned so far
    _scanned: list[str] = field(default_factory=list, init=False)

    def report(self, ts_ms: int) -> bytes:
        """A Trivy image report (4 in 5), else a Semgrep SARIF log."""
        if self.rnd.random() < 0.8:
            return self._trivy(ts_ms)
        return self._sarif(ts_ms)

    def _trivy(self, ts_ms: int) -> bytes:
        rnd = self.rnd
        service = rnd.choice(SERVICES)
        stack = STACKS[service]
        scenario = SCENARIOS[service]
        known = {c[0]: c for c in (*OS_CVES, *LANG_CVES[stack])}
        first = service not in self._scanned
        if first:
            self._scanned.append(service)
        ids = (*scenario.cves, *scenario.fixed_cves) if first else scenario.cves
        found = sorted(known[cve_id] for cve_id in ids)
        enriched = scenario.enriched or rnd.random() < 0.3
        version = self.releases.version(service)
        reference = f"{IMAGES[service]}:{version}"
        digest = hex_id(service, version, size=32)
        os_target = f"{reference} (alpine 3.18.4)"
        lang_target = LANG_RESULT[stack][0].format(service=service)
        os_vulns = [vulnerability(service, c, True, enriched) for c in found if c in OS_CVES]
        lang_vulns = [vulnerability(service, c, False, enriched) for c in found if c not in OS_CVES]
        os_result: dict[str, Any] = {"Target": os_target, "Class": "os-pkgs", "Type": "alpine"}
        lang_result: dict[str, Any] = {
            "Target": lang_target,
            "Class": "lang-pkgs",
            "Type": LANG_RESULT[stack][1],
        }
        if os_vulns:
            os_result["Vulnerabilities"] = os_vulns
        if lang_vulns:
            lang_result["Vulnerabilities"] = lang_vulns
        report = {
            "SchemaVersion": 2,
            "Trivy": {"Version": "0.50.1"},
            "ReportID": self.uuid(),
            "CreatedAt": self.clock.nanos(ts_ms),
            "ArtifactID": f"sha256:{hex_id(service, version, 'config', size=32)}",
            "ArtifactName": reference,
            "ArtifactType": "container_image",
            "Metadata": {
                "OS": {"Family": "alpine", "Name": "3.18.4"},
                "ImageID": f"sha256:{hex_id(service, version, 'config', size=32)}",
                "RepoTags": [reference],
                "RepoDigests": [f"{IMAGES[service]}@sha256:{digest}"],
                "ImageConfig": {"architecture": "amd64", "os": "linux"},
            },
            "Results": [os_result, lang_result],
        }
        return orjson.dumps(report)

    def _sarif(self, ts_ms: int) -> bytes:
        rnd = self.rnd
        service = rnd.choice(SERVICES)
        rules = SEMGREP_RULES[STACKS[service]]
        results = []
        for index, (rule_id, message, level, _cwe, path, line) in enumerate(rules):
            path = path.format(service=service)
            if rnd.random() < 0.3 or not SCENARIOS[service].sast:
                continue  # fixed, or not reached this run
            results.append(
                {
                    "ruleId": rule_id,
                    "ruleIndex": index,
                    "level": level,
                    "message": {"text": message},
                    "locations": [
                        {
                            "physicalLocation": {
                                "artifactLocation": {"uri": path, "uriBaseId": "%SRCROOT%"},
                                "region": {"startLine": line, "endLine": line + 2},
                            }
                        }
                    ],
                    "fingerprints": {"matchBasedId/v1": hex_id(service, rule_id, path, size=32)},
                    "properties": {},
                }
            )
        host = "github.com" if service in GITHUB_SERVICES else "gitlab.acme.example"
        log = {
            "$schema": "https://docs.oasis-open.org/sarif/sarif/v2.1.0/os/schemas/sarif-schema-2.1.0.json",
            "version": "2.1.0",
            "runs": [
                {
                    "tool": {
                        "driver": {
                            "name": "Semgrep OSS",
                            "semanticVersion": "1.56.0",
                            "informationUri": "https://semgrep.dev",
                            "rules": [_semgrep_rule(*rule) for rule in rules],
                        }
                    },
                    "invocations": [
                        {
                            "executionSuccessful": True,
                            "toolExecutionNotifications": [],
                            "endTimeUtc": self.clock.millis(ts_ms),
                        }
                    ],
                    "versionControlProvenance": [
                        {
                            "repositoryUri": f"https://{host}/acme/{service}",
                            "revisionId": self.sha(),
                            "branch": "main",
                        }
                    ],
                    "results": results,
                }
            ],
        }
        return orjson.dumps(log)


def vulnerability(service: str, cve: Cve, os_pkg: bool, enriched: bool) -> dict[str, Any]:
    """Trivy's entry of `cve` in `service`'s image: an OS package (`os_pkg`) or one of its
    stack's; with EPSS and KEV when `enriched`."""
    cve_id, pkg, installed, fixed, severity, score, vector, title, cwe, published, epss = cve[:11]
    kev_added, ransomware = cve[11], cve[12]
    stack = STACKS[service]
    if os_pkg:
        purl = f"pkg:apk/alpine/{pkg}@{installed}?arch=x86_64&distro=3.18.4"
        pkg_path = ""
    else:
        _, _, purl_type, path = LANG_RESULT[stack]
        purl_name = pkg.replace(":", "/") if purl_type == "maven" else pkg
        purl = f"pkg:{purl_type}/{purl_name}@{installed}"
        short = pkg.rsplit(":", 1)[-1]
        pkg_path = path.format(name=pkg, short=short, version=installed, service=service)
    vuln: dict[str, Any] = {
        "VulnerabilityID": cve_id,
        "PkgID": f"{pkg}@{installed}",
        "PkgName": pkg,
        "PkgIdentifier": {"PURL": purl},
        "InstalledVersion": installed,
    }
    if pkg_path:
        vuln["PkgPath"] = pkg_path
    if fixed:
        vuln["FixedVersion"] = fixed
    vuln["Status"] = "fixed" if fixed else "affected"
    vuln.update(
        {
            "SeveritySource": "nvd",
            "PrimaryURL": f"https://avd.aquasec.com/nvd/{cve_id.lower()}",
            "Title": title,
            "Severity": severity,
            "CweIDs": [cwe] if cwe else [],
            "CVSS": {"nvd": {"V3Vector": f"CVSS:3.1/{vector}", "V3Score": score}},
            "PublishedDate": published,
            "LastModifiedDate": published,
        }
    )
    if enriched:
        vuln["EPSS"] = {"Score": epss, "Percentile": round(min(0.9999, 0.35 + epss), 4)}
        if kev_added:
            vuln["KEV"] = {"dateAdded": kev_added, "knownRansomwareCampaignUse": ransomware}
    return vuln


def _semgrep_rule(rule_id: str, message: str, level: str, cwe: str, *_: Any) -> dict[str, Any]:
    return {
        "id": rule_id,
        "name": rule_id,
        "shortDescription": {"text": message},
        "fullDescription": {"text": message},
        "defaultConfiguration": {"level": level},
        "helpUri": f"https://semgrep.dev/r/{rule_id}",
        "properties": {"precision": "very-high", "tags": [cwe, "security"]},
    }
