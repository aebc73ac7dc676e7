"""Which adapters read which raw topic family, in the order formats are tried."""

from __future__ import annotations

from app.sources.alertmanager import AlertmanagerAdapter
from app.sources.base import SourceAdapter
from app.sources.cloudtrail import CloudTrailAdapter
from app.sources.falco import FalcoAdapter
from app.sources.fluentbit import FluentBitAdapter
from app.sources.github.adapter import GitHubAdapter
from app.sources.gitlab import GitLabAdapter
from app.sources.k8s_audit import K8sAuditAdapter
from app.sources.metrics import MetricsAdapter
from app.sources.sarif import SarifAdapter
from app.sources.terraform import TerraformAdapter
from app.sources.trivy import TrivyAdapter

#: Raw topic family -> adapters tried in order (the first whose `matches` is true wins).
#: Each family is read from the raw topic `telemetry.<family>` (see app/topics.py).
FAMILIES: dict[str, tuple[SourceAdapter, ...]] = {
    "falco": (FalcoAdapter(),),
    "k8s-audit": (K8sAuditAdapter(),),
    "cloudtrail": (CloudTrailAdapter(),),
    "terraform": (TerraformAdapter(),),
    "alertmanager": (AlertmanagerAdapter(),),
    "logs": (FluentBitAdapter(),),
    "metrics": (MetricsAdapter(),),
    "ci": (GitLabAdapter(), GitHubAdapter()),
    "scans": (TrivyAdapter(), SarifAdapter()),
}

#: Families whose records may be plain text rather than JSON (e.g. Prometheus exposition).
TEXT_FAMILIES: frozenset[str] = frozenset()


def adapters_for(family: str | None) -> tuple[SourceAdapter, ...]:
    """Adapters for a family, or every adapter (for auto-detection) when `family` is None."""
    if family is None:
        return tuple(adapter for adapters in FAMILIES.values() for adapter in adapters)
    return FAMILIES[family]


def adapter_named(name: str) -> SourceAdapter | None:
    """The adapter whose source name is `name`, if any."""
    for adapter in adapters_for(None):
        if adapter.name == name:
            return adapter
    return None
