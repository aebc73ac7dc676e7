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

from collections.abc import Mapping
from typing import Any

import orjson

from app.masking import MASK, mask_value
from app.model.events import Event, event_id
from app.model.outputs import Output
from app.model.paths import value_at
from app.runtime.staged import StagedState
from tables.compliance.drift_baselines import load_baselines
from tables.compliance.drift_changes import UNKNOWN, Change, Obs, change_of
from tables.compliance.drift_config import DriftConfig


def _same(a: Any, b: Any) -> bool:
    return orjson.dumps(a, option=orjson.OPT_SORT_KEYS) == orjson.dumps(
        b, option=orjson.OPT_SORT_KEYS
    )


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

    # ---- applying ----------------------------------------------------------------------

    def change_of(self, event: Event) -> Change | None:
        """The observations an event carries, or None when it says nothing about drift."""
        return change_of(event, self.config, self.baselines)

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
            elif o.path not in spec and o.path not in baseline and o.prior is not UNKNOWN:
                spec[o.path] = o.prior  # the value before the first change seen
        drifted_before: dict[str, Any] = ostate["drifted"]
        drifted: dict[str, Any] = {}
        for path in sorted(set(drifted_before) | set(touched)):
            if path not in obs_state:
                continue
            value = obs_state[path]["v"]
            want = self._desired(path, baseline, spec, managed or change.learn)
            if want is UNKNOWN:
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
        return UNKNOWN

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
            desired = {p: (None if v is UNKNOWN else v) for p, v in desired.items()}
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
    """Series points a `drift` record feeds (tables/windows/series.py keys):
    `<entity>|r|drift_changes` for every drifted record, and `<entity>|r|drift_out_of_band` when it
    was out of band.

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
