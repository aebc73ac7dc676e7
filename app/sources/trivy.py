"""Trivy JSON reports (`trivy <target> --format json`, SchemaVersion 2).

Source of truth: Trivy's report types (pkg/types/report.go) as summarised in REFERENCE.md:
`ArtifactName`, `ArtifactType`, `Metadata{ImageID, RepoDigests, RepoTags, OS, ImageConfig}`,
`Results[]{Target, Class, Type, Vulnerabilities[], Misconfigurations[], Secrets[]}`.

One report becomes one event per finding plus one `scan_completed` summary:

- `vulnerability`: one per `Vulnerabilities[]` entry.
- `misconfiguration`: one per `Misconfigurations[]` entry with `Status` FAIL (or no status).
  PASS and EXCEPTION entries are not findings: they are skipped and counted in the summary
  (`MisconfSummary` counts win when Trivy wrote them, as they also cover unlisted passes).
- `secret`: one per `Secrets[]` entry. `Match` and `Code` (the matched text and the lines
  around it) are dropped: only the rule, category, title and line numbers are kept.

Finding keys (REFERENCE.md, "Stable finding keys") hash tool + artifact + target + what was
found. The artifact is the image repository or the scanned path, not the digest: a rebuilt image
keeps its open findings, and the next scan resolves those that are gone. The OS-package target
(`<ArtifactName> (alpine 3.9.4)`) embeds the tag, so it is keyed as `os-pkgs`. Packages are
keyed by PURL without qualifiers (their `distro=`/`arch=` spelling varies between Trivy
versions), else PkgID, else `PkgName@InstalledVersion`, plus `PkgPath` when present. Severity,
CVSS, fixed version and line numbers never enter a key. A key repeated within one report gets
an ordinal suffix so that each finding stays distinct.

Event time: `CreatedAt` when present (Trivy >= 0.48). Older reports carry no scan time, so the
fallback is the latest of the lower bounds the report proves: the scan ran after the image was
built (`Metadata.ImageConfig.created`, ignoring Go's zero time) and after the newest advisory it
reports was published or modified. `time_source` records which field gave the time; a report
with none of them raises MISSING_FIELD.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from app.model.events import SEVERITIES, Event, event_id, parse_time
from app.model.images import image_repository
from app.sources.base import finding_key, optional, require, require_object
from app.sources.errors import ErrorCode, NormalizeError

#: Trivy severities on Vigil's scale. UNKNOWN follows Grype's risk model (unknown counts as a
#: medium midpoint) unless a CVSS v3 score gives a band.
TRIVY_SEVERITY: dict[str, str] = {
    "CRITICAL": "critical",
    "HIGH": "high",
    "MEDIUM": "medium",
    "LOW": "low",
    "UNKNOWN": "medium",
}

#: Finding type -> its key in the summary's `counts` (plural: a bare `secret` key is masked).
COUNT_NAMES: dict[str, str] = {
    "vulnerability": "vulnerabilities",
    "misconfiguration": "misconfigurations",
    "secret": "secrets",
}

TITLE_CHARS = 200
MESSAGE_CHARS = 500


class TrivyAdapter:
    """Trivy JSON reports: one event per vulnerability, misconfiguration and secret, plus a
    `scan_completed` summary listing every finding key of the report."""

    name = "trivy"
    family = "scans"

    def matches(self, doc: Any) -> bool:
        return (
            isinstance(doc, dict)
            and doc.get("SchemaVersion") == 2
            and not isinstance(doc.get("SchemaVersion"), bool)
            and ("Results" in doc or "ArtifactName" in doc)
        )

    def normalize(self, doc: Any, raw: bytes) -> list[Event]:
        report = require_object(doc, "Trivy report")
        artifact_name = require(report, "ArtifactName", str)
        if not artifact_name.strip():
            raise NormalizeError(ErrorCode.INVALID_VALUE, "'ArtifactName' is empty")
        metadata = optional(report, "Metadata", dict, {})
        results = optional(report, "Results", list, [])
        artifact_type = optional(report, "ArtifactType", str) or (
            "container_image"
            if metadata.get("ImageID") or metadata.get("RepoTags")
            else "filesystem"
        )
        if artifact_type == "container_image":
            artifact = image_repository(artifact_name, _image_refs(metadata))
            entity = f"image:{artifact}"
        else:
            artifact = artifact_name
            entity = f"fs:{artifact}"
        report_ctx = _Report(self.name, artifact, artifact_name, entity)
        for index, result in enumerate(results):
            report_ctx.add_result(require_object(result, f"Results[{index}]"), index)
        ts_ms, time_source = _report_time(report, metadata, report_ctx.dates)
        for event in report_ctx.events:
            event.ts_ms = ts_ms
            event.id = event_id(self.name, entity, ts_ms, event.attributes["finding_key"])
        summary = {
            "tool": "trivy",
            "tool_version": optional(report, "Trivy.Version", str),
            "artifact": artifact,
            "artifact_name": artifact_name,
            "artifact_type": artifact_type,
            "artifact_id": optional(report, "ArtifactID", str),
            "image_id": optional(metadata, "ImageID", str),
            "repo_digests": optional(metadata, "RepoDigests", list),
            "report_id": optional(report, "ReportID", str),
            "targets": report_ctx.targets,
            "counts": dict(report_ctx.counts),
            "severity_counts": dict(Counter(e.severity for e in report_ctx.events)),
            "finding_keys": sorted(e.attributes["finding_key"] for e in report_ctx.events),
            "time_source": time_source,
        }
        completed = Event(
            id=event_id(self.name, "scan_completed", entity, ts_ms, summary["finding_keys"]),
            source=self.name,
            type="scan_completed",
            ts_ms=ts_ms,
            entity=entity,
            severity="info",
            attributes={k: v for k, v in summary.items() if v is not None},
        )
        return [*report_ctx.events, completed]


def _image_refs(metadata: dict[str, Any]) -> list[str]:
    tags = optional(metadata, "RepoTags", list, [])
    digests = optional(metadata, "RepoDigests", list, [])
    return [ref for ref in (*tags, *digests) if isinstance(ref, str)]


class KeyAllocator:
    """Hands out finding keys, adding an ordinal when the same identity repeats in one scan."""

    def __init__(self) -> None:
        self._seen: Counter[tuple[str, ...]] = Counter()

    def key(self, *parts: str) -> str:
        """The finding key for `parts`; the n-th repeat (n >= 1) also hashes `#n`."""
        ordinal = self._seen[parts]
        self._seen[parts] += 1
        return finding_key(*parts) if ordinal == 0 else finding_key(*parts, f"#{ordinal}")


class _Report:
    """Collects the findings of one report (times are filled in once the report time is known)."""

    def __init__(self, source: str, artifact: str, artifact_name: str, entity: str) -> None:
        self.source = source
        self.artifact = artifact
        self.artifact_name = artifact_name
        self.entity = entity
        self.events: list[Event] = []
        self.targets: list[str] = []
        self.counts: Counter[str] = Counter(vulnerabilities=0, misconfigurations=0, secrets=0)
        self.dates: list[tuple[str, Any]] = []
        self.keys = KeyAllocator()

    def add_result(self, result: dict[str, Any], index: int) -> None:
        where = f"Results[{index}]"
        target = field_at(where, require, result, "Target", str)
        if target not in self.targets:
            self.targets.append(target)
        cls = field_at(where, optional, result, "Class", str)
        target_key = (
            "os-pkgs"
            if cls == "os-pkgs" or target.startswith(f"{self.artifact_name} (")
            else target
        )
        common = {"target": target, "class": cls, "target_type": optional(result, "Type", str)}
        for i, vuln in _items(result, "Vulnerabilities", where):
            self._vulnerability(vuln, f"{where}.Vulnerabilities[{i}]", target_key, common)
        summary = field_at(where, optional, result, "MisconfSummary", dict)
        skipped: Counter[str] = Counter()
        for i, misconf in _items(result, "Misconfigurations", where):
            status = field_at(f"{where}.Misconfigurations[{i}]", optional, misconf, "Status", str)
            if status in ("PASS", "EXCEPTION"):
                skipped[status] += 1
                continue
            self._misconfiguration(misconf, f"{where}.Misconfigurations[{i}]", target_key, common)
        if summary is not None:
            skipped["PASS"] = _count(summary, "Successes", where) or skipped["PASS"]
            skipped["EXCEPTION"] = _count(summary, "Exceptions", where) or skipped["EXCEPTION"]
        self.counts["misconfigurations_passed"] += skipped["PASS"]
        self.counts["misconfigurations_excepted"] += skipped["EXCEPTION"]
        for i, secret in _items(result, "Secrets", where):
            self._secret(secret, f"{where}.Secrets[{i}]", target_key, common)

    def _emit(self, kind: str, severity: str, attributes: dict[str, Any]) -> None:
        self.counts[COUNT_NAMES[kind]] += 1
        attributes["artifact"] = self.artifact
        self.events.append(
            Event(
                id="",
                source=self.source,
                type=kind,
                ts_ms=0,
                entity=self.entity,
                severity=severity,
                attributes={k: v for k, v in attributes.items() if v is not None},
            )
        )

    def _vulnerability(
        self, vuln: dict[str, Any], where: str, target_key: str, common: dict[str, Any]
    ) -> None:
        vuln_id = field_at(where, require, vuln, "VulnerabilityID", str)
        pkg_name = field_at(where, require, vuln, "PkgName", str)
        installed = field_at(where, optional, vuln, "InstalledVersion", str)
        pkg_id = field_at(where, optional, vuln, "PkgID", str)
        purl = field_at(where, optional, vuln, "PkgIdentifier.PURL", str)
        pkg_path = field_at(where, optional, vuln, "PkgPath", str)
        package = _purl_identity(purl) if purl else pkg_id or f"{pkg_name}@{installed or ''}"
        key = self.keys.key("trivy", self.artifact, target_key, pkg_path or "", package, vuln_id)
        label = field_at(where, optional, vuln, "Severity", str, "UNKNOWN")
        cvss = _max_cvss(
            field_at(where, optional, vuln, "CVSS", dict, {}), optional(vuln, "SeveritySource", str)
        )
        severity = _severity(label, cvss[0] if cvss else None, where)
        for field_name in ("PublishedDate", "LastModifiedDate"):
            if vuln.get(field_name) is not None:
                self.dates.append((f"Vulnerabilities.{field_name}", vuln[field_name]))
        title = optional(vuln, "Title", str) or optional(vuln, "Description", str)
        attributes: dict[str, Any] = {
            "finding_key": key,
            "vulnerability_id": vuln_id,
            "pkg_name": pkg_name,
            "pkg_id": pkg_id,
            "pkg_path": pkg_path,
            "purl": purl,
            "installed_version": installed,
            "fixed_version": optional(vuln, "FixedVersion", str),
            "status": optional(vuln, "Status", str),
            "severity_label": label,
            "severity_source": optional(vuln, "SeveritySource", str),
            "cvss": cvss[0] if cvss else None,
            "cvss_vector": cvss[1] if cvss else None,
            "cvss_source": cvss[2] if cvss else None,
            "cwe_ids": field_at(where, optional, vuln, "CweIDs", list),
            "published_date": optional(vuln, "PublishedDate", str),
            "last_modified_date": optional(vuln, "LastModifiedDate", str),
            "primary_url": optional(vuln, "PrimaryURL", str),
            "title": short_text(title, TITLE_CHARS),
            **common,
            **_exploit_fields(vuln),
        }
        self._emit("vulnerability", severity, attributes)

    def _misconfiguration(
        self, misconf: dict[str, Any], where: str, target_key: str, common: dict[str, Any]
    ) -> None:
        check_id = field_at(where, optional, misconf, "AVDID", str) or field_at(
            where, require, misconf, "ID", str
        )
        resource = field_at(where, optional, misconf, "CauseMetadata.Resource", str)
        key = self.keys.key(
            "trivy", self.artifact, target_key, "misconfig", check_id, resource or ""
        )
        label = field_at(where, optional, misconf, "Severity", str, "UNKNOWN")
        attributes: dict[str, Any] = {
            "finding_key": key,
            "check_id": optional(misconf, "ID", str),
            "avd_id": optional(misconf, "AVDID", str),
            "check_type": optional(misconf, "Type", str),
            "title": short_text(optional(misconf, "Title", str), TITLE_CHARS),
            "message": short_text(optional(misconf, "Message", str), MESSAGE_CHARS),
            "resolution": short_text(optional(misconf, "Resolution", str), MESSAGE_CHARS),
            "namespace": optional(misconf, "Namespace", str),
            "status": optional(misconf, "Status", str, "FAIL"),
            "severity_label": label,
            "primary_url": optional(misconf, "PrimaryURL", str),
            "resource": resource,
            "provider": optional(misconf, "CauseMetadata.Provider", str),
            "service": optional(misconf, "CauseMetadata.Service", str),
            "start_line": optional(misconf, "CauseMetadata.StartLine", int),
            "end_line": optional(misconf, "CauseMetadata.EndLine", int),
            **common,
        }
        self._emit("misconfiguration", _severity(label, None, where), attributes)

    def _secret(
        self, secret: dict[str, Any], where: str, target_key: str, common: dict[str, Any]
    ) -> None:
        rule_id = field_at(where, require, secret, "RuleID", str)
        # Identity never includes the matched text, not even hashed: ordinals tell repeats apart.
        key = self.keys.key("trivy", self.artifact, target_key, "secret", rule_id)
        label = field_at(where, optional, secret, "Severity", str, "UNKNOWN")
        attributes: dict[str, Any] = {
            "finding_key": key,
            "rule_id": rule_id,
            "category": optional(secret, "Category", str),
            "title": short_text(optional(secret, "Title", str), TITLE_CHARS),
            "severity_label": label,
            "start_line": field_at(where, optional, secret, "StartLine", int),
            "end_line": field_at(where, optional, secret, "EndLine", int),
            **common,
        }
        self._emit("secret", _severity(label, None, where), attributes)


def _items(result: dict[str, Any], field_name: str, where: str):
    """(index, object) pairs of a result's finding list; null or absent means none."""
    entries = field_at(where, optional, result, field_name, list, [])
    for index, entry in enumerate(entries):
        yield index, require_object(entry, f"{where}.{field_name}[{index}]")


def field_at(where: str, getter, doc: Any, path: str, *args: Any) -> Any:
    """Call a base.py field getter, naming the record's position in any error it raises."""
    try:
        return getter(doc, path, *args)
    except NormalizeError as exc:
        raise NormalizeError(exc.code, f"{where}: {exc.message}") from None


def _count(summary: dict[str, Any], field_name: str, where: str) -> int:
    value = field_at(f"{where}.MisconfSummary", optional, summary, field_name, int, 0)
    if value < 0:
        raise NormalizeError(ErrorCode.INVALID_VALUE, f"{where}.MisconfSummary.{field_name} < 0")
    return value


def short_text(text: str | None, limit: int) -> str | None:
    """`text` cut to `limit` characters (ending in an ellipsis when cut); None when empty."""
    if not text:
        return None
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _purl_identity(purl: str) -> str:
    """A PURL without its qualifiers and subpath (`?arch=...&distro=...`, `#...`)."""
    return purl.split("#", 1)[0].split("?", 1)[0]


def _severity(label: str, cvss: float | None, where: str) -> str:
    severity = TRIVY_SEVERITY.get(label.upper())
    if severity is None:
        raise NormalizeError(ErrorCode.INVALID_VALUE, f"{where}: unknown severity {label!r}")
    if label.upper() == "UNKNOWN" and cvss is not None:
        return cvss_band(cvss)
    return severity


def cvss_band(score: float) -> str:
    """CVSS v3 qualitative bands (none 0.0 -> info, low, medium, high 7.0, critical 9.0)."""
    if score >= 9.0:
        return "critical"
    if score >= 7.0:
        return "high"
    if score >= 4.0:
        return "medium"
    return "low" if score > 0 else SEVERITIES[0]


def _max_cvss(cvss: dict[str, Any], preferred: str | None) -> tuple[float, str | None, str] | None:
    """(score, vector, source) of the highest V3 score; ties prefer `SeveritySource`."""
    scored = []
    for source, entry in cvss.items():
        score = entry.get("V3Score") if isinstance(entry, dict) else None
        if isinstance(score, int | float) and not isinstance(score, bool) and 0 <= score <= 10:
            vector = entry.get("V3Vector")
            scored.append((-float(score), source != preferred, source, vector))
    if not scored:
        return None
    neg_score, _, source, vector = min(scored)
    return -neg_score, vector if isinstance(vector, str) else None, source


def _exploit_fields(vuln: dict[str, Any]) -> dict[str, Any]:
    """EPSS and CISA KEV fields some enrichers add to Trivy records (omitted when absent)."""
    out: dict[str, Any] = {}
    epss = next((vuln[k] for k in ("EPSS", "Epss", "epss") if vuln.get(k) is not None), None)
    if isinstance(epss, dict):
        out["epss"] = _number(next((epss[k] for k in ("Score", "score") if k in epss), None))
        out["epss_percentile"] = _number(epss.get("Percentile", epss.get("percentile")))
    else:
        out["epss"] = _number(epss)
    kev = next(
        (
            vuln[k]
            for k in ("KEV", "Kev", "kev", "CisaKEV", "KnownExploited")
            if vuln.get(k) is not None
        ),
        None,
    )
    if isinstance(kev, dict):
        out["kev"] = True
        ransomware = kev.get("knownRansomwareCampaignUse", kev.get("KnownRansomwareCampaignUse"))
        out["kev_ransomware"] = ransomware
    elif isinstance(kev, bool):
        out["kev"] = kev
    return {k: v for k, v in out.items() if isinstance(v, int | float | str | bool)}


def _number(value: Any) -> float | None:
    try:
        return float(value) if not isinstance(value, bool) else None
    except (TypeError, ValueError):
        return None


#: Event times must fall in 1970-01-01 .. 9999-12-31 (Event.time cannot format others).
MAX_TS_MS = parse_time("9999-12-31T23:59:59Z")


def checked_time(value: Any, path: str) -> int:
    """A record timestamp in epoch ms, or INVALID_VALUE (unparseable, <= epoch, past 9999)."""
    try:
        ts_ms = parse_time(value)
    except (ValueError, OverflowError):
        ts_ms = -1
    if not 0 < ts_ms <= MAX_TS_MS:
        raise NormalizeError(ErrorCode.INVALID_VALUE, f"'{path}' is not a timestamp: {value!r}")
    return ts_ms


def _report_time(
    report: dict[str, Any], metadata: dict[str, Any], dates: list[tuple[str, Any]]
) -> tuple[int, str]:
    """The report's time and the field it came from (see the module docstring)."""
    if report.get("CreatedAt") is not None:
        return checked_time(report["CreatedAt"], "CreatedAt"), "CreatedAt"
    candidates = [
        ("Metadata.ImageConfig.created", optional(metadata, "ImageConfig.created")),
        *dates,
    ]
    best: tuple[int, str] | None = None
    for source, value in candidates:
        try:
            ts_ms = checked_time(value, source)
        except NormalizeError:
            continue  # a fallback hint, not a required field: unusable ones (Go's zero time
            # 0001-01-01 included) are ignored
        if best is None or ts_ms > best[0]:
            best = (ts_ms, source)
    if best is None:
        raise NormalizeError(
            ErrorCode.MISSING_FIELD,
            "required field 'CreatedAt' is missing and the report has no other usable time",
        )
    return best
