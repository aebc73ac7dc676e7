"""Settings: the nested groups (risk, sinks, kafka), topic renames and the metrics cap are read
from the environment mapping given to `Settings.from_env`, with the same errors as before."""

from __future__ import annotations

import pytest

from app.security import KafkaSecurityError
from app.settings import Settings
from app.settings.risk import RISK_ENV
from app.topics import TopicCatalog
from tables.risk.model import RiskConfig


def test_defaults_need_no_environment():
    settings = Settings.from_env({})
    assert settings.risk == RiskConfig()
    assert not settings.sinks.enabled
    assert settings.kafka.protocol == "PLAINTEXT"
    assert settings.topic_names == {}
    assert settings.metrics_max_services == 50


def test_risk_knobs_override_their_field():
    env = {
        "VIGIL_RISK_HALF_LIFE_MS": "1000",
        "VIGIL_RISK_MAIN_BRANCHES": "trunk, release",
        "VIGIL_GATE_BLOCK_CRITICAL_FINDINGS": "yes",
        "VIGIL_GATE_CFR_WARN": "0.25",
    }
    risk = Settings.from_env(env).risk
    assert risk.half_life_ms == 1000
    assert risk.main_branches == ("trunk", "release")
    assert risk.block_critical_findings is True
    assert risk.cfr_warn == 0.25
    assert set(RISK_ENV.values()) <= set(RiskConfig.__dataclass_fields__)


def test_a_bad_risk_value_names_its_variable():
    with pytest.raises(ValueError, match=r"^VIGIL_RISK_MAX_ITEMS: "):
        Settings.from_env({"VIGIL_RISK_MAX_ITEMS": "many"})


def test_sink_and_kafka_errors_surface_from_settings():
    with pytest.raises(ValueError, match="VIGIL_SINK_MAX_ATTEMPTS must be at least 1"):
        Settings.from_env({"VIGIL_SINK_MAX_ATTEMPTS": "0"})
    with pytest.raises(KafkaSecurityError, match="VIGIL_KAFKA_SECURITY_PROTOCOL"):
        Settings.from_env({"VIGIL_KAFKA_SECURITY_PROTOCOL": "TLS"})


def test_topic_renames_reach_the_catalog():
    settings = Settings.from_env(
        {"VIGIL_TOPIC_EVENTS": "prod.events", "VIGIL_TOPIC_PREFIX": "x.", "VIGIL_TOPIC_LATE": ""}
    )
    assert settings.topic_names == {"VIGIL_TOPIC_EVENTS": "prod.events"}
    catalog = TopicCatalog(settings)
    assert catalog.name("events") == "prod.events"
    assert catalog.name("late") == "x.vigil.late"
    assert TopicCatalog(settings, {}).name("events") == "x.vigil.events"


@pytest.mark.parametrize(("raw", "cap"), [("", 50), ("7", 7), ("0", 1), ("lots", 50)])
def test_metrics_service_cap(raw, cap):
    assert Settings.from_env({"VIGIL_METRICS_MAX_SERVICES": raw}).metrics_max_services == cap
