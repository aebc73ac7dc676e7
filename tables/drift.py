"""Configuration drift: desired state per resource against what is observed to change.

Model (docs/drift.md): every resource is an entity (`tf:<address>`, `k8s:<ns>/<resource>/<name>`,
`aws:<account>/<target>`), and its state is a flat map of attribute paths to values.

- **Desired** (table `desired`, key = entity; plus the read-only `baselines` mapping):
  - Terraform `tf_change` (no-op included): `after`, flattened to dotted paths, minus the
    paths only known after apply (`after_unknown`);
  - declared baselines (`load_baselines`), which win over anything learned;
  - writes by an IaC identity (GitOps controller service account, Terraform/CloudFormation
    user agent or the CI role, see DriftConfig): what the pipeline writes is desired;
  - for a CloudTrail change by anyone else, the value the attribute had before it (an ingress
    rule that did not exist, logging that was on), remembered on first sight.
- **Observed** (table `observed`, key = entity): the last value seen per path, with its event
  time (an older event never overrides a newer observation), and the paths drifted now.
  Sources: Terraform `tf_drift` (drifted paths = `changed_paths`, observed = refreshed `after`)
  and `tf_change`'s `before` (the refreshed real state, used to see a drift resolved);
  Kubernetes audit writes (create/update/patch/delete) of workloads, RBAC objects and network
  policies, or of anything with a baseline, compared through `spec_summary`; CloudTrail
  management calls on security groups, IAM, S3 policies/ACLs/public access blocks/encryption,
  CloudTrail, AWS Config, KMS, EBS snapshot sharing and default encryption, GuardDuty,
  Organizations (the event's `changes`); AWS Config compliance changes (`config_compliance`
  events, no adapter yet: see docs/drift.md).
- A path is **drifted** when its observed value differs from its desired value. Kubernetes paths
  without a desired value are not compared; a CloudTrail change with no known previous value
  made outside the pipeline counts as drift (desired unknown, reported as null) until the
  pipeline writes the attribute.

Outputs on `drift` (key = entity) whenever the set of drifted paths or their observed values
changes: `{id, resource, status: drifted|resolved, paths, resolved_paths, desired, observed,
actor{user, role, source_ip, user_agent}, time, out_of_band, source, event_id, resource_type}`
("resolved" when nothing differs any more; `desired` / `observed` hold the values at `paths`,
masked with app.masking). `id` = event_id over entity, triggering event id, status and paths.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import yaml

from app.events import Event, event_id
from app.masking import MASK, MaskingPolicy, mask_value
from app.model.paths import flatten, is_under, value_at
from app.outputs import Output
from app.runtime.staged import StagedState

#: spec_summary fields a Kubernetes baseline may declare (plus `image`, `present`, `content`).
K8S_SUMMARY_FIELDS: tuple[str, ...] = (
    "containers",
    "images",
    "privileged",
    "allow_privilege_escalation",
    "capabilities_added",
    "host_network",
    "host_pid",
    "host_ipc",
    "host_paths",
    "run_as_user",
    "run_as_non_root",
    "resource_limits",
    "service_account",
    "replicas",
)
#: Container securityContext flags a patch restating the container (image listed) states.
K8S_CONTAINER_FLAGS = frozenset({"privileged", "allow_privilege_escalation"})
K8S_FIELDS: frozenset[str] = frozenset({*K8S_SUMMARY_FIELDS, "image", "present", "content"})
#: The k8s_audit `resource_class`es drift follows (other objects only with a baseline).
K8S_TRACKED = frozenset({"workload", "rbac", "network_policy"})
K8S_WRITE_VERBS = frozenset({"create", "update", "patch", "delete"})
K8S_SKIPPED_STAGES = frozenset({"RequestReceived", "ResponseStarted"})

DEFAULT_IAC_USER_AGENTS: tuple[str, ...] = (
    "*terraform*",
    "*pulumi*",
    "cloudformation.amazonaws.com",
    "*aws-cdk*",
)
DEFAULT_K8S_IAC_IDENTITIES: tuple[str, ...] = (
    "system:serviceaccount:argocd:argocd-application-controller",
    "system:serviceaccount:argocd:argocd-server",
    "system:serviceaccount:flux-system:kustomize-controller",
    "system:serviceaccount:flux-system:helm-controller",
)
#: Control-plane identities whose writes are the cluster running, not configuration changes.
DEFAULT_K8S_IGNORED_IDENTITIES: tuple[str, ...] = (
    "system:kube-controller-manager",
    "system:kube-scheduler",
    "system:apiserver",
    "system:serviceaccount:kube-system:*",
    "system:node:*",
)

_UNKNOWN = object()


class BaselineError(ValueError):
    """A baseline file that cannot be loaded; the message names the entry and field."""


@dataclass(frozen=True, slots=True)
class DriftConfig:
    """Who counts as the IaC pipeline, where baselines live, what to mask."""

    #: fnmatch patterns (case-insensitive) of CloudTrail user agents of IaC tools.
    iac_user_agents: tuple[str, ...] = DEFAULT_IAC_USER_AGENTS
    #: fnmatch patterns of CloudTrail identities of the pipeline (principal ARN, session
    #: issuer ARN or principal name), e.g. `arn:aws:iam::*:role/terraform-ci`. When set, a
    #: change is in band only if identity *and* (when set) user agent match.
    iac_identities: tuple[str, ...] = ()
    #: fnmatch patterns of Kubernetes usernames of GitOps controllers.
    k8s_iac_identities: tuple[str, ...] = DEFAULT_K8S_IAC_IDENTITIES
    #: Kubernetes usernames whose writes are ignored (controllers, nodes).
    k8s_ignored_identities: tuple[str, ...] = DEFAULT_K8S_IGNORED_IDENTITIES
    #: Baseline YAML (see `load_baselines`); None = no baselines.
    baselines_path: str | None = None
    #: Masking applied to desired and observed values in outputs.
    masking: MaskingPolicy = field(default_factory=MaskingPolicy)
    #: Most attribute paths remembered per entity (oldest undrifted observations go first).
    max_paths: int = 512


# ---- baselines -------------------------------------------------------------------------


def load_baselines(path: str | Path) -> dict[str, dict[str, Any]]:
    """Read a baseline file: entity -> {path: desired value} (format in docs/drift.md)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise BaselineError(f"{path}: cannot read baselines: {exc}") from None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise BaselineError(f"{path}: not valid YAML: {exc}") from None
    return parse_baselines(doc, str(path))


def parse_baselines(doc: Any, where: str = "baselines") -> dict[str, dict[str, Any]]:
    """Validate decoded baselines: a list (or `{baselines: [...]}`) of `{resource, spec}`.

    Kubernetes specs use spec_summary field names (K8S_FIELDS); Terraform specs are nested
    like `after` and flattened to dotted paths; AWS specs are attribute paths as Vigil writes
    them (`logging`, `ingress[tcp:22-22:0.0.0.0/0]`, ...). `present` defaults to true.
    """
    if isinstance(doc, dict) and "baselines" in doc:
        doc = doc["baselines"]
    if doc is None:
        return {}
    if not isinstance(doc, list):
        raise BaselineError(f"{where}: expected a list of {{resource, spec}} entries")
    out: dict[str, dict[str, Any]] = {}
    for index, entry in enumerate(doc):
        label = f"{where}: entry #{index + 1}"
        if not isinstance(entry, dict):
            raise BaselineError(f"{label}: an entry is a mapping with 'resource' and 'spec'")
        for name in ("resource", "spec"):
            if name not in entry:
                raise BaselineError(f"{label}: missing field '{name}'")
        unknown = sorted(set(entry) - {"resource", "spec", "description", "owner"})
        if unknown:
            raise BaselineError(f"{label}: unknown field '{unknown[0]}'")
        resource, spec = entry["resource"], entry["spec"]
        if not isinstance(resource, str) or ":" not in resource:
            raise BaselineError(f"{label}: 'resource' is an entity such as k8s:ns/deployments/x")
        label = f"{where}: '{resource}'"
        if resource in out:
            raise BaselineError(f"{label}: duplicate resource")
        if not isinstance(spec, dict) or not spec:
            raise BaselineError(f"{label}: 'spec' must be a non-empty mapping")
        kind = resource.split(":", 1)[0]
        if kind == "k8s":
            unknown = sorted(set(spec) - K8S_FIELDS)
            if unknown:
                raise BaselineError(
                    f"{label}: unknown Kubernetes field '{unknown[0]}' "
                    f"(known: {', '.join(sorted(K8S_FIELDS))})"
                )
            flat = {k: _k8s_normal(k, v) for k, v in spec.items()}
        elif kind == "tf":
            flat = dict(flatten(spec))
        else:
            flat = dict(spec)
        flat.setdefault("present", True)
        out[resource] = flat
    return out


def _k8s_normal(name: str, value: Any) -> Any:
    """Lists compare as spec_summary writes them (sorted)."""
    if name in ("images", "host_paths", "run_as_user", "capabilities_added") and isinstance(
        value, list
    ):
        return sorted(value)
    return value


# ---- paths -----------------------------------------------------------------------------


def _same(a: Any, b: Any) -> bool:
    return orjson.dumps(a, option=orjson.OPT_SORT_KEYS) == orjson.dumps(
        b, option=orjson.OPT_SORT_KEYS
    )


def _matches(value: Any, patterns: tuple[str, ...]) -> bool:
    if not isinstance(value, str) or not value:
        return False
    lowered = value.lower()
    return any(fnmatch.fnmatchcase(lowered, p.lower()) for p in patterns)


# ---- observations ----------------------------------------------------------------------


@dataclass(slots=True)
class Obs:
    """One observed attribute value; `prior` is its value before the change when the call
    implies it (`_UNKNOWN` otherwise)."""

    path: str
    value: Any
    prior: Any = _UNKNOWN
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
    return Obs(path, change.get("value"), change.get("prior", _UNKNOWN))


def _stated(value: Any) -> bool:
    """Whether a patch's summary value says something: true, non-empty, a number (a patch
    leaves out what it does not change, and the summary writes absent as false or empty)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, list | str | dict):
        return bool(value)
    return value is not None


# ---- the stage -------------------------------------------------------------------------


def _copy(value: Any) -> Any:
    return orjson.loads(orjson.dumps(value)) if value is not None else None


class DriftStage:
    """Per-event drift detection over the `desired` and `observed` tables (entity keys)."""

    def __init__(
        self,
        config: DriftConfig | None = None,
        baselines: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        self.config = config or DriftConfig()
        if baselines is None:
            path = self.config.baselines_path
            baselines = load_baselines(path) if path else {}
        #: Global, read-only: entity -> {path: desired value}.
        self.baselines: Mapping[str, Mapping[str, Any]] = baselines

    def on_event(
        self,
        event: Event,
        watermark: int | None,
        desired: StagedState,
        observed: StagedState,
    ) -> list[Output]:
        """Apply one event; returns the `drift` records it causes (usually none).

        `watermark` is accepted for uniformity with the other stages: drift is decided per
        path by event time, so the stage keeps no timers.
        """
        change = self.change_of(event)
        if change is None:
            return []
        return self._apply(event, change, desired, observed)

    # ---- what an event says ----------------------------------------------------------

    def change_of(self, event: Event) -> Change | None:
        """The observations an event carries, or None when it says nothing about drift."""
        if event.type == "tf_change":
            return self._tf_change(event)
        if event.type == "tf_drift":
            return self._tf_drift(event)
        if event.type == "k8s_audit":
            return self._k8s(event)
        if event.type == "cloud_api_call":
            return self._cloudtrail(event)
        if event.type == "config_compliance":
            return self._config(event)
        return None

    def _tf_change(self, event: Event) -> Change | None:
        a = event.attributes
        actions = a.get("actions") or []
        if a.get("mode") == "data" or actions == ["read"] or actions == ["forget"]:
            return None
        if "delete" in actions and "create" not in actions:
            return None  # a planned delete says nothing about what should be there
        unknown = set(a.get("after_unknown") or [])
        after = a.get("after")
        spec = {p: v for p, v in flatten(after) if not is_under(p, unknown)} if after else {}
        if len(spec) > self.config.max_paths:
            spec = dict(sorted(spec.items())[: self.config.max_paths])
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

    def _tf_drift(self, event: Event) -> Change | None:
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

    def _k8s(self, event: Event) -> Change | None:
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
        if _matches(user, self.config.k8s_ignored_identities):
            return None
        if a.get("resource_class") not in K8S_TRACKED and event.entity not in self.baselines:
            return None
        in_band = _matches(user, self.config.k8s_iac_identities)
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

    def _cloud_in_band(self, a: Mapping[str, Any]) -> bool:
        agents, identities = self.config.iac_user_agents, self.config.iac_identities
        if not agents and not identities:
            return False
        agent_ok = not agents or _matches(a.get("user_agent"), agents)
        who = (a.get("principal_arn"), a.get("session_issuer_arn"), a.get("principal"))
        identity_ok = not identities or any(_matches(w, identities) for w in who)
        return agent_ok and identity_ok

    def _cloudtrail(self, event: Event) -> Change | None:
        a = event.attributes
        obs = [_observed(c) for c in a.get("changes") or [] if isinstance(c, dict)]
        aliases = a.get("rule_paths") or {}
        if not obs and not aliases:
            return None
        in_band = self._cloud_in_band(a)
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
            resource_type=source.removesuffix(".amazonaws.com")
            if isinstance(source, str)
            else None,
            learn=in_band,
            strict=True,
            aliases=aliases,
        )

    @staticmethod
    def _config(event: Event) -> Change | None:
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

    # ---- applying ----------------------------------------------------------------------

    def _apply(
        self,
        event: Event,
        change: Change,
        desired_table: StagedState,
        observed_table: StagedState,
    ) -> list[Output]:
        entity = event.entity
        dstate = _copy(desired_table.get(entity))
        ostate = _copy(observed_table.get(entity))
        baseline = self.baselines.get(entity, {})
        if ostate is None:
            ostate = {
                "t": "drift",
                "obs": {},
                "drifted": {},
                "aliases": {},
            }
        unchanged = _copy(ostate)
        aliases = {**(ostate.get("aliases") or {}), **change.aliases}
        observations = [o for o in change.observations if not o.path.startswith("alias:")]
        for o in change.observations:
            if o.path.startswith("alias:") and o.path[6:] in aliases:
                observations.append(Obs(aliases[o.path[6:]], o.value, o.prior))
        if change.before is not None and (change.plan is None or change.plan != ostate.get("plan")):
            # A later plan: the refreshed real state (`before`) at the drifted paths.
            observations = [Obs(p, value_at(change.before, p)) for p in sorted(ostate["drifted"])]
        spec = dict(dstate["spec"]) if dstate else {}
        if change.desired is not None:
            spec = dict(change.desired)
        managed = bool(baseline) or dstate is not None
        if change.managed_only and not managed and not change.learn:
            return []  # an object nobody declared: nothing to compare against
        touched: dict[str, bool] = {}  # path -> whether the source says it differs
        obs_state: dict[str, Any] = dict(ostate["obs"])
        for o in observations:
            seen = obs_state.get(o.path)
            if seen is not None and event.ts_ms < seen["ts"]:
                continue  # a newer observation of this path exists
            obs_state[o.path] = {"v": o.value, "ts": event.ts_ms}
            touched[o.path] = o.differs
            if change.learn:
                spec[o.path] = o.value
            elif o.path not in spec and o.path not in baseline and o.prior is not _UNKNOWN:
                spec[o.path] = o.prior  # the value before the first change seen
        drifted_before: dict[str, Any] = ostate["drifted"]
        drifted: dict[str, Any] = {}
        for path in sorted(set(drifted_before) | set(touched)):
            if path not in obs_state:
                continue
            value = obs_state[path]["v"]
            want = self._desired(path, baseline, spec, managed or change.learn)
            if want is _UNKNOWN:
                if path in drifted_before and path not in touched:
                    drifted[path] = drifted_before[path]
                elif change.strict and change.in_band is not True:
                    drifted[path] = self._entry(None, value, drifted_before.get(path), event)
                continue
            if not _same(value, want) or (touched.get(path) and _same(value, MASK)):
                # Masked on both sides (a secret): Terraform's word that it changed stands.
                drifted[path] = self._entry(want, value, drifted_before.get(path), event)
        limit = self.config.max_paths
        if len(drifted) > limit:  # keep the most recent drifts
            newest = sorted(drifted, key=lambda p: (drifted[p]["since"], p))[-limit:]
            drifted = {p: drifted[p] for p in sorted(newest)}
        kept = self._bounded(obs_state, drifted)
        if change.desired is None and len(spec) > limit:
            spec = {p: v for p, v in spec.items() if p in kept}
        ostate.update(
            obs=kept,
            drifted=drifted,
            aliases=dict(sorted(aliases.items())[-limit:]),
        )
        if change.drift_plan and change.plan:
            ostate["plan"] = change.plan
        outputs = self._outputs(event, change, drifted_before, drifted, baseline, spec, obs_state)
        if outputs or ostate != unchanged:  # no write when nothing was learnt
            observed_table[entity] = ostate
        if spec != (dstate or {}).get("spec"):
            desired_table[entity] = {
                "t": "desired",
                "src": event.source,
                "ts": event.ts_ms,
                "spec": spec,
            }
        return outputs

    @staticmethod
    def _desired(path: str, baseline: Mapping[str, Any], spec: Mapping[str, Any], managed: bool):
        if path in baseline:
            return baseline[path]
        if path in spec:
            return spec[path]
        if managed and path == "present":
            return True
        if managed and path == "content":
            return "iac"
        return _UNKNOWN

    @staticmethod
    def _entry(want: Any, value: Any, previous: Mapping[str, Any] | None, event: Event):
        return {
            "d": want,
            "o": value,
            "since": previous["since"] if previous else event.ts_ms,
        }

    def _bounded(self, obs: dict[str, Any], drifted: Mapping[str, Any]) -> dict[str, Any]:
        if len(obs) <= self.config.max_paths:
            return obs
        keep = sorted(
            (p for p in obs if p not in drifted), key=lambda p: (obs[p]["ts"], p), reverse=True
        )
        room = max(0, self.config.max_paths - len(drifted))
        kept = set(keep[:room]) | set(drifted)
        return {p: v for p, v in obs.items() if p in kept}

    def _outputs(
        self,
        event: Event,
        change: Change,
        before: Mapping[str, Any],
        after: Mapping[str, Any],
        baseline: Mapping[str, Any],
        spec: Mapping[str, Any],
        obs: Mapping[str, Any],
    ) -> list[Output]:
        def view(entries: Mapping[str, Any]) -> dict[str, Any]:
            return {p: e["o"] for p, e in entries.items()}

        if view(before) == view(after) and set(before) == set(after):
            return []
        if not before and not after:
            return []
        status = "drifted" if after else "resolved"
        paths = sorted(after) if after else sorted(before)
        resolved_paths = sorted(set(before) - set(after))
        if after:
            desired = {p: after[p]["d"] for p in paths}
            observed = {p: after[p]["o"] for p in paths}
        else:
            desired = {p: self._desired(p, baseline, spec, True) for p in paths}
            desired = {p: (None if v is _UNKNOWN else v) for p, v in desired.items()}
            observed = {p: obs[p]["v"] if p in obs else None for p in paths}
        policy = self.config.masking
        value = {
            "id": event_id("drift", event.entity, event.id, status, paths),
            "resource": event.entity,
            "resource_type": change.resource_type,
            "status": status,
            "paths": paths,
            "resolved_paths": resolved_paths,
            "desired": {p: mask_value(v, policy, _leaf(p)) for p, v in desired.items()},
            "observed": {p: mask_value(v, policy, _leaf(p)) for p, v in observed.items()},
            "since": min(after[p]["since"] for p in paths) if after else None,
            "actor": change.actor,
            "time": event.time,
            "out_of_band": None if change.in_band is None else not change.in_band,
            "source": event.source,
            "event_id": event.id,
        }
        return [Output("drift", event.entity, value)]


def _leaf(path: str) -> str:
    """The last name in a path, for secret-key masking (`db.password` -> `password`)."""
    return path.rsplit(".", 1)[-1].split("[", 1)[0]


def drift_series(drift: Output | Mapping[str, Any]) -> list[tuple[str, float]]:
    """Series points a `drift` record feeds (tables/series.py keys): `<entity>|r|drift_changes`
    for every drifted record, and `<entity>|r|drift_out_of_band` when it was out of band.

    Windows per actor would need the records re-keyed by actor first (another topic hop):
    not done; these series are per resource.
    """
    value = drift.value if isinstance(drift, Output) else drift
    if value.get("status") != "drifted":
        return []
    entity = value["resource"]
    points = [(f"{entity}|r|drift_changes", 1.0)]
    if value.get("out_of_band"):
        points.append((f"{entity}|r|drift_out_of_band", 1.0))
    return points
