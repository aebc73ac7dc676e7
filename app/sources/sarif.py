"""SARIF 2.1.0 logs (OASIS Static Analysis Results Interchange Format), bare or in an envelope.

Source of truth: the SARIF 2.1.0 OASIS Standard (2020-03-27), summarised in REFERENCE.md:
`runs[].tool.driver{name, version, rules[]}`, `runs[].results[]{ruleId, ruleIndex, rule, level,
kind, message, locations[].physicalLocation{artifactLocation.uri, region}, fingerprints,
partialFingerprints, baselineState, suppressions}`. CodeQL, Semgrep, DevSkim, njsscan, ShiftLeft
and Trivy (`--format sarif`) write it.

Each run gives one `sast_finding` per result and one `scan_completed` summary. Results that are
not findings are skipped and counted: `kind` pass / notApplicable, and `baselineState` absent
(present in the baseline, gone now: that is a resolution, which later stages infer from the
summary's `finding_keys`). Suppressed results stay findings, flagged `suppressed`.

Rules resolve through `rule.toolComponent` (an index or name into `tool.extensions`), then
`rule.index` / `ruleIndex`, then `ruleId`. Severity: `level`, else the rule's
`defaultConfiguration.level`, else `warning` (`none` when `kind` is informational, review or
open), mapped error -> high, warning -> medium, note -> low, none -> info; a numeric
`security-severity` property (GitHub's convention, on the result or the rule) overrides it with
the CVSS bands (>= 9 critical, >= 7 high, >= 4 medium, > 0 low).

Finding key (REFERENCE.md): tool + entity + ruleId + file path + the first available of
`fingerprints` (alone defines identity), `partialFingerprints`, a hash of the region's snippet,
the location's own message, or the result message with digits blanked (messages often quote
line numbers). Never the line number itself. Repeats within a run get an ordinal.

Event time. SARIF has no mandatory timestamp and most tools write none (four of the six
fixtures have none). Rule, first match wins, and `time_source` names it:
1. the run's `invocations[]`: the latest `endTimeUtc`, else the latest `startTimeUtc`;
2. the run's `versionControlProvenance[].asOfTimeUtc` (the revision that was scanned);
3. the envelope `{"sarif": <log>, "time": ..., "repository": ..., "commit": ...}` producers
   can wrap a time-less log in;
4. otherwise the fixed instant `SARIF_FALLBACK_TIME` (2020-03-27T00:00:00Z, the day SARIF
   2.1.0 became an OASIS Standard) with `time_source` "none". Rejecting such logs would drop
   most real SARIF; the processing clock is forbidden (replays must agree); epoch 0 is falsy
   and far outside any window. A fixed, documented, recognisably synthetic instant keeps
   normalization deterministic, and consumers can order `time_source: none` scans by arrival.

Entity: `repo:<owner/name>` from `versionControlProvenance[].repositoryUri` or the envelope's
`repository`; `image:<repository>` for Trivy's image scans (run `properties.repoTags` /
`imageName`); else `scan:<tool name, lowercased>`.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from typing import Any
from urllib.parse import unquote, urlparse

from app.model.events import Event, event_id, parse_time
from app.model.images import image_repository
from app.sources.base import optional, require, require_object
from app.sources.errors import ErrorCode, NormalizeError
from app.sources.trivy import KeyAllocator, checked_time, cvss_band, field_at, short_text

#: SARIF levels on Vigil's scale.
LEVEL_SEVERITY: dict[str, str] = {
    "error": "high",
    "warning": "medium",
    "note": "low",
    "none": "info",
}

#: Used when neither the log nor its envelope carries any time (see the module docstring).
SARIF_FALLBACK_TIME = "2020-03-27T00:00:00Z"
SARIF_FALLBACK_MS = parse_time(SARIF_FALLBACK_TIME)

MESSAGE_CHARS = 500
DESCRIPTION_CHARS = 200
#: Digit counts are bounded: int() refuses strings of over 4300 digits.
_CWE = re.compile(r"(?i)\bcwe[-_/ ]?(\d{1,9})\b")
_ARGUMENT = re.compile(r"\{(\d{1,9})\}")


class SarifAdapter:
    """SARIF 2.1.0: one `sast_finding` per result and one `scan_completed` per run."""

    name = "sarif"
    family = "scans"

    def matches(self, doc: Any) -> bool:
        if isinstance(doc, dict) and isinstance(doc.get("sarif"), dict):
            doc = doc["sarif"]
        return (
            isinstance(doc, dict)
            and isinstance(doc.get("runs"), list)
            and (doc.get("version") == "2.1.0" or "sarif" in str(doc.get("$schema", "")).lower())
        )

    def normalize(self, doc: Any, raw: bytes) -> list[Event]:
        record = require_object(doc, "SARIF log")
        envelope: dict[str, Any] = {}
        if "sarif" in record:
            envelope = record
            record = require(envelope, "sarif", dict)
        version = require(record, "version", str)
        if version != "2.1.0":
            raise NormalizeError(ErrorCode.INVALID_VALUE, f"unsupported SARIF version {version!r}")
        runs = require(record, "runs", list)
        if not runs:
            raise NormalizeError(ErrorCode.EMPTY, "SARIF log has no runs")
        envelope_time = None
        if envelope.get("time") is not None:
            envelope_time = checked_time(envelope["time"], "time")
        context = {
            "time": envelope_time,
            "repository": optional(envelope, "repository", str),
            "commit": optional(envelope, "commit", str),
        }
        events: list[Event] = []
        for index, run in enumerate(runs):
            run_doc = require_object(run, f"runs[{index}]")
            events.extend(_Run(self.name, run_doc, index, context).events())
        return events


class _Run:
    """One SARIF run: its tool, entity and time, and the events its results become."""

    def __init__(self, source: str, run: dict[str, Any], index: int, context: dict[str, Any]):
        self.source = source
        self.where = f"runs[{index}]"
        self.run = run
        self.index = index
        self.driver = field_at(self.where, require, run, "tool.driver", dict)
        self.tool = field_at(self.where, require, self.driver, "name", str)
        self.tool_version = optional(self.driver, "semanticVersion", str) or optional(
            self.driver, "version", str
        )
        self.extensions = field_at(self.where, optional, run, "tool.extensions", list, [])
        self.artifacts = field_at(self.where, optional, run, "artifacts", list, [])
        provenance = _first_object(
            field_at(self.where, optional, run, "versionControlProvenance", list)
        )
        self.repository_uri = optional(provenance, "repositoryUri", str)
        self.commit = optional(provenance, "revisionId", str) or context["commit"]
        self.branch = optional(provenance, "branch", str)
        self.category = optional(run, "automationDetails.id", str)
        self.entity = self._entity(context["repository"])
        self.ts_ms, self.time_source = self._time(provenance, context["time"])
        self.bases = self._bases()
        self.keys = KeyAllocator()

    def events(self) -> list[Event]:
        """One `sast_finding` per reportable result, then the run's `scan_completed`."""
        findings: list[Event] = []
        counts: Counter[str] = Counter(findings=0, passed=0, absent=0, suppressed=0)
        results = field_at(self.where, optional, self.run, "results", list, [])
        for i, result in enumerate(results):
            where = f"{self.where}.results[{i}]"
            result = require_object(result, where)
            kind = field_at(where, optional, result, "kind", str, "fail")
            if kind in ("pass", "notApplicable"):
                counts["passed"] += 1
                continue
            if optional(result, "baselineState", str) == "absent":
                counts["absent"] += 1
                continue
            event = self._finding(result, kind, where)
            counts["findings"] += 1
            counts["suppressed"] += bool(event.attributes.get("suppressed"))
            findings.append(event)
        keys = sorted(e.attributes["finding_key"] for e in findings)
        summary = {
            "tool": self.tool,
            "tool_version": self.tool_version,
            "run_index": self.index,
            "category": self.category,
            "repository": self.repository_uri,
            "commit": self.commit,
            "branch": self.branch,
            "counts": dict(counts),
            "severity_counts": dict(Counter(e.severity for e in findings)),
            "finding_keys": keys,
            "time_source": self.time_source,
        }
        completed = Event(
            id=event_id(self.source, "scan_completed", self.entity, self.ts_ms, self.index, keys),
            source=self.source,
            type="scan_completed",
            ts_ms=self.ts_ms,
            entity=self.entity,
            severity="info",
            attributes={k: v for k, v in summary.items() if v is not None},
        )
        return [*findings, completed]

    def _finding(self, result: dict[str, Any], kind: str, where: str) -> Event:
        rule_id, rule = self._rule(result, where)
        level = field_at(where, optional, result, "level", str) or optional(
            rule, "defaultConfiguration.level", str
        )
        level = level or ("warning" if kind == "fail" else "none")
        if level not in LEVEL_SEVERITY:
            raise NormalizeError(ErrorCode.INVALID_VALUE, f"{where}: unknown level {level!r}")
        security_severity = _security_severity(result) or _security_severity(rule)
        severity = (
            cvss_band(security_severity) if security_severity is not None else LEVEL_SEVERITY[level]
        )
        message = _message(result, rule, where)
        locations = field_at(where, optional, result, "locations", list, [])
        location = require_object(locations[0], f"{where}.locations[0]") if locations else {}
        physical = field_at(where, optional, location, "physicalLocation", dict, {})
        path = self._path(field_at(where, optional, physical, "artifactLocation", dict, {}), where)
        region = field_at(where, optional, physical, "region", dict, {})
        identity, fingerprint_source = _identity(result, region, location, message)
        key = self.keys.key("sarif", self.entity, self.tool.lower(), rule_id, path, identity)
        tags = _tags(result, rule)
        suppressions = field_at(where, optional, result, "suppressions", list, [])
        attributes: dict[str, Any] = {
            "finding_key": key,
            "tool": self.tool,
            "tool_version": self.tool_version,
            "rule_id": rule_id,
            "rule_name": optional(rule, "name", str),
            "rule_description": short_text(
                optional(rule, "shortDescription.text", str)
                or optional(rule, "fullDescription.text", str),
                DESCRIPTION_CHARS,
            ),
            "help_uri": optional(rule, "helpUri", str),
            "level": level,
            "kind": kind if kind != "fail" else None,
            "path": path,
            "start_line": field_at(where, optional, region, "startLine", int),
            "message": short_text(message, MESSAGE_CHARS),
            "cwe": _cwes(result, rule, tags) or None,
            "tags": tags or None,
            "security_severity": security_severity,
            "fingerprint_source": fingerprint_source,
            "baseline_state": optional(result, "baselineState", str),
            "suppressed": any(
                isinstance(s, dict) and s.get("status", "accepted") == "accepted"
                for s in suppressions
            )
            or None,
            "category": self.category,
        }
        return Event(
            id=event_id(self.source, self.entity, self.ts_ms, self.index, key),
            source=self.source,
            type="sast_finding",
            ts_ms=self.ts_ms,
            entity=self.entity,
            severity=severity,
            attributes={k: v for k, v in attributes.items() if v is not None},
        )

    def _rule(self, result: dict[str, Any], where: str) -> tuple[str, dict[str, Any]]:
        """(ruleId, rule descriptor or {}) of a result."""
        ref = field_at(where, optional, result, "rule", dict, {})
        component = self.driver
        tool_component = field_at(where, optional, ref, "toolComponent", dict)
        if tool_component is not None:
            component = self._component(tool_component, where)
        rules = field_at(where, optional, component, "rules", list, [])
        rule_id = field_at(where, optional, result, "ruleId", str) or field_at(
            where, optional, ref, "id", str
        )
        index = field_at(where, optional, ref, "index", int)
        if index is None:
            index = field_at(where, optional, result, "ruleIndex", int, -1)
        rule: dict[str, Any] = {}
        if index >= 0:
            if index >= len(rules):
                raise NormalizeError(
                    ErrorCode.INVALID_VALUE, f"{where}: rule index {index} is out of range"
                )
            rule = require_object(rules[index], f"{where}: rule {index}")
        elif rule_id is not None:
            candidates = [*rules, *self._extension_rules()] if tool_component is None else rules
            rule = next(
                (r for r in candidates if isinstance(r, dict) and r.get("id") == rule_id), {}
            )
        rule_id = rule_id or optional(rule, "id", str)
        if rule_id is None:
            raise NormalizeError(ErrorCode.MISSING_FIELD, f"{where}: result has no ruleId")
        return rule_id, rule

    def _component(self, ref: dict[str, Any], where: str) -> dict[str, Any]:
        index = field_at(where, optional, ref, "index", int)
        if index is not None:
            if not 0 <= index < len(self.extensions):
                raise NormalizeError(
                    ErrorCode.INVALID_VALUE, f"{where}: toolComponent index {index} is out of range"
                )
            return require_object(self.extensions[index], f"{where}: extension {index}")
        name = field_at(where, optional, ref, "name", str)
        for component in (self.driver, *self.extensions):
            if isinstance(component, dict) and component.get("name") == name:
                return component
        raise NormalizeError(ErrorCode.INVALID_VALUE, f"{where}: unknown toolComponent {name!r}")

    def _extension_rules(self) -> list[Any]:
        rules: list[Any] = []
        for component in self.extensions:
            if isinstance(component, dict) and isinstance(component.get("rules"), list):
                rules.extend(component["rules"])
        return rules

    def _path(self, artifact_location: dict[str, Any], where: str) -> str:
        """The result's file, relative to the scan root when the log says where that was."""
        uri = field_at(where, optional, artifact_location, "uri", str)
        index = field_at(where, optional, artifact_location, "index", int)
        if uri is None and index is not None and 0 <= index < len(self.artifacts):
            uri = optional(self.artifacts[index], "location.uri", str)
        if not uri:
            return ""
        if not uri.startswith("file:"):
            return unquote(uri)
        path = unquote(urlparse(uri).path)
        for base in self.bases:
            if path.startswith(base):
                return path[len(base) :]
        return path

    def _bases(self) -> list[str]:
        """Absolute scan roots: invocation working directories and `originalUriBaseIds`."""
        uris = [
            optional(invocation, "workingDirectory.uri", str)
            for invocation in optional(self.run, "invocations", list, [])
            if isinstance(invocation, dict)
        ]
        for base in optional(self.run, "originalUriBaseIds", dict, {}).values():
            uris.append(base.get("uri") if isinstance(base, dict) else None)
        bases = {
            unquote(urlparse(uri).path).rstrip("/") + "/"
            for uri in uris
            if isinstance(uri, str) and uri.startswith("file:")
        }
        return sorted(bases, key=len, reverse=True)

    def _entity(self, envelope_repository: str | None) -> str:
        repository = self.repository_uri or envelope_repository
        if repository:
            return f"repo:{repository_name(repository)}"
        properties = optional(self.run, "properties", dict, {})
        tags = properties.get("repoTags") if isinstance(properties.get("repoTags"), list) else []
        image = properties.get("imageName")
        if isinstance(image, str) and image:
            return f"image:{image_repository(image, tags)}"
        tool = re.sub(r"\s+", "-", self.tool.strip().lower())
        return f"scan:{tool}"

    def _time(self, provenance: dict[str, Any], envelope_time: int | None) -> tuple[int, str]:
        invocations = field_at(self.where, optional, self.run, "invocations", list, [])
        for field_name in ("endTimeUtc", "startTimeUtc"):
            times = [
                checked_time(invocation[field_name], f"{self.where}.invocations[{i}].{field_name}")
                for i, invocation in enumerate(invocations)
                if isinstance(invocation, dict) and invocation.get(field_name) is not None
            ]
            if times:
                return max(times), f"invocations.{field_name}"
        as_of = optional(provenance, "asOfTimeUtc")
        if as_of is not None:
            return checked_time(as_of, "versionControlProvenance.asOfTimeUtc"), (
                "versionControlProvenance.asOfTimeUtc"
            )
        if envelope_time is not None:
            return envelope_time, "envelope.time"
        return SARIF_FALLBACK_MS, "none"


def repository_name(uri: str) -> str:
    """`owner/name` (or a GitLab group path) from a repository URI or scp-style git address."""
    text = uri.strip()
    if "://" in text:
        text = urlparse(text).path
    elif re.match(r"^[\w.-]+@[\w.-]+:", text):  # git@github.com:owner/name.git
        text = text.split(":", 1)[1]
    text = text.strip("/")
    return text.removesuffix(".git") or uri


def _identity(
    result: dict[str, Any], region: dict[str, Any], location: dict[str, Any], message: str
) -> tuple[str, str]:
    """The identifying part of a finding key and where it came from (never a line number)."""
    for field_name in ("fingerprints", "partialFingerprints"):
        prints = optional(result, field_name, dict)
        if prints:
            return "&".join(f"{k}={v}" for k, v in sorted(prints.items())), field_name
    snippet = optional(region, "snippet.text", str)
    if snippet and snippet.strip():
        return _digest(" ".join(snippet.split())), "snippet"
    location_message = optional(location, "message.text", str)
    if location_message:
        return _digest(location_message), "location_message"
    return _digest(re.sub(r"\d+", "0", message)), "message"


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _message(result: dict[str, Any], rule: dict[str, Any], where: str) -> str:
    """The result message: its text, else the rule's message string, with {n} arguments."""
    message = field_at(where, require, result, "message", dict)
    text = field_at(where, optional, message, "text", str) or field_at(
        where, optional, message, "markdown", str
    )
    strings = optional(rule, "messageStrings", dict, {})
    message_id = message.get("id")
    if text is None and isinstance(message_id, str) and isinstance(strings.get(message_id), dict):
        text = optional(strings[message_id], "text", str)
    if text is None:
        raise NormalizeError(ErrorCode.MISSING_FIELD, f"{where}: result message has no text")
    arguments = optional(message, "arguments", list, [])
    if arguments:
        text = _ARGUMENT.sub(
            lambda m: (
                str(arguments[int(m.group(1))]) if int(m.group(1)) < len(arguments) else m.group(0)
            ),
            text,
        )
    return text


def _security_severity(descriptor: dict[str, Any]) -> float | None:
    """GitHub's `security-severity` property (a CVSS-like 0-10 number, often a string)."""
    value = optional(descriptor, "properties", dict, {}).get("security-severity")
    try:
        score = float(value) if value is not None and not isinstance(value, bool) else None
    except (TypeError, ValueError):
        return None  # a tool-specific property: an unreadable one is ignored, not fatal
    return score if score is not None and 0 <= score <= 10 else None


def _tags(result: dict[str, Any], rule: dict[str, Any]) -> list[str]:
    tags: list[str] = []
    for descriptor in (rule, result):
        for tag in optional(descriptor, "properties.tags", list, []):
            if isinstance(tag, str) and tag not in tags:
                tags.append(tag)
    return tags


def _cwes(result: dict[str, Any], rule: dict[str, Any], tags: list[str]) -> list[str]:
    """CWE ids named in tags, `cwe` properties or rule relationships, as `CWE-<n>`."""
    texts: list[str] = list(tags)
    for descriptor in (rule, result):
        cwe = optional(descriptor, "properties", dict, {}).get("cwe")
        texts.extend(cwe if isinstance(cwe, list) else [cwe])
    for relation in optional(rule, "relationships", list, []):
        if optional(relation, "target.toolComponent.name", str, "").upper() == "CWE":
            texts.append(f"CWE-{optional(relation, 'target.id', str, '')}")
    found = {
        f"CWE-{int(m.group(1))}" for t in texts if isinstance(t, str) for m in _CWE.finditer(t)
    }
    return sorted(found, key=lambda c: int(c[4:]))


def _first_object(items: list[Any] | None) -> dict[str, Any]:
    return items[0] if items and isinstance(items[0], dict) else {}
