"""The records `vigil generate` breaks on purpose (a `bad_ratio` share of the stream): no
adapter can read them, so they must be dead-lettered."""

from __future__ import annotations

import orjson

#: (family, bytes) of the deliberately broken records, one per way of breaking: broken JSON or
#: bytes, a wrong type, a missing or unreadable time.
MALFORMED: tuple[tuple[str, bytes], ...] = (
    ("falco", b'{"rule": "Write below etc", "priority": "Err'),
    (
        "falco",
        orjson.dumps({"rule": 42, "priority": "Error", "output": "x", "time": 1_700_000_000_000}),
    ),
    ("metrics", b"\xff\xfe not utf-8"),
    ("metrics", b'http_requests_total{job="payments",code="200"} many 1700000000000\n'),
    ("scans", b'{"SchemaVersion": 2, "ArtifactName": "registry.example.com/payments:1.4.2", "Re'),
    (
        "k8s-audit",
        b'{"kind": "Event", "apiVersion": "audit.k8s.io/v1", "auditID": "5f1c2a9e", '
        b'"stage": "ResponseComplete", "verb": "get", "objectRef": {"resource": "pods"}}',
    ),
    (
        "cloudtrail",
        b'{"eventVersion": "1.09", "eventTime": "yesterday", "eventSource": "ec2.amazonaws.com",'
        b' "eventName": "DescribeInstances", "recipientAccountId": "493817265094"}',
    ),
    (
        "logs",
        b'{"log": "GET /healthz\\n", "stream": "stdout", "kubernetes": '
        b'{"namespace_name": "prod", "pod_name": "search-0", "container_name": "search"}}',
    ),
)
