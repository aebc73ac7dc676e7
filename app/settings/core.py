"""Every Vigil setting in one object, read from the environment, each with its default.

`Settings.from_env()` is the only code that reads the process environment (a unit test,
tests/unit/test_settings_single_reader.py, keeps it so); everything else receives settings.
Groups of knobs are nested: `kafka` (`VIGIL_KAFKA_*`, app/security.py), `sinks`
(app/settings/sinks.py) and `risk` (`VIGIL_RISK_*`, `VIGIL_GATE_*`, app/settings/risk.py).

Faust's own variables (`BROKER_URL`, `WEB_HOST`, `WEB_PORT`, `APP_DATADIR`,
`PROCESSING_GUARANTEE`, `TABLE_STANDBY_REPLICAS`, ...) keep working: Faust reads them itself
and an environment value beats the default passed in code. Vigil's own knobs use `VIGIL_`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from app.security import KafkaSecurity
from app.settings.parse import env_bool, env_float, env_int, env_str
from app.settings.risk import risk_from_env
from app.settings.sinks import SinkSettings
from tables.risk.model import RiskConfig

REPO_ROOT = Path(__file__).resolve().parents[2]

#: Prefix of the per-topic renames, `VIGIL_TOPIC_<LOGICAL>` (app/topics.py).
TOPIC_ENV_PREFIX = "VIGIL_TOPIC_"
#: Default cap on `vigil_risk_score{service}` label values (app/metrics).
MAX_SERVICES = 50


def _topic_names(env: Mapping[str, str]) -> dict[str, str]:
    """Every non-empty `VIGIL_TOPIC_<LOGICAL>` rename (the prefix itself is a setting)."""
    return {
        name: value
        for name, value in env.items()
        if name.startswith(TOPIC_ENV_PREFIX) and name != "VIGIL_TOPIC_PREFIX" and value
    }


def _max_services(env: Mapping[str, str]) -> int:
    """`VIGIL_METRICS_MAX_SERVICES`: at least 1; unset or not an integer: the default."""
    raw = env.get("VIGIL_METRICS_MAX_SERVICES", "")
    try:
        return max(1, int(raw)) if raw else MAX_SERVICES
    except ValueError:
        return MAX_SERVICES


@dataclass(frozen=True)
class Settings:
    """Vigil's settings. Build with `Settings.from_env()`; fields are documented inline."""

    #: Faust app id, also the consumer group id. Env `VIGIL_APP_ID`. Default `vigil`.
    app_id: str = "vigil"
    #: Kafka bootstrap servers. Env `BROKER_URL` (Faust's own). Default `kafka://127.0.0.1:9092`.
    broker_url: str = "kafka://127.0.0.1:9092"
    #: Table store. Env `VIGIL_STORE`. Default `rocksdb://` (rocksdict when installed).
    store: str = "rocksdb://"
    #: Faust data dir (RocksDB state). Env `APP_DATADIR` (Faust's own).
    #: Default `<repo>/var/data/<app_id>`: one per app id, since table files are named per table.
    datadir: str = ""
    #: Web view bind address. Env `WEB_BIND` (Faust's own). Default `127.0.0.1`.
    web_bind: str = "127.0.0.1"
    #: Host name other workers use to reach this one. Env `WEB_HOST`. Default `127.0.0.1`.
    web_host: str = "127.0.0.1"
    #: Web view port. Env `WEB_PORT` (Faust's own). Default `6066`.
    web_port: int = 6066
    #: Partitions of every Vigil topic (raw and downstream). Env `VIGIL_PARTITIONS`. Default 4.
    partitions: int = 4
    #: Replication factor of created topics. Env `VIGIL_REPLICAS`. Default 1 (single broker).
    replicas: int = 1
    #: `at_least_once` or `exactly_once`. Env `PROCESSING_GUARANTEE`. Default `at_least_once`.
    processing_guarantee: str = "at_least_once"
    #: Prefix for every topic name (isolates tests/tenants). Env `VIGIL_TOPIC_PREFIX`. Default "".
    topic_prefix: str = ""
    #: Largest raw record accepted (bytes). Env `VIGIL_MAX_RECORD_BYTES`. Default 1 MiB.
    max_record_bytes: int = 1_048_576
    #: Deepest JSON nesting accepted. Env `VIGIL_MAX_DEPTH`. Default 64.
    max_depth: int = 64
    #: Event times further ahead of the wall clock than this (ms) are dead-lettered
    #: (`future_timestamp`) before they reach a watermark. Env `VIGIL_MAX_FUTURE_SKEW_MS`.
    #: Default 3600000 (1 h). 0 turns the check off (backfills of synthetic future data).
    max_future_skew_ms: int = 3_600_000
    #: Mask secrets and personal data in outputs. Env `VIGIL_MASKING`. Default true.
    masking: bool = True
    #: Also mask IPv4 addresses. Env `VIGIL_MASK_IPS`. Default false.
    mask_ips: bool = False
    #: Most events the process agent handles per batch (outputs confirmed once per batch).
    #: Env `VIGIL_BATCH_MAX`. Default 500: ~1.9x the throughput of one event at a time in
    #: `make chaos`; with the step journal every batched chaos run was exact
    #: (docs/crash-safety.md). 1 handles events one at a time.
    batch_max: int = 500
    #: How long a batch waits for more buffered events once it holds one (ms); bounds the
    #: latency batching adds. Env `VIGIL_BATCH_LINGER_MS`. Default 10. 0: take only what is
    #: already buffered.
    batch_linger_ms: int = 10
    #: The same while this worker's ingest reads a backlog (at least `VIGIL_BATCH_MAX` raw
    #: records left to read): nothing is waited for that is not late already, and larger
    #: batches write each table key and the journal fewer times (docs/performance.md).
    #: Env `VIGIL_BATCH_BACKLOG_LINGER_MS`. Default 100.
    batch_backlog_linger_ms: int = 100
    #: Decoded table values the process and risk agents keep in memory, per table
    #: (app/runtime/table_cache.py; 9 tables). Env `VIGIL_TABLE_CACHE_KEYS`. Default 4096. 0
    #: turns the cache off.
    table_cache_keys: int = 4096
    #: The cached tables' and the agents' journal writes go straight to RocksDB and their
    #: changelog records straight to the producer, the persisted offset stored once per step
    #: (app/runtime/direct_writes.py), instead of through Faust's table layers per write.
    #: Needs the cache, RocksDB and `at_least_once` (the records are not part of Faust's
    #: `exactly_once` transactions).
    #: Env `VIGIL_DIRECT_WRITES`. Default true.
    direct_writes: bool = True
    #: Records each agent's input channel holds before Faust stops fetching for it (Faust's
    #: `stream_buffer_maxsize`): the in-memory part of the backlog, docs/backpressure.md.
    #: Env `VIGIL_STREAM_BUFFER`. Default 1024 (Faust's own default is 4096).
    stream_buffer: int = 1024
    #: Table changelog records Faust's producer buffer holds before its conductor stops handing
    #: records to the agents until it drained that many (`ProducerBuffer.max_messages`, Faust's
    #: default 100, which a batch's changelog records exceed: a WARNING per stop). Env
    #: `VIGIL_PRODUCER_BUFFER`. Default 2000.
    producer_buffer: int = 2000
    #: The worker's event loop: `uvloop` (libuv; a lever of `make bench`,
    #: docs/performance.md) or `asyncio` (the standard library's). Env
    #: `VIGIL_EVENT_LOOP`. Default uvloop.
    event_loop: str = "uvloop"
    #: How long the producer waits to fill a batch before sending it (ms; Faust's
    #: `producer_linger`, default 0). Every output, changelog and journal record goes through
    #: the one producer: at 0 each is sent in a request of its own, and building and sending
    #: them was ~13 % of a worker's CPU (docs/performance.md). Adds at most this much to each
    #: hop's latency. Env `VIGIL_PRODUCER_LINGER_MS`. Default 5.
    producer_linger_ms: int = 5
    #: Faust's per-message sensor: `lean` (messages and events counted, nothing else kept per
    #: message, event or table operation; app/metrics/faust_sensor.py) or `full` (Faust's
    #: PrometheusMonitor with its per-message bookkeeping). Env `VIGIL_FAUST_SENSOR`.
    #: Default lean.
    faust_sensor: str = "lean"
    #: Hand fetched messages to their streams eagerly, in the fetcher's task, rather than with
    #: four asyncio tasks per message as Faust does (app/runtime/eager_delivery.py; ~30 % less
    #: CPU per raw record). Env `VIGIL_EAGER_DELIVERY`. Default on.
    eager_delivery: bool = True
    #: Longest time the broker holds a fetch for partitions with nothing new (ms; Faust's
    #: driver hard-codes 1500). aiokafka has one fetch in flight per broker, so partitions
    #: drained meanwhile wait for it (app/runtime/fetch_wait.py). Env
    #: `VIGIL_FETCH_MAX_WAIT_MS`. Default 100.
    fetch_max_wait_ms: int = 100
    #: How long one partition's fetched records, not yet taken by its agent, hold back the
    #: next fetch of every partition of the broker (ms; aiokafka's fixed prefetch backoff is
    #: 100, app/runtime/fetch_wait.py). Env `VIGIL_FETCH_BACKOFF_MS`. Default 5.
    fetch_backoff_ms: int = 5
    #: Tune the garbage collector (app/runtime/gc_tuning.py): young collections every 10,000
    #: allocations instead of 700, and the heap frozen after each full collection so the next
    #: one scans only what is new (full ones stopped the loop for 60-95 ms every few seconds).
    #: Env `VIGIL_GC_TUNING`. Default on.
    gc_tuning: bool = True
    #: Most risk signals the risk agent handles per batch (writes collapse per subject, one
    #: journal record per partition and batch). Env `VIGIL_RISK_BATCH_MAX`. Default 500; 1
    #: handles signals one at a time.
    risk_batch_max: int = 500
    #: Raw partitions more than this far ahead (event time, ms) of the slowest one still sending
    #: are paused until it catches up (app/runtime/source_alignment.py). Env `VIGIL_ALIGN_DRIFT_MS`.
    #: Default 0 (off): with 60000 the two-worker web API test missed its deadline in 1 of 3
    #: clean runs, not yet explained. 60000 is what `make chaos` backlogs were measured with.
    align_drift_ms: int = 0
    #: RocksDB memory per table partition (MiB): memtable size (two of them at most) and block
    #: cache. Faust's defaults are 64 MiB x 3 and a 2 GiB cache per database, and a worker
    #: opens one database per table and partition (docs/backpressure.md). Env
    #: `VIGIL_ROCKSDB_WRITE_BUFFER_MB` (default 4), `VIGIL_ROCKSDB_BLOCK_CACHE_MB` (default 8).
    rocksdb_write_buffer_mb: int = 4
    rocksdb_block_cache_mb: int = 8
    #: A source that sent nothing to a `vigil.events` partition for this long (ms of processing
    #: time) stops holding that partition's clock, on which alert timers and risk heartbeats run
    #: (app/runtime/partition_clock.py). Longer: alerts stay independent of how sources interleave
    #: through longer pauses (a worker restart, a backlog read topic by topic); shorter: a
    #: source that went quiet delays alerts less. A partition that got nothing at all (ticks
    #: included) for this long was paused (workers down): that is charged to no source. Must
    #: exceed `clock_tick_ms`. Env `VIGIL_CLOCK_IDLE_MS`. Default 30000.
    clock_idle_ms: int = 30_000
    #: How often each worker writes a clock tick to every `vigil.events` partition (ms), so a
    #: partition notices idle sources when nothing else arrives. Env `VIGIL_CLOCK_TICK_MS`.
    #: Default 5000. 0: no ticks (alert timers then wait for the next event).
    clock_tick_ms: int = 5_000
    #: Event-time window size for every series (ms). Env `VIGIL_WINDOW_MS`. Default 60000.
    window_ms: int = 60_000
    #: How late an event may be and still count (ms). Env `VIGIL_WINDOW_GRACE_MS`. Default 30000.
    window_grace_ms: int = 30_000
    #: Anomaly score (0..1) at which a closed window is reported. Env `VIGIL_ANOMALY_THRESHOLD`.
    #: Default 0.9.
    anomaly_threshold: float = 0.9
    #: Emit every closed window on `vigil.windows`. Env `VIGIL_EMIT_WINDOWS`. Default true.
    emit_windows: bool = True
    #: Alert grouping labels (comma list; `...` = all). Env `VIGIL_GROUP_BY`. Default `alertname`.
    group_by: str = "alertname"
    #: Alertmanager's group_wait (ms). Env `VIGIL_GROUP_WAIT_MS`. Default 30000.
    group_wait_ms: int = 30_000
    #: Alertmanager's group_interval (ms). Env `VIGIL_GROUP_INTERVAL_MS`. Default 300000.
    group_interval_ms: int = 300_000
    #: Alertmanager's repeat_interval (ms). Env `VIGIL_REPEAT_INTERVAL_MS`. Default 4 h.
    repeat_interval_ms: int = 4 * 3_600_000
    #: How often a still-open finding (scanner, code scanning, dependency alerts) or CI failure
    #: is notified again (ms); 0 = never: they notify when they open, resolve or reopen.
    #: Env `VIGIL_FINDING_REPEAT_INTERVAL_MS`. Default 0.
    finding_repeat_interval_ms: int = 0
    #: Alertmanager's resolve_timeout (ms). Env `VIGIL_RESOLVE_TIMEOUT_MS`. Default 300000.
    resolve_timeout_ms: int = 300_000
    #: Service catalogue YAML (criticality, exposure). Env `VIGIL_CATALOGUE`. Default none.
    catalogue: str = ""
    #: Inhibition rules YAML (a list of Alertmanager-style rules). Env `VIGIL_INHIBIT_RULES`.
    #: Default none.
    inhibit_rules: str = ""
    #: Declared baselines YAML (docs/drift.md). Env `VIGIL_DRIFT_BASELINES`. Default none.
    drift_baselines: str = ""
    #: CloudTrail user agents of IaC tools (comma list of globs). Env `VIGIL_IAC_USER_AGENTS`.
    #: Default: terraform, pulumi, CloudFormation and CDK agents.
    iac_user_agents: str = ""
    #: CloudTrail identities of the IaC pipeline (globs). Env `VIGIL_IAC_IDENTITIES`. Default none.
    iac_identities: str = ""
    #: Compliance rule pack YAML. Env `VIGIL_COMPLIANCE_RULES`. Default the bundled pack
    #: (app/rules/compliance.yaml).
    compliance_rules: str = ""
    #: Directory of Rego policies and Gatekeeper YAML added to the bundled policies
    #: (app/rules/policies/; docs/drift.md). Env `VIGIL_POLICY_DIR`. Default none.
    policy_dir: str = ""
    #: Kubernetes cluster name used in compliance scopes. Env `VIGIL_K8S_CLUSTER`. Default none.
    k8s_cluster: str = ""
    #: Bearer tokens allowed to read the API and dashboard (comma list). Env `VIGIL_READ_TOKENS`.
    #: Default none: without tokens every API request is refused.
    read_tokens: str = ""
    #: Bearer tokens with admin rights (silences; implies read). Env `VIGIL_ADMIN_TOKENS`.
    admin_tokens: str = ""
    #: Named bearer tokens, `principal:role:token` comma list (app/web/auth.py); the principal
    #: is who the audit trail names. Env `VIGIL_TOKENS`. Default none.
    tokens: str = ""
    #: The gate's decision for a service neither in the catalogue nor with any risk state:
    #: `allow`, `warn` or `block`. Env `VIGIL_GATE_UNKNOWN_DECISION`. Default `warn`.
    gate_unknown_decision: str = "warn"
    #: Longest a silence created through the API may last, from now (hours). Env
    #: `VIGIL_SILENCE_MAX_HOURS`. Default 720 (30 days).
    silence_max_hours: float = 720.0
    #: Where the shared fixtures and NAB data live. Env `VIGIL_SHARED_DIR`. Default `../shared`.
    shared_dir: str = str(REPO_ROOT.parent / "shared")
    #: Log level of the worker. Env `VIGIL_LOG_LEVEL`. Default `info`.
    log_level: str = "info"
    #: Topic renames: `VIGIL_TOPIC_<LOGICAL>` variable -> Kafka topic name, e.g.
    #: `VIGIL_TOPIC_EVENTS=prod.vigil.events`, `VIGIL_TOPIC_RAW_K8S_AUDIT=audit.k8s`
    #: (app/topics.py). Default none: `<prefix>vigil.<stream>`, `<prefix>telemetry.<family>`.
    topic_names: Mapping[str, str] = field(default_factory=dict)
    #: Most distinct `service` label values of `vigil_risk_score`; later services share the
    #: `other` series (app/metrics). Env `VIGIL_METRICS_MAX_SERVICES`. Default 50; below 1
    #: counts as 1 and a value that is not an integer as the default.
    metrics_max_services: int = MAX_SERVICES
    #: How Vigil authenticates to the brokers: TLS and SASL. Env `VIGIL_KAFKA_*`, each
    #: documented at its field in app/security.py. Default plaintext, no credentials.
    kafka: KafkaSecurity = field(default_factory=KafkaSecurity)
    #: Where alert notifications go and how delivery retries. Env `VIGIL_ALERTMANAGER_URL`,
    #: `VIGIL_WEBHOOK_URLS`, `VIGIL_SINK_*`, ..., each documented at its field in
    #: app/settings/sinks.py. Default no sink.
    sinks: SinkSettings = field(default_factory=SinkSettings)
    #: Risk scoring and the release gate. Env `VIGIL_RISK_*`, `VIGIL_GATE_*` (the variable of
    #: each field: app/settings/risk.py; meanings and defaults: tables/risk/model.py).
    risk: RiskConfig = field(default_factory=RiskConfig)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read every setting from `env` (default: the process environment), else its default.

        Raises ValueError (`KafkaSecurityError` for `VIGIL_KAFKA_*`) naming the variable when a
        value does not parse or the values contradict each other."""
        env = os.environ if env is None else env
        d = cls()
        return cls(
            app_id=env_str(env, "VIGIL_APP_ID", d.app_id),
            broker_url=env_str(env, "BROKER_URL", d.broker_url),
            store=env_str(env, "VIGIL_STORE", d.store),
            datadir=env_str(env, "APP_DATADIR", ""),
            web_bind=env_str(env, "WEB_BIND", d.web_bind),
            web_host=env_str(env, "WEB_HOST", d.web_host),
            web_port=env_int(env, "WEB_PORT", d.web_port),
            partitions=env_int(env, "VIGIL_PARTITIONS", d.partitions),
            replicas=env_int(env, "VIGIL_REPLICAS", d.replicas),
            processing_guarantee=env_str(env, "PROCESSING_GUARANTEE", d.processing_guarantee),
            topic_prefix=env_str(env, "VIGIL_TOPIC_PREFIX", d.topic_prefix),
            max_record_bytes=env_int(env, "VIGIL_MAX_RECORD_BYTES", d.max_record_bytes),
            max_depth=env_int(env, "VIGIL_MAX_DEPTH", d.max_depth),
            max_future_skew_ms=env_int(env, "VIGIL_MAX_FUTURE_SKEW_MS", d.max_future_skew_ms),
            masking=env_bool(env, "VIGIL_MASKING", d.masking),
            mask_ips=env_bool(env, "VIGIL_MASK_IPS", d.mask_ips),
            batch_max=env_int(env, "VIGIL_BATCH_MAX", d.batch_max),
            batch_linger_ms=env_int(env, "VIGIL_BATCH_LINGER_MS", d.batch_linger_ms),
            batch_backlog_linger_ms=env_int(
                env, "VIGIL_BATCH_BACKLOG_LINGER_MS", d.batch_backlog_linger_ms
            ),
            table_cache_keys=env_int(env, "VIGIL_TABLE_CACHE_KEYS", d.table_cache_keys),
            direct_writes=env_bool(env, "VIGIL_DIRECT_WRITES", d.direct_writes),
            stream_buffer=env_int(env, "VIGIL_STREAM_BUFFER", d.stream_buffer),
            producer_buffer=env_int(env, "VIGIL_PRODUCER_BUFFER", d.producer_buffer),
            event_loop=env_str(env, "VIGIL_EVENT_LOOP", d.event_loop),
            producer_linger_ms=env_int(env, "VIGIL_PRODUCER_LINGER_MS", d.producer_linger_ms),
            faust_sensor=env_str(env, "VIGIL_FAUST_SENSOR", d.faust_sensor),
            eager_delivery=env_bool(env, "VIGIL_EAGER_DELIVERY", d.eager_delivery),
            fetch_max_wait_ms=env_int(env, "VIGIL_FETCH_MAX_WAIT_MS", d.fetch_max_wait_ms),
            fetch_backoff_ms=env_int(env, "VIGIL_FETCH_BACKOFF_MS", d.fetch_backoff_ms),
            gc_tuning=env_bool(env, "VIGIL_GC_TUNING", d.gc_tuning),
            risk_batch_max=env_int(env, "VIGIL_RISK_BATCH_MAX", d.risk_batch_max),
            align_drift_ms=env_int(env, "VIGIL_ALIGN_DRIFT_MS", d.align_drift_ms),
            rocksdb_write_buffer_mb=env_int(
                env, "VIGIL_ROCKSDB_WRITE_BUFFER_MB", d.rocksdb_write_buffer_mb
            ),
            rocksdb_block_cache_mb=env_int(
                env, "VIGIL_ROCKSDB_BLOCK_CACHE_MB", d.rocksdb_block_cache_mb
            ),
            clock_idle_ms=env_int(env, "VIGIL_CLOCK_IDLE_MS", d.clock_idle_ms),
            clock_tick_ms=env_int(env, "VIGIL_CLOCK_TICK_MS", d.clock_tick_ms),
            window_ms=env_int(env, "VIGIL_WINDOW_MS", d.window_ms),
            window_grace_ms=env_int(env, "VIGIL_WINDOW_GRACE_MS", d.window_grace_ms),
            anomaly_threshold=env_float(env, "VIGIL_ANOMALY_THRESHOLD", d.anomaly_threshold),
            emit_windows=env_bool(env, "VIGIL_EMIT_WINDOWS", d.emit_windows),
            group_by=env_str(env, "VIGIL_GROUP_BY", d.group_by),
            group_wait_ms=env_int(env, "VIGIL_GROUP_WAIT_MS", d.group_wait_ms),
            group_interval_ms=env_int(env, "VIGIL_GROUP_INTERVAL_MS", d.group_interval_ms),
            repeat_interval_ms=env_int(env, "VIGIL_REPEAT_INTERVAL_MS", d.repeat_interval_ms),
            finding_repeat_interval_ms=env_int(
                env, "VIGIL_FINDING_REPEAT_INTERVAL_MS", d.finding_repeat_interval_ms
            ),
            resolve_timeout_ms=env_int(env, "VIGIL_RESOLVE_TIMEOUT_MS", d.resolve_timeout_ms),
            catalogue=env_str(env, "VIGIL_CATALOGUE", d.catalogue),
            inhibit_rules=env_str(env, "VIGIL_INHIBIT_RULES", d.inhibit_rules),
            drift_baselines=env_str(env, "VIGIL_DRIFT_BASELINES", d.drift_baselines),
            iac_user_agents=env_str(env, "VIGIL_IAC_USER_AGENTS", d.iac_user_agents),
            iac_identities=env_str(env, "VIGIL_IAC_IDENTITIES", d.iac_identities),
            compliance_rules=env_str(env, "VIGIL_COMPLIANCE_RULES", d.compliance_rules),
            policy_dir=env_str(env, "VIGIL_POLICY_DIR", d.policy_dir),
            k8s_cluster=env_str(env, "VIGIL_K8S_CLUSTER", d.k8s_cluster),
            read_tokens=env_str(env, "VIGIL_READ_TOKENS", d.read_tokens),
            admin_tokens=env_str(env, "VIGIL_ADMIN_TOKENS", d.admin_tokens),
            tokens=env_str(env, "VIGIL_TOKENS", d.tokens),
            gate_unknown_decision=env_str(
                env, "VIGIL_GATE_UNKNOWN_DECISION", d.gate_unknown_decision
            ),
            silence_max_hours=env_float(env, "VIGIL_SILENCE_MAX_HOURS", d.silence_max_hours),
            shared_dir=env_str(env, "VIGIL_SHARED_DIR", d.shared_dir),
            log_level=env_str(env, "VIGIL_LOG_LEVEL", d.log_level),
            topic_names=_topic_names(env),
            metrics_max_services=_max_services(env),
            kafka=KafkaSecurity.from_env(env),
            sinks=SinkSettings.from_env(env),
            risk=risk_from_env(env),
        )

    @property
    def store_is_rocksdb(self) -> bool:
        """Whether tables live in RocksDB (serialized values), not in memory (objects)."""
        return self.store.startswith("rocksdb:")

    def store_options(self) -> dict[str, int]:
        """RocksDB options for every table (Faust `RocksDBOptions` fields); none for other
        stores."""
        if not self.store_is_rocksdb:
            return {}
        mib = 1024 * 1024
        return {
            "write_buffer_size": self.rocksdb_write_buffer_mb * mib,
            "max_write_buffer_number": 2,
            "block_cache_size": self.rocksdb_block_cache_mb * mib,
            "block_cache_compressed_size": self.rocksdb_block_cache_mb * mib,
        }

    def __repr__(self) -> str:  # tokens never reach logs
        return f"Settings(app_id={self.app_id!r}, broker_url={self.broker_url!r}, ...)"

    def __post_init__(self) -> None:
        if self.max_future_skew_ms < 0:
            raise ValueError(
                f"VIGIL_MAX_FUTURE_SKEW_MS must be >= 0 (0: off), got {self.max_future_skew_ms}"
            )
        if self.event_loop not in ("uvloop", "asyncio"):
            raise ValueError(f"VIGIL_EVENT_LOOP must be uvloop or asyncio, got {self.event_loop!r}")
        if not 0 <= self.producer_linger_ms <= 1000:
            raise ValueError(
                f"VIGIL_PRODUCER_LINGER_MS must be 0..1000, got {self.producer_linger_ms}"
            )
        if self.faust_sensor not in ("lean", "full"):
            raise ValueError(f"VIGIL_FAUST_SENSOR must be lean or full, got {self.faust_sensor!r}")
        if self.risk_batch_max < 1:
            raise ValueError(f"VIGIL_RISK_BATCH_MAX must be at least 1, got {self.risk_batch_max}")
        if self.batch_max < 1:
            raise ValueError(f"VIGIL_BATCH_MAX must be at least 1, got {self.batch_max}")
        if self.table_cache_keys < 0:
            raise ValueError(f"VIGIL_TABLE_CACHE_KEYS must be >= 0, got {self.table_cache_keys}")
        if self.batch_linger_ms < 0:
            raise ValueError(f"VIGIL_BATCH_LINGER_MS must be >= 0, got {self.batch_linger_ms}")
        if self.batch_backlog_linger_ms < 0:
            raise ValueError(
                f"VIGIL_BATCH_BACKLOG_LINGER_MS must be >= 0, got {self.batch_backlog_linger_ms}"
            )
        if self.rocksdb_write_buffer_mb < 1 or self.rocksdb_block_cache_mb < 1:
            raise ValueError(
                "VIGIL_ROCKSDB_WRITE_BUFFER_MB and VIGIL_ROCKSDB_BLOCK_CACHE_MB must be at least "
                f"1, got {self.rocksdb_write_buffer_mb} and {self.rocksdb_block_cache_mb}"
            )
        if self.align_drift_ms < 0:
            raise ValueError(f"VIGIL_ALIGN_DRIFT_MS must be >= 0, got {self.align_drift_ms}")
        if self.fetch_max_wait_ms < 0 or self.fetch_backoff_ms < 0:
            raise ValueError(
                "VIGIL_FETCH_MAX_WAIT_MS and VIGIL_FETCH_BACKOFF_MS must be >= 0, got "
                f"{self.fetch_max_wait_ms} and {self.fetch_backoff_ms}"
            )
        if self.stream_buffer < 1:
            raise ValueError(f"VIGIL_STREAM_BUFFER must be at least 1, got {self.stream_buffer}")
        if self.producer_buffer < 1:
            raise ValueError(
                f"VIGIL_PRODUCER_BUFFER must be at least 1, got {self.producer_buffer}"
            )
        if self.clock_tick_ms < 0:
            raise ValueError(f"VIGIL_CLOCK_TICK_MS must be >= 0, got {self.clock_tick_ms}")
        if self.clock_idle_ms <= self.clock_tick_ms:
            raise ValueError(
                "VIGIL_CLOCK_IDLE_MS must be longer than VIGIL_CLOCK_TICK_MS (a partition that "
                f"got no tick for the idle time was paused), got {self.clock_idle_ms} and "
                f"{self.clock_tick_ms}"
            )
        if self.gate_unknown_decision not in ("allow", "warn", "block"):
            raise ValueError(
                "VIGIL_GATE_UNKNOWN_DECISION must be allow, warn or block, got "
                f"{self.gate_unknown_decision!r}"
            )
        if not self.silence_max_hours > 0:
            raise ValueError(f"VIGIL_SILENCE_MAX_HOURS must be > 0, got {self.silence_max_hours}")
        if not self.datadir:
            object.__setattr__(self, "datadir", str(REPO_ROOT / "var" / "data" / self.app_id))

    @property
    def bootstrap_servers(self) -> str:
        """`broker_url` without the `kafka://` scheme, as aiokafka wants it."""
        return ",".join(
            url.strip().removeprefix("kafka://") for url in self.broker_url.split(";")
        ).replace(";", ",")
