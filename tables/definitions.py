"""The Faust tables that hold Vigil's state, all keyed by entity and co-partitioned with
`vigil.events`, so the process agent reads and writes only its own partitions' keys."""

from __future__ import annotations

from typing import Any

import faust

from app.faust_app import app, settings
from app.runtime import changelog_writes

#: Keys are entity strings (UTF-8), values JSON via orjson.
ENTITY_SCHEMA = faust.Schema(key_serializer="utf8", value_serializer="orjson")


def _table(
    name: str,
    help: str,
    *,
    partitions: int | None = None,
    shared: bool = False,
    raw_values: bool = False,
) -> Any:
    """One of Vigil's tables: `default=None`, `ENTITY_SCHEMA`, `settings.partitions` unless
    told; `shared` makes it a GlobalTable (every worker holds all of it); `raw_values` stores
    bytes as given (the journals: JSON, compressed when large).

    Faust takes a table's serializers from its key and value *types* and ignores `schema`
    (faust/tables/base.py `_serializer_from_type`): values are set to orjson here, or they would
    go through the stdlib `json` codec, measured at ~30 % of a worker's CPU once the risk agent
    carries large values. Keys stay `json` (quoted strings), as already stored. Both codecs
    write JSON, so state written before this reads the same.

    Its changelog records are tracked until the broker confirms them, so an agent can hold
    back a step's writes until the previous step's are in (app/runtime/changelog_writes.py).
    """
    factory = app.GlobalTable if shared else app.Table
    table = factory(
        name,
        default=None,
        partitions=settings.partitions if partitions is None else partitions,
        schema=ENTITY_SCHEMA,
        help=help,
        options=settings.store_options(),  # bounded RocksDB memory (docs/backpressure.md)
    )
    table.value_serializer = "raw" if raw_values else "orjson"
    _read_changelog_as_written(table)
    # Every changelog record is tracked until acknowledged (app/runtime/changelog_writes.py).
    table.send_changelog = changelog_writes.track(table.send_changelog)
    return table


def _read_changelog_as_written(table: Any) -> None:
    """Decode the table's changelog with the serializers it is written with. Faust makes the
    changelog topic in the table's constructor, from the serializers of the table's types
    ("json"), into the schema object all tables were given. Recovery decodes every changelog
    record with it: a journal record stored compressed failed to decode as JSON, and recovery
    dropped it (the restored journal was a step old, and a worker waited for ever for the
    partition's last record)."""
    topic = table.changelog_topic
    topic.schema = faust.Schema(
        key_serializer=table.key_serializer, value_serializer=table.value_serializer
    )
    topic.key_serializer, topic.value_serializer = table.key_serializer, table.value_serializer


#: entity -> activity summary (tables/entities/stats.py).
entity_stats = _table(
    "entity-stats",
    "Per-entity event counts by type, source and severity, first and last event time.",
)

#: series key (`<entity>|m|<metric series>` or `<entity>|r|<rate>`) -> open windows and the
#: anomaly detector's state; `~wm` holds each partition's watermark
#: (tables/windows/series_windows.py).
series_state = _table(
    "series", "Event-time windows and anomaly detector state per series, and partition watermarks."
)

#: `<entity>|<fingerprint>` -> one alert instance; `<entity>|~scope|<scope>` -> open findings
#: of one scan scope (tables/alerts/scan_scopes.py).
alert_state = _table(
    "alerts", "Deduplicated alert instances per fingerprint, and open findings per scan scope."
)

#: `<entity>:{<group labels>}` -> one aggregation group and its notification log.
group_state = _table("alert-groups", "Alert groups with Alertmanager's notification log.")

#: silence id -> silence (tables/alerts/silences.py); every worker holds all of them. Written by the
#: control agent, so it has the control topic's single partition.
silences = _table("silences", "Active, pending and expired silences.", partitions=1, shared=True)

#: `reload` -> the last `policy.reload` command (its control offset, who, when): every worker
#: holds it and reloads its Rego policies when it changes (agents/control.py).
policy_state = _table(
    "policy", "The last policy reload requested on the control topic.", partitions=1, shared=True
)

#: fingerprint -> firing alert that can inhibit others; every worker holds all of them.
inhibitors = _table(
    "inhibitors", "Firing alerts that match an inhibition rule's source side.", shared=True
)

#: `head` -> the last audit record; `recent` -> the last
#: records, for the web view. One partition, like the control topic it is fed from.
audit_state = _table(
    "audit", "Head of the audit hash chain and its most recent records.", partitions=1
)

#: risk subject (service, `repo:...`, `cluster:...`, `account:...`) -> its open findings,
#: alerts, drift, anomalies, CI health and deployments (tables/risk/stage.py). Keyed like the
#: `vigil.risk_signals` topic it is fed from.
risk_state = _table("risk", "Risk inputs and scores per service, repository, cluster and account.")

#: Desired state per resource attribute (Terraform plans, baselines): tables/compliance/drift.py.
desired_state = _table(
    "desired", "Desired state per resource: attribute paths from Terraform plans and baselines."
)

#: Observed state and memory (drift observations, identities that read secrets, ...).
observed_state = _table(
    "observed", "Observed resource attributes and per-entity compliance memory."
)

#: `<framework>|<control>|<scope>|<entity>` -> pass or fail (tables/compliance/posture.py).
posture_state = _table("posture", "Compliance posture per framework, control, scope and entity.")

#: input partition -> the last steps of the process agent (app/runtime/step_journal.py), as JSON
#: bytes (app/runtime/journal.py serializes once, to check the size too).
process_journal = _table(
    "process-journal",
    "Write-ahead record of the process agent's last steps per partition.",
    raw_values=True,
)

#: The partition clock (app/runtime/partition_clock.py): one record per partition, kept by
#: the runtime beside the stages' tables.
clock_state = _table("clock", "Each vigil.events partition's event-time clock.")

#: Events held per entity until the partition clock passes them (app/runtime/held.py).
held_state = _table("held", "Events held per entity until the partition clock passes them.")

#: The risk clock (app/runtime/risk_clock.py): per `vigil.risk_signals` partition, the
#: producers' heartbeats and the clock they make; kept by the runtime beside the `risk` table.
risk_clock_state = _table("risk-clock", "Each vigil.risk_signals partition's event-time clock.")

#: control partition (one) -> the control agent's last step, as JSON bytes.
control_journal = _table(
    "control-journal",
    "Write-ahead record of the control agent's last step.",
    partitions=1,
    raw_values=True,
)

#: input partition -> the last steps of the risk agent, as JSON bytes.
risk_journal = _table(
    "risk-journal",
    "Write-ahead record of the risk agent's last steps per partition.",
    raw_values=True,
)
