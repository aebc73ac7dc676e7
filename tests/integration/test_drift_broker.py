"""Through the real broker: Stratus Red Team CloudTrail detonations raise their compliance
violations, Terraform drift fixtures raise drift, both as the offline replay does, and the
posture is readable through the web API."""

from __future__ import annotations

from collections import Counter

import pytest

from app.replay import file_family, offline_replay
from app.sources.files import file_records
from tests.integration.test_web_api import READ, TOKENS, get, wait_for

pytestmark = pytest.mark.integration

FILES = (
    "cloudtrail/stratus-aws.defense-evasion.cloudtrail-stop.json",
    "cloudtrail/stratus-aws.exfiltration.ec2-security-group-open-port-22-ingress.json",
    "cloudtrail/stratus-aws.initial-access.console-login-without-mfa.json",
    "cloudtrail/falco-alice_start_instances.records.json",
    "terraform/show-json-drift.json",
    "terraform/show-json-moved-drift.json",
)


def test_violations_drift_and_posture_through_the_broker(workers, fixtures_dir):
    paths = [fixtures_dir / name for name in FILES]
    offline = [r for r in offline_replay(paths, workers.settings, flush=False)]
    expected = {
        topic: Counter(r["value"]["id"] for r in offline if r["topic"].endswith(topic))
        for topic in ("vigil.violations", "vigil.drift")
    }
    assert expected["vigil.violations"] and expected["vigil.drift"]

    for path in paths:
        raws = [raw for _, raw in file_records(path)]
        workers.produce(workers.topic(f"raw:{file_family(path)}"), raws, key=path.name.encode())
    worker = workers.start("drift", **TOKENS)
    for topic, ids in expected.items():
        logical = topic.removeprefix("vigil.")
        missing = set(ids)

        def arrived(record: dict, missing=missing) -> bool:
            missing.discard(record["value"]["id"])
            return not missing

        records = workers.collect(
            workers.topic(logical),
            count=sum(ids.values()) + 10,
            timeout_s=60,
            worker=worker,
            stop_when=arrived,
        )
        assert {r["value"]["id"] for r in records} == set(ids), topic

    violations = [r["value"] for r in offline if r["topic"].endswith("vigil.violations")]
    rules = {v["rule_id"] for v in violations}
    assert {"aws-cloudtrail-stopped"} <= rules, rules
    stop = next(v for v in violations if v["rule_id"] == "aws-cloudtrail-stopped")
    assert "AU-9" in stop["controls"]["nist-800-53-r5"]
    base = f"http://127.0.0.1:{worker.web_port}"

    def failing_posture():
        status, body = get(f"{base}/api/posture", READ)
        if status != 200:
            return None
        failing = [row for row in body["items"] if row.get("status") == "fail"]
        return failing or None

    failing = wait_for(failing_posture, 60)
    frameworks = {row["framework"] for row in failing}
    assert {"nist-800-53-r5", "pci-dss-4.0", "cis-aws-1.4.0"} <= frameworks, frameworks
