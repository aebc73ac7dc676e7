"""`vigil generate`'s synthetic telemetry: a deterministic, mixed stream of every raw source
family, in each tool's own format, whose risk follows each demo service's scenario.

- stream.py: `TelemetryGenerator`, the record stream (the mix, bursts, malformed records, the
  demo's warm-up history and injected incidents) and `RawRecord`.
- scenarios.py: what the generator lets happen to each service and the gate decision that must
  follow.
- fleet.py: hosts, services, images, pods, people and the fixed ids derived from them;
  source.py: what every family's builder shares (random draws, clock, releases); clock.py:
  event times in each format.
- One module per family: falco.py, metrics.py (JSON samples and Prometheus text), logs.py,
  kubernetes.py, cloudtrail.py, ci.py (GitHub Actions, GitLab CI, deployments),
  alertmanager.py, scans.py (Trivy, Semgrep SARIF) with its catalogue vulnerabilities.py,
  terraform.py; malformed.py holds the records broken on purpose.
"""
