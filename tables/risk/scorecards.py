"""Deployment scorecards and the change gate: allow | warn | block, with reasons and a score.

Both read one service's risk state (tables/risk/model.py `new_subject`) at a time `now`:

- `scorecard(service_state, deployment, config)`: on each deployment (the risk stage emits it
  on `scorecards`, key service): `{id, service, deployment, decision, reasons, score,
  contributions, facts, time}`.
- `gate(service_state, proposed_change, now_ms, config)`: the synchronous `/gate/{service}`
  answer for a change about to ship: `{service, decision, reasons, score, contributions,
  facts, time}`.

Reasons (each `{code, decision, message, count, items}`), decision = the strongest:

| code | decision | when |
|---|---|---|
| kev_finding | block | an open finding in CISA KEV (in the deployed artifact when named) |
| critical_finding | warn (block: block_critical_findings) | an open critical finding |
| firing_incident | block if critical, else warn | a firing runtime / prom alert, violation |
| recent_anomaly | warn | an anomaly within `recent_ms` |
| failing_ci | block | failed checks: of the commit when its runs are known, else of its |
| | | branch, else of the main branches |
| flaky_ci | warn | a job failed then passed on the same commit within `ci_window_ms` |
| ci_failure_rate | warn | >= ci_failure_rate_warn with >= min_runs runs |
| change_failure_rate | warn | >= cfr_warn with >= min_deployments deployments |
| open_drift | warn | open drift or compliance records |
| large_change | warn | >= large_change_lines lines or >= large_change_files files |
| previous_deploy_failed | warn | the previous deployment failed or was followed by an |
| | | incident, within `incident_window_ms` |
| deploy_cooldown | warn | the previous deployment is more recent than `deploy_cooldown_ms` |
| risk_score | warn / block | score >= warn_score / block_score, only when it raises the |
| | | decision the reasons above gave |

The score is the service's risk score at `now` with the change's size as one more `change`
item (`risk_model.change_points`); its contributions add up to it exactly.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.model.events import event_id, format_time
from app.model.images import image_repository
from tables.risk.model import (
    DECISIONS,
    RiskConfig,
    assess,
    change_failure,
    change_points,
    change_size,
    ci_metrics,
    deployment_time,
    item_anchor,
    item_open,
    max_decision,
    on_branch,
)

_MAX_LISTED = 5


def _reason(code: str, decision: str, message: str, items: list[Any]) -> dict[str, Any]:
    return {
        "code": code,
        "decision": decision,
        "message": message,
        "count": len(items),
        "items": items[:_MAX_LISTED],
    }


def _listed(names: list[str]) -> str:
    shown = ", ".join(names[:3])
    return shown + (f" and {len(names) - 3} more" if len(names) > 3 else "")


def _artifact_matches(item: Mapping[str, Any], artifact: str) -> bool:
    details = item.get("d") or {}
    found = details.get("artifact")
    if isinstance(found, str) and image_repository(found) == artifact:
        return True
    return item.get("e") == f"image:{artifact}"


def _finding_reasons(state, change, config) -> list[dict[str, Any]]:
    items = state.get("items", {})
    artifact = change.get("artifact")
    artifact = image_repository(artifact) if isinstance(artifact, str) and artifact else None
    kev, critical = [], []
    for key in sorted(items):
        item = items[key]
        if item.get("c") != "findings" or not item_open(item):
            continue
        if artifact is not None and not _artifact_matches(item, artifact):
            continue
        details = item.get("d") or {}
        name = details.get("vulnerability_id") or details.get("rule_id") or key
        entry = {"key": key, "id": name, "entity": item.get("e"), "severity": item.get("sev")}
        if details.get("kev"):
            kev.append(entry)
        elif item.get("sev") == "critical":
            critical.append(entry)
    where = f" in {artifact}" if artifact else ""
    reasons = []
    if kev:
        names = [e["id"] for e in kev]
        message = f"{len(kev)} open known-exploited (KEV) finding(s){where}: {_listed(names)}"
        reasons.append(_reason("kev_finding", "block", message, kev))
    if critical:
        decision = "block" if config.block_critical_findings else "warn"
        names = [e["id"] for e in critical]
        message = f"{len(critical)} open critical finding(s){where}: {_listed(names)}"
        reasons.append(_reason("critical_finding", decision, message, critical))
    return reasons


def _incident_reasons(state, now_ms, config) -> list[dict[str, Any]]:
    items = state.get("items", {})
    firing, anomalies = [], []
    for key in sorted(items):
        item = items[key]
        details = item.get("d") or {}
        is_alert = item.get("c") == "incidents" or (
            item.get("c") == "drift" and item.get("m") == "decay"
        )
        if is_alert and item_open(item) and item.get("sev") in ("medium", "high", "critical"):
            name = details.get("alertname") or key
            firing.append({"key": key, "alertname": name, "severity": item.get("sev")})
        elif item.get("c") == "anomalies":
            anchor = item_anchor(item)
            if anchor is not None and now_ms - config.recent_ms <= anchor <= now_ms:
                anomalies.append({"key": key, "name": details.get("name"), "time_ms": anchor})
    reasons = []
    if firing:
        decision = "block" if any(f["severity"] == "critical" for f in firing) else "warn"
        top = sorted(firing, key=lambda f: (f["severity"] != "critical", f["key"]))
        names = [f"{f['alertname']} ({f['severity']})" for f in top]
        message = f"{len(firing)} firing incident(s) on the service: {_listed(names)}"
        reasons.append(_reason("firing_incident", decision, message, top))
    if anomalies:
        names = sorted({str(a["name"]) for a in anomalies})
        message = f"{len(anomalies)} anomaly(ies) in the last {config.recent_ms // 60_000} min: "
        reasons.append(_reason("recent_anomaly", "warn", message + _listed(names), anomalies))
    return reasons


def _failing_checks(state, change, config) -> tuple[list[dict[str, Any]], str]:
    """Failed checks for the change: its commit's latest runs when any are known, else the
    open failing pipelines of its branch, else those of the main branches."""
    sha = change.get("commit_sha")
    runs = state.get("runs", {})
    if sha:
        latest: dict[str, tuple[int, str, dict[str, Any]]] = {}
        for key, run in sorted(runs.items()):
            if run.get("sha") == sha:
                entry = (run["t"], key, run)
                if run["n"] not in latest or entry[:2] > latest[run["n"]][:2]:
                    latest[run["n"]] = entry
        if latest:
            failed = [
                {"name": name, "run_key": key, "commit_sha": sha}
                for name, (_, key, run) in sorted(latest.items())
                if not run["ok"]
            ]
            return failed, f"commit {sha[:12]}"
    items = state.get("items", {})
    pipelines = [(k, i) for k, i in sorted(items.items()) if i.get("c") == "ci"]
    branch = change.get("branch")
    if branch and any((i.get("d") or {}).get("branch") == branch for _, i in pipelines):
        scope, where = (branch,), f"branch {branch}"
    else:
        scope, where = config.main_branches, "the main branches"
    failed = []
    for key, item in pipelines:
        if item_open(item) and on_branch(item, scope):
            details = item.get("d") or {}
            name = "/".join(str(details[k]) for k in ("workflow", "job_name") if details.get(k))
            failed.append(
                {
                    "name": name or key,
                    "key": key,
                    "branch": details.get("branch"),
                    "commit_sha": details.get("commit_sha"),
                    "url": details.get("url"),
                }
            )
    return failed, where


def _ci_reasons(state, change, now_ms, config, ci) -> list[dict[str, Any]]:
    reasons = []
    failed, where = _failing_checks(state, change, config)
    if failed:
        names = [f["name"] for f in failed]
        message = f"{len(failed)} failing check(s) on {where}: {_listed(names)}"
        reasons.append(_reason("failing_ci", "block", message, failed))
    if ci["flaky"]:
        flaky = [{"name": n, "commits": c} for n, c in sorted(ci["flaky"].items())]
        message = f"{len(flaky)} flaky job(s) (failed, then passed on the same commit): "
        names = [f["name"].split("|", 1)[-1] for f in flaky]
        reasons.append(_reason("flaky_ci", "warn", message + _listed(names), flaky))
    rate = ci["rate"]
    if rate is not None and ci["runs"] >= config.min_runs and rate >= config.ci_failure_rate_warn:
        message = (
            f"CI failure rate {rate:.0%} ({ci['failures']}/{ci['runs']} runs in the last "
            f"{config.ci_window_ms // 3_600_000} h)"
        )
        reasons.append(_reason("ci_failure_rate", "warn", message, []))
    return reasons


def _change_reasons(state, change, size, now_ms, config, exclude) -> tuple[list, dict]:
    reasons = []
    cfr = change_failure(state, now_ms, config, exclude=exclude)
    if (
        cfr["rate"] is not None
        and cfr["deployments"] >= config.min_deployments
        and cfr["rate"] >= config.cfr_warn
    ):
        message = (
            f"change failure rate {cfr['rate']:.0%} ({cfr['failed']}/{cfr['deployments']} "
            f"deployments in the last {config.cfr_window_ms // 86_400_000} days)"
        )
        reasons.append(_reason("change_failure_rate", "warn", message, cfr["failed_deployments"]))
    lines, files = size["lines"], size["files"]
    if (lines is not None and lines >= config.large_change_lines) or (
        files is not None and files >= config.large_change_files
    ):
        shown = ", ".join(
            f"{value} {unit}" for value, unit in ((lines, "lines"), (files, "files")) if value
        )
        reasons.append(_reason("large_change", "warn", f"large change: {shown}", []))
    previous = None
    for key, deploy in sorted(state.get("deploys", {}).items()):
        if key == exclude or deployment_time(deploy) > now_ms:
            continue
        if previous is None or (deployment_time(deploy), key) > previous[:2]:
            previous = (deployment_time(deploy), key, deploy)
    facts: dict[str, Any] = {"change_failure_rate": cfr, "last_deployment": None}
    if previous is not None:
        t, key, deploy = previous
        since = now_ms - t
        facts["last_deployment"] = {"key": key, "state": deploy.get("state"), "time_ms": t}
        facts["since_last_deploy_ms"] = since
        incidents = state.get("incidents", {}).values()
        followed = any(t < s <= min(now_ms, t + config.incident_window_ms) for s in incidents)
        if since <= config.incident_window_ms and (deploy.get("state") == "failure" or followed):
            why = "failed" if deploy.get("state") == "failure" else "was followed by an incident"
            message = f"the previous deployment {why} {since // 60_000} min ago"
            reasons.append(_reason("previous_deploy_failed", "warn", message, [key]))
        if config.deploy_cooldown_ms and since < config.deploy_cooldown_ms:
            message = f"the previous deployment was {since // 60_000} min ago"
            reasons.append(_reason("deploy_cooldown", "warn", message, [key]))
    return reasons, facts


def _drift_reasons(state) -> list[dict[str, Any]]:
    items = state.get("items", {})
    drifted = [
        {"key": key, "resource": (item.get("d") or {}).get("resource"), "severity": item.get("sev")}
        for key, item in sorted(items.items())
        if item.get("c") == "drift" and item.get("m") == "hold" and item_open(item)
    ]
    if not drifted:
        return []
    names = [str(d["resource"] or d["key"]) for d in drifted]
    message = f"{len(drifted)} open drift / compliance record(s): {_listed(names)}"
    return [_reason("open_drift", "warn", message, drifted)]


def evaluate(
    state: Mapping[str, Any] | None,
    now_ms: int,
    config: RiskConfig,
    change: Mapping[str, Any] | None = None,
    exclude_deployment: str | None = None,
) -> dict[str, Any]:
    """Decision, reasons, score, contributions and facts for `change` (None: the service as
    it stands) at `now_ms`."""
    state = state or {}
    change = dict(change or {})
    size = change_size(change, config)
    points = change_points(size["size"], config)
    extra = []
    if points > 0:
        summary = {"lines": size["lines"], "files": size["files"]}
        extra.append(("change", "~proposed_change", points, summary))
    assessment = assess(state, now_ms, config, extra)
    ci = ci_metrics(state, now_ms, config)
    reasons = _finding_reasons(state, change, config)
    reasons += _incident_reasons(state, now_ms, config)
    reasons += _ci_reasons(state, change, now_ms, config, ci)
    change_reasons, facts = _change_reasons(state, change, size, now_ms, config, exclude_deployment)
    reasons += _drift_reasons(state)
    reasons += change_reasons
    decision = max_decision(*(r["decision"] for r in reasons))
    score = assessment.score
    if score >= config.block_score:
        by_score, limit = "block", config.block_score
    elif score >= config.warn_score:
        by_score, limit = "warn", config.warn_score
    else:
        by_score, limit = "allow", 0
    if DECISIONS.index(by_score) > DECISIONS.index(decision):
        message = f"risk score {score} >= {limit}"
        reasons.append(_reason("risk_score", by_score, message, []))
        decision = by_score
    facts.update(
        {
            "change_size": size,
            "ci": {k: ci[k] for k in ("runs", "failures", "rate", "flaky")},
            "factors": assessment.factors,
        }
    )
    return {
        "decision": decision,
        "reasons": reasons,
        "score": score,
        "contributions": assessment.contributions,
        "facts": facts,
    }


def deployment_change(
    state: Mapping[str, Any] | None, deployment: Mapping[str, Any]
) -> dict[str, Any]:
    """What a deployment ships: its details, plus the size of its commit's push or merge
    request when the risk state saw it."""
    details = dict(deployment.get("details") or {})
    sha = details.get("commit_sha")
    known = (state or {}).get("changes", {}).get(sha) if sha else None
    return {**(known or {}), **details}


def scorecard(
    service_state: Mapping[str, Any] | None,
    deployment_signal: Mapping[str, Any],
    config: RiskConfig,
    now_ms: int | None = None,
) -> dict[str, Any]:
    """The scorecard of one deployment (a `deployment` signal, or the stage's record of one:
    `key`, `time_ms`, `details`), judged on the state at `now_ms` (default: its time)."""
    time_ms = int(deployment_signal["time_ms"])
    now = time_ms if now_ms is None else now_ms
    service = (service_state or {}).get("subject") or deployment_signal.get("service")
    key = str(deployment_signal["key"])
    change = deployment_change(service_state, deployment_signal)
    result = evaluate(service_state, now, config, change, exclude_deployment=key)
    details = deployment_signal.get("details") or {}
    deployment = {
        "key": key,
        "entity": deployment_signal.get("entity"),
        **{
            k: details.get(k)
            for k in (
                "deployment_id",
                "run_id",
                "environment",
                "state",
                "commit_sha",
                "branch",
                "artifact",
                "url",
            )
            if details.get(k) is not None
        },
    }
    return {
        "id": event_id("scorecard", service, key),
        "service": service,
        "deployment": deployment,
        "decision": result["decision"],
        "reasons": result["reasons"],
        "score": result["score"],
        "contributions": result["contributions"],
        "facts": result["facts"],
        "time": format_time(time_ms),
    }


def gate(
    service_state: Mapping[str, Any] | None,
    proposed_change: Mapping[str, Any] | None,
    now_ms: int,
    config: RiskConfig,
) -> dict[str, Any]:
    """The gate's answer for `proposed_change` (`commit_sha`, `branch`, `artifact`,
    `environment`, `lines_changed` or `additions`/`deletions`, `files_changed`, ...; None:
    the service as it stands) at `now_ms`. A service without state is allowed here: the web
    view answers `unknown_gate` for one that is not in the catalogue either."""
    result = evaluate(service_state, now_ms, config, proposed_change)
    return {
        "service": (service_state or {}).get("subject"),
        **result,
        "time": format_time(now_ms),
    }


def unknown_gate(service: str, decision: str, now_ms: int) -> dict[str, Any]:
    """The gate's answer for a service neither in the catalogue nor with any risk state: the
    configured `decision` (`VIGIL_GATE_UNKNOWN_DECISION`) with reason `unknown_service`."""
    message = f"{service} is not in the service catalogue and has no risk state"
    return {
        "service": service,
        "decision": decision,
        "reasons": [_reason("unknown_service", decision, message, [])],
        "score": 0,
        "contributions": [],
        "facts": {},
        "time": format_time(now_ms),
    }
