"""Kubernetes audit events normalize to one k8s_audit event each, keyed by the object acted on."""

from __future__ import annotations

import orjson
import pytest

from app.model.events import event_id
from app.sources.errors import ErrorCode, NormalizeError
from app.sources.files import file_records
from app.sources.normalize import Normalizer

#: file -> (events, distinct ids). The Falco trace events are hand-edited copies: two pairs
#: reuse an auditID + stage (lines 1/51 and 21/24), so they share an id, as replays would.
K8S_FILES = {
    "audit2rbac-demo.jsonl": (37, 37),
    "falco-k8s-audit-trace-events.jsonl": (51, 49),
}


def _events(fixtures_dir, name):
    normalizer = Normalizer()
    events = []
    for _, raw in file_records(fixtures_dir / "k8s-audit" / name):
        events.extend(normalizer.normalize(raw, family="k8s-audit"))
    return events


def _lines(fixtures_dir, name):
    return [raw for _, raw in file_records(fixtures_dir / "k8s-audit" / name)]


@pytest.mark.parametrize(("name", "expected"), sorted(K8S_FILES.items()))
def test_every_k8s_audit_sample_normalizes(fixtures_dir, name, expected):
    events = _events(fixtures_dir, name)
    count, distinct = expected
    assert len(events) == count
    assert all(e.source == "k8s-audit" and e.type == "k8s_audit" for e in events)
    assert len({e.id for e in events}) == distinct


def test_forbidden_responses_are_low(fixtures_dir):
    events = _events(fixtures_dir, "audit2rbac-demo.jsonl")
    forbidden = [e for e in events if e.attributes["decision"] == "forbidden"]
    assert len(forbidden) == 11
    assert all(e.attributes["response_code"] == 403 and e.severity == "low" for e in forbidden)
    assert {e.severity for e in events if e not in forbidden} == {"info"}


def test_first_audit2rbac_event_fields(fixtures_dir):
    (event,) = Normalizer().normalize(
        _lines(fixtures_dir, "audit2rbac-demo.jsonl")[0], family="k8s-audit"
    )
    assert event.id == event_id(
        "k8s-audit", "033d17af-082d-4b24-aa22-627752e83d71", "ResponseComplete"
    )
    assert event.time == "2017-09-11T19:55:05.000Z"  # only `timestamp` is present
    assert event.entity == "k8s:default/pods/*"  # a list names no object
    attrs = event.attributes
    assert attrs["verb"] == "list"
    assert attrs["username"] == "system:admin"
    assert attrs["groups"] == ["system:masters", "system:authenticated"]
    assert attrs["impersonated_user"] == "bob"
    assert attrs["source_ips"] == ["::1"]
    assert attrs["namespace"] == "default" and attrs["name"] is None
    assert attrs["api_version"] == "v1" and attrs["api_group"] is None
    assert attrs["level"] == "Metadata"
    assert attrs["request_uri"] == "/api/v1/namespaces/default/pods"


def test_non_resource_url_and_forbidden_secret_list(fixtures_dir):
    events = _events(fixtures_dir, "audit2rbac-demo.jsonl")
    assert events[9].entity == "k8s:_cluster/_nonresource/api"
    assert events[9].attributes["resource"] is None
    last = events[-1]
    assert last.entity == "k8s:ns1/secrets/*"
    assert last.attributes["risk_reasons"] == ["secret_read", "forbidden"]
    assert last.severity == "low"


def test_allowed_secret_read_is_medium(fixtures_dir):
    doc = orjson.loads(_lines(fixtures_dir, "audit2rbac-demo.jsonl")[-1])
    doc["responseStatus"] = {"code": 200}
    (event,) = Normalizer().normalize(orjson.dumps(doc), family="k8s-audit")
    assert event.severity == "medium"
    assert event.attributes["decision"] == "allow"


def test_falco_trace_severities_and_entities(fixtures_dir):
    events = _events(fixtures_dir, "falco-k8s-audit-trace-events.jsonl")
    by_line = dict(enumerate(events))
    # v1beta1 create namespace by system:anonymous; namespaces are cluster-scoped
    assert by_line[0].entity == "k8s:_cluster/namespaces/foo"
    assert by_line[0].attributes["audit_api_version"] == "audit.k8s.io/v1beta1"
    assert by_line[0].attributes["risk_reasons"] == ["anonymous_allowed"]
    assert by_line[0].time == "2018-10-25T13:58:49.736Z"  # stageTimestamp wins
    assert by_line[43].entity == "k8s:_cluster/namespaces/foo"  # the delete names ns "foo"
    # clusterrolebinding to cluster-admin (no apiVersion on this line)
    assert by_line[1].severity == "high"
    assert by_line[1].attributes["audit_api_version"] is None
    assert by_line[1].attributes["risk_reasons"] == ["rbac_write", "cluster_admin_binding"]
    assert by_line[8].severity == "medium"  # binding to system:basic-user
    # pods/attach and pods/exec: the pod is the entity
    for line, sub in ((2, "attach"), (47, "exec")):
        assert by_line[line].entity == "k8s:default/pods/nginx-deployment-7998647bdf-phvq7"
        assert by_line[line].attributes["subresource"] == sub
        assert by_line[line].severity == "medium"
    assert by_line[49].attributes["risk_reasons"] == ["rbac_write"]  # patch clusterrole
    assert by_line[18].severity == "info"  # secret create
    assert by_line[18].attributes["user_agent"].startswith("kubeadm/")


def test_pod_spec_summary(fixtures_dir):
    events = _events(fixtures_dir, "falco-k8s-audit-trace-events.jsonl")
    privileged = events[20]
    # created from generateName: the name comes from the response object
    assert privileged.entity == "k8s:default/pods/nginx-deployment-544b59f8b8-ffkxm"
    assert privileged.severity == "high"
    summary = privileged.attributes["spec_summary"]
    assert summary["privileged"] is True
    assert summary["images"] == ["mysql:latest", "nginx"]
    assert summary["containers"] == 2
    assert summary["resource_limits"] is False
    assert summary["run_as_non_root"] is False
    assert events[19].attributes["spec_summary"]["host_network"] is True
    assert events[19].severity == "medium"
    assert events[24].attributes["spec_summary"]["host_paths"] == ["/etc"]
    assert events[24].attributes["risk_reasons"] == ["sensitive_host_path"]
    deployment = events[17]
    assert deployment.entity == "k8s:default/deployments/nginx-deployment"
    assert deployment.attributes["spec_summary"]["images"] == ["nginx"]
    assert deployment.severity == "info"
    for event in events:
        assert "requestObject" not in event.attributes
        assert "responseObject" not in event.attributes


def test_event_list_gives_one_event_per_item(fixtures_dir):
    items = [orjson.loads(raw) for raw in _lines(fixtures_dir, "audit2rbac-demo.jsonl")[:3]]
    batch = {"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "items": items}
    events = Normalizer().normalize(orjson.dumps(batch), family="k8s-audit")
    assert [e.attributes["audit_id"] for e in events] == [i["auditID"] for i in items]


def test_stage_is_part_of_identity(fixtures_dir):
    doc = orjson.loads(_lines(fixtures_dir, "audit2rbac-demo.jsonl")[0])
    a = Normalizer().normalize(orjson.dumps(doc), family="k8s-audit")[0]
    b = Normalizer().normalize(
        orjson.dumps({**doc, "stage": "RequestReceived"}), family="k8s-audit"
    )[0]
    assert a.id != b.id


_GOOD = {"kind": "Event", "auditID": "a", "stage": "ResponseComplete", "verb": "get"}


@pytest.mark.parametrize(
    ("doc", "code"),
    [
        ({**_GOOD, "stageTimestamp": "2024-01-01T00:00:00Z", "auditID": 7}, ErrorCode.WRONG_TYPE),
        ({k: v for k, v in _GOOD.items() if k != "verb"}, ErrorCode.MISSING_FIELD),
        (_GOOD, ErrorCode.MISSING_FIELD),  # no timestamp at all
        ({**_GOOD, "stageTimestamp": "yesterday"}, ErrorCode.INVALID_VALUE),
        ({**_GOOD, "stageTimestamp": 1e300}, ErrorCode.INVALID_VALUE),
        ({**_GOOD, "timestamp": "2024-01-01T00:00:00Z", "stage": "Done"}, ErrorCode.INVALID_VALUE),
        ({**_GOOD, "timestamp": "2024-01-01T00:00:00Z", "objectRef": "pods"}, ErrorCode.WRONG_TYPE),
        (
            {**_GOOD, "timestamp": "2024-01-01T00:00:00Z", "responseStatus": {"code": "403"}},
            ErrorCode.WRONG_TYPE,
        ),
        ({"kind": "EventList", "items": []}, ErrorCode.EMPTY),
        ({"kind": "EventList", "items": [1]}, ErrorCode.WRONG_TYPE),
        (
            {"kind": "Event", "apiVersion": "v1", "auditID": "a", "stage": "x"},
            ErrorCode.UNKNOWN_FORMAT,
        ),
        ({"hello": "world"}, ErrorCode.UNKNOWN_FORMAT),
        ([1, 2], ErrorCode.UNKNOWN_FORMAT),
    ],
)
def test_bad_audit_events_fail_with_a_code(doc, code):
    with pytest.raises(NormalizeError) as info:
        Normalizer().normalize(orjson.dumps(doc), family="k8s-audit")
    assert info.value.code == code


def test_authorizer_annotation_decides(fixtures_dir):
    doc = orjson.loads(_lines(fixtures_dir, "falco-k8s-audit-trace-events.jsonl")[1])
    doc["annotations"]["authorization.k8s.io/decision"] = "forbid"
    (event,) = Normalizer().normalize(orjson.dumps(doc), family="k8s-audit")
    assert event.attributes["decision"] == "forbidden"
    assert event.severity == "low"  # the cluster-admin binding was refused
    assert event.attributes["risk_reasons"][-1] == "forbidden"


@pytest.mark.parametrize(
    ("resource", "expected"),
    [
        ("deployments", "workload"),
        ("cronjobs", "workload"),
        ("clusterrolebindings", "rbac"),
        ("networkpolicies", "network_policy"),
        ("secrets", None),
    ],
)
def test_resource_class(fixtures_dir, resource, expected):
    doc = orjson.loads(_lines(fixtures_dir, "audit2rbac-demo.jsonl")[0])
    doc["objectRef"] = {**doc.get("objectRef", {}), "resource": resource}
    (event,) = Normalizer().normalize(orjson.dumps(doc), family="k8s-audit")
    assert event.attributes.get("resource_class") == expected
