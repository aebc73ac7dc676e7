"""The designed situation of each demo service: what `vigil generate` (and `make demo`) lets
happen to it, and the gate decision that must follow.

The generator draws its background (metrics, logs, audit, CloudTrail, Terraform, CI) for every
service alike; everything that carries risk is steered by the service's scenario: which Falco
rules fire in its containers, which CVEs its image carries, which Alertmanager alerts it
raises, whether its metrics spike (an incident: 5xx logs and an alert follow), how often its
deployments fail. CI runs on the main branches pass; failed runs happen on feature branches.

- payments (critical, internet), **exploited** -> block: Log4Shell (critical, in CISA KEV) in
  the running image, a shell in a container and an outbound C2 connection (Falco critical).
- checkout (high, internet), **regressing** -> warn: an open high finding, failed deployments,
  latency and crash-loop alerts (warning), error-rate spikes, people exec-ing into its pods.
- search (medium, internal), **noisy** -> allow: only low-severity Falco rules (shells,
  privileged containers), often in bursts, and a low finding.
- auth (critical, internet), **clean** -> allow: its first scan's medium finding is gone from
  the next scan (a rescan resolves it), green CI, good deployments.
- cluster-nodes (high, internal) -> block: the nodes run every container, so payments' C2
  connection is their incident too.

`tests/unit/generator/test_scenarios.py` checks every decision offline at 3 and 10 minutes of
demo traffic; `tests/integration/test_demo_scenarios_broker.py` through a worker.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Scenario:
    """What the generator lets happen to one service (see the module docstring)."""

    name: str
    #: The gate decision the scenario is designed to give.
    decision: str
    #: Indexes into `app.generator.falco.FALCO_RULES` that fire in its containers (none: no alerts).
    falco_rules: tuple[int, ...] = ()
    #: CVE ids its image carries in every scan.
    cves: tuple[str, ...] = ()
    #: CVE ids of its first scan only: the next scan no longer finds them.
    fixed_cves: tuple[str, ...] = ()
    #: Whether its scans carry EPSS and CISA KEV (else 3 scans in 10 do).
    enriched: bool = False
    #: Whether its Semgrep runs report results.
    sast: bool = True
    #: Indexes into `app.generator.alertmanager.ALERTS` it raises on Alertmanager (none: none).
    alerts: tuple[int, ...] = ()
    #: Whether its metrics spike (an incident: 5xx logs and its first alert follow).
    incidents: bool = False
    #: Probability that one of its deployments fails.
    deploy_failure: float = 0.0
    #: Whether people exec into its pods (a compliance violation, medium).
    pod_exec: bool = False


#: The scenario of each generated service.
SCENARIOS: dict[str, Scenario] = {
    "payments": Scenario(
        name="exploited",
        decision="block",
        falco_rules=(0, 4),
        cves=("CVE-2021-44228", "CVE-2023-5363"),
        enriched=True,
        alerts=(1,),
        pod_exec=True,
    ),
    "checkout": Scenario(
        name="regressing",
        decision="warn",
        cves=("CVE-2023-45288", "CVE-2024-2511"),
        alerts=(1, 2),
        incidents=True,
        deploy_failure=0.5,
        pod_exec=True,
    ),
    "search": Scenario(
        name="noisy",
        decision="allow",
        falco_rules=(0, 2),
        cves=("CVE-2023-38546",),
    ),
    "auth": Scenario(
        name="clean",
        decision="allow",
        fixed_cves=("CVE-2024-29041",),
        sast=False,
    ),
}

#: Subjects whose decision follows from the services' scenarios (not generated directly).
DERIVED_DECISIONS: dict[str, str] = {"cluster-nodes": "block"}


def expected_decisions() -> dict[str, str]:
    """Service -> the gate decision its scenario names."""
    return {**{s: scenario.decision for s, scenario in SCENARIOS.items()}, **DERIVED_DECISIONS}


def with_falco(services: tuple[str, ...]) -> tuple[str, ...]:
    """The services in whose containers Falco rules fire."""
    return tuple(s for s in services if SCENARIOS[s].falco_rules)


def with_incidents(services: tuple[str, ...]) -> tuple[str, ...]:
    """The services whose metrics spike."""
    return tuple(s for s in services if SCENARIOS[s].incidents)


def with_alerts(services: tuple[str, ...]) -> tuple[str, ...]:
    """The services that raise Alertmanager alerts."""
    return tuple(s for s in services if SCENARIOS[s].alerts)
