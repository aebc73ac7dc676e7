"""What one event says about one resource (`change_of`): the observed values, whether the
IaC pipeline made the change, and how the stage must compare them."""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from app.model.events import Event
from app.model.paths import flatten, is_under, value_at
from tables.compliance.drift_baselines import K8S_SUMMARY_FIELDS
from tables.compliance.drift_config import DriftConfig

#: Container securityContext flags a patch restating the container (image listed) states.
K8S_CONTAINER_FLAGS = frozenset({"privileged", "allow_privilege_escalation"})
#: The k8s_audit `resource_class`es drift follows (other objects only with a baseline).
K8S_TRACKED = frozenset({"workload", "rbac", "network_policy"})
K8S_WRITE_VERBS = frozenset({"create", "update", "patch", "delete"})
K8S_SKIPPED_STAGES = frozenset({"RequestReceived", "ResponseStarted"})

#: A value not known (a prior the call does not imply, no desired value).
UNKNOWN = object()


def _matches(value: Any, patterns: tuple[str, ...]) -> bool:
    if not isinstance(value, str) or not value:
        return False
    lowered = value.lower()
    return any(fnmatch.fnmatchcase(lowered, p.lower()) for p in patterns)


@dataclass(slots=True)
class Obs:
    """One observed attribute value; `prior` is its value before the change when the call
    implies it (`UNKNOWN` otherwise)."""

    path: str
    value: Any
    prior: Any = UNKNOWN
    #: The source says the value changed (Terraform's changed_paths), even if masked.
    differs: bool = False


@dataclass(slots=True)
class Change:
    """What one event says about one resource."""

    observations: list[Obs]
    #: True: made by the IaC pipeline; False: out of band; None: cannot tell.
    in_band: bool | None
    actor: dict[str, Any]
    resource_type: str | None = None
    #: Observed values become desired (writes by the pipeline).
    learn: bool = False
    #: Replace the learned desired state wholesale (Terraform plans).
    desired: dict[str, Any] | None = None
    #: A path with no desired value, changed out of band, counts as drifted.
    strict: bool = False
    #: Kubernetes: compare only when the entity is managed (baseline or learned desired).
    managed_only: bool = False
    #: Security group rule id -> rule path, learnt from responses.
    aliases: dict[str, str] = field(default_factory=dict)
    #: Terraform plan id (a tf_change of the plan that reported the drift resolves nothing).
    plan: str | None = None
    drift_plan: bool = False
    #: Terraform `before` of a tf_change: the refreshed real state, checked at drifted paths.
    before: Any = None


def _no_actor() -> dict[str, Any]:
    return {"user": None, "role": None, "source_ip": None, "user_agent": None}


def _observed(change: Mapping[str, Any]) -> Obs:
    """An observation from one of a cloud_api_call's `changes` (a rule id becomes `alias:`)."""
    path = change["path"] if "path" in change else f"alias:{change.get('rule_id')}"
    return Obs(path, change.get("value"), change.get("prior", UNKNOWN))


def _stated(value: Any) -> bool:
    """Whether a patch's summary value says something: true, non-empty, a number (a patch
    leaves out what it does not change, and the summary writes absent as false or empty)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, list | str | dict):
        return bool(value)
    return value is not None


def change_of(
    event: Event, config: DriftConfig, baselines: Mapping[str, Mapping[str, Any]]
) -> Change | None:
    """The observations an event carries, or None when it says nothing about drift
    (`baselines`: entity -> desired values, which make any Kubernetes object followed)."""
    if event.type == "tf_change":
        return _tf_change(event, config)
    if event.type == "tf_drift":
        return _tf_drift(event)
    if event.type == "k8s_audit":
        return _k8s(event, config, baselines)
    if event.type == "cloud_api_call":
        return _cloudtrail(event, config)
    if event.type == "config_compliance":
        return _config_rule(event)
    return None


def _tf_change(event: Event, config: DriftConfig) -> Change | None:
    a = event.attributes
    actions = a.get("actions") or []
    if a.get("mode") == "data" or actions == ["read"] or actions == ["forget"]:
        return None
    if "delete" in actions and "create" not in actions:
        return None  # a planned delete says nothing about what should be there
    unknown = set(a.get("after_unknown") or [])
    after = a.get("after")
    spec = {p: v for p, v in flatten(after) if not is_under(p, unknown)} if after else {}
    if len(spec) > config.max_paths:
        spec = dict(sorted(spec.items())[: config.max_paths])
    before = a.get("before")
    return Change(
        observations=[],  # filled against the drifted paths in _apply
        in_band=True,
        actor=_no_actor(),
        resource_type=a.get("resource_type"),
        desired=spec,
        plan=a.get("plan_id"),
        before=before,
    )


def _tf_drift(event: Event) -> Change | None:
    a = event.attributes
    before, after = a.get("before"), a.get("after")
    obs = [
        Obs(p, value_at(after, p), value_at(before, p), differs=True)
        for p in a.get("changed_paths") or []
        if isinstance(p, str)
    ]
    if not obs:
        return None
    return Change(
        observations=obs,
        in_band=False,
        actor=_no_actor(),
        resource_type=a.get("resource_type"),
        strict=True,
        plan=a.get("plan_id"),
        drift_plan=True,
    )


def _k8s(
    event: Event, config: DriftConfig, baselines: Mapping[str, Mapping[str, Any]]
) -> Change | None:
    a = event.attributes
    verb = a.get("verb")
    if a.get("stage") in K8S_SKIPPED_STAGES or verb not in K8S_WRITE_VERBS:
        return None
    if a.get("subresource"):
        return None
    code = a.get("response_code")
    if a.get("decision") == "forbidden" or (isinstance(code, int) and code >= 400):
        return None
    user = a.get("username")
    if _matches(user, config.k8s_ignored_identities):
        return None
    if a.get("resource_class") not in K8S_TRACKED and event.entity not in baselines:
        return None
    in_band = _matches(user, config.k8s_iac_identities)
    obs: list[Obs] = []
    if verb == "delete":
        obs.append(Obs("present", False))
    else:
        obs.append(Obs("present", True))
        summary = a.get("spec_summary")
        if isinstance(summary, dict):
            images = summary.get("images") or []
            for name in K8S_SUMMARY_FIELDS:
                if name not in summary or (verb == "patch" and name == "containers"):
                    continue  # a patch lists only the containers it changes
                # A patch omits what it leaves alone: a false or empty value is only
                # believed for the container's own flags of a container it restates.
                unstated = verb == "patch" and not _stated(summary[name])
                if unstated and not (images and name in K8S_CONTAINER_FLAGS):
                    continue
                obs.append(Obs(name, summary[name]))
            if images:
                obs.append(Obs("image", images[0] if len(images) == 1 else images))
        elif not in_band:
            obs.append(Obs("content", "manual"))
    if in_band:
        obs.append(Obs("content", "iac"))
    ips = a.get("source_ips") or []
    actor = {
        "user": a.get("impersonated_user") or user,
        "role": user if a.get("impersonated_user") else None,
        "source_ip": ips[0] if ips else None,
        "user_agent": a.get("user_agent"),
    }
    return Change(
        observations=obs,
        in_band=in_band,
        actor=actor,
        resource_type=a.get("resource"),
        learn=in_band,
        managed_only=True,
    )


def _cloud_in_band(a: Mapping[str, Any], config: DriftConfig) -> bool:
    agents, identities = config.iac_user_agents, config.iac_identities
    if not agents and not identities:
        return False
    agent_ok = not agents or _matches(a.get("user_agent"), agents)
    who = (a.get("principal_arn"), a.get("session_issuer_arn"), a.get("principal"))
    identity_ok = not identities or any(_matches(w, identities) for w in who)
    return agent_ok and identity_ok


def _cloudtrail(event: Event, config: DriftConfig) -> Change | None:
    a = event.attributes
    obs = [_observed(c) for c in a.get("changes") or [] if isinstance(c, dict)]
    aliases = a.get("rule_paths") or {}
    if not obs and not aliases:
        return None
    in_band = _cloud_in_band(a, config)
    actor = {
        "user": a.get("principal"),
        "role": a.get("session_issuer_arn"),
        "source_ip": a.get("source_ip"),
        "user_agent": a.get("user_agent"),
    }
    source = a.get("event_source")
    return Change(
        observations=obs,
        in_band=in_band,
        actor=actor,
        resource_type=source.removesuffix(".amazonaws.com") if isinstance(source, str) else None,
        learn=in_band,
        strict=True,
        aliases=aliases,
    )


def _config_rule(event: Event) -> Change | None:
    a = event.attributes
    rule, compliance = a.get("config_rule_name"), a.get("compliance_type")
    if not isinstance(rule, str) or compliance not in ("COMPLIANT", "NON_COMPLIANT"):
        return None
    return Change(
        observations=[Obs(f"config_rule[{rule}]", compliance, "COMPLIANT")],
        in_band=None,
        actor=_no_actor(),
        resource_type=a.get("resource_type"),
        strict=True,
    )
