"""Terraform plans normalize to one tf_change per resource change and one tf_drift per drift."""

from __future__ import annotations

import orjson
import pytest

from app.sources.errors import ErrorCode, NormalizeError
from app.sources.files import file_records
from app.sources.normalize import Normalizer

#: file -> (tf_change events, tf_drift events)
TERRAFORM_FILES = {
    "show-json-basic-delete.json": (2, 0),
    "show-json-drift.json": (2, 1),
    "show-json-moved-drift.json": (2, 1),
    "show-json-multi-resource-update.json": (2, 0),
    "show-json-requires-replace.json": (1, 0),
    "terraform-json-120_basic.plan.json": (7, 0),
    "terraform-json-action_reason.plan.json": (1, 0),
    "terraform-json-has_checks.plan.json": (2, 0),
}


def _raw(fixtures_dir, name):
    ((_, raw),) = file_records(fixtures_dir / "terraform" / name)
    return raw


def _events(fixtures_dir, name):
    return Normalizer().normalize(_raw(fixtures_dir, name), family="terraform")


@pytest.mark.parametrize(("name", "expected"), sorted(TERRAFORM_FILES.items()))
def test_every_terraform_plan_normalizes(fixtures_dir, name, expected):
    events = _events(fixtures_dir, name)
    changes, drifts = expected
    assert [e.type for e in events] == ["tf_change"] * changes + ["tf_drift"] * drifts
    assert all(e.source == "terraform" for e in events)
    assert all(e.entity == f"tf:{e.attributes['address']}" for e in events)
    assert len({e.id for e in events}) == len(events)


@pytest.mark.parametrize(
    ("name", "drift_address", "previous"),
    [
        ("show-json-drift.json", "test_instance.should_refresh", None),
        (
            "show-json-moved-drift.json",
            "test_instance.should_refresh_with_move",
            "test_instance.should_refresh",
        ),
    ],
)
def test_drift_changed_paths(fixtures_dir, name, drift_address, previous):
    events = _events(fixtures_dir, name)
    (drift,) = [e for e in events if e.type == "tf_drift"]
    assert drift.entity == f"tf:{drift_address}"
    assert drift.severity == "medium"
    assert drift.attributes["drift"] is True
    assert drift.attributes["changed_paths"] == ["ami"]
    assert drift.attributes["before"] == {"ami": "refresh-me", "id": "placeholder"}
    assert drift.attributes["after"] == {"ami": "refreshed", "id": "placeholder"}
    assert drift.attributes["previous_address"] == previous
    changes = [e for e in events if e.type == "tf_change"]
    assert [e.attributes["changed_paths"] for e in changes] == [["ami"], ["ami"]]
    assert [e.severity for e in changes] == ["low", "low"]
    assert all(e.attributes["drift"] is False for e in changes)


def test_actions_severity_and_paths(fixtures_dir):
    delete = _events(fixtures_dir, "show-json-basic-delete.json")[1]
    assert delete.attributes["actions"] == ["delete"]
    assert delete.attributes["action_reason"] == "delete_because_no_resource_config"
    assert delete.severity == "medium"
    assert delete.attributes["changed_paths"] == ["ami", "id"]
    (replace,) = _events(fixtures_dir, "show-json-requires-replace.json")
    assert replace.attributes["actions"] == ["delete", "create"]
    assert replace.severity == "medium"
    assert replace.attributes["replace_paths"] == ["ami"]
    assert replace.attributes["after_unknown"] == ["id"]
    noop, create = _events(fixtures_dir, "show-json-multi-resource-update.json")
    assert noop.attributes["actions"] == ["no-op"] and noop.severity == "info"
    assert noop.attributes["changed_paths"] == []
    assert noop.attributes["after"] == {"ami": "bar", "id": "placeholder"}  # desired state
    assert noop.attributes["index"] == 0
    assert noop.attributes["terraform_version"] == "0.13.0"
    assert create.severity == "low" and create.attributes["changed_paths"] == ["ami", "id"]
    foo = _events(fixtures_dir, "terraform-json-120_basic.plan.json")[1]
    assert foo.entity == "tf:module.foo.null_resource.foo"
    assert foo.attributes["module_address"] == "module.foo"
    assert foo.attributes["changed_paths"] == ["id", "triggers.foo"]
    assert foo.attributes["provider_name"] == "registry.terraform.io/hashicorp/null"
    bar = _events(fixtures_dir, "terraform-json-120_basic.plan.json")[6]
    assert bar.attributes["relevant_paths"] == ["id"]


def test_time_sources(fixtures_dir):
    (checks, _) = _events(fixtures_dir, "terraform-json-has_checks.plan.json")
    assert checks.time == "2023-08-30T10:38:39.000Z"
    assert checks.attributes["time_source"] == "plan"
    (bare,) = _events(fixtures_dir, "show-json-requires-replace.json")
    assert bare.ts_ms == 0 and bare.attributes["time_source"] == "none"
    plan = orjson.loads(_raw(fixtures_dir, "show-json-requires-replace.json"))
    wrapped = {"plan": plan, "time": "2024-05-01T12:00:00Z", "workspace": "prod"}
    (event,) = Normalizer().normalize(orjson.dumps(wrapped), family="terraform")
    assert event.time == "2024-05-01T12:00:00.000Z"
    assert event.attributes["time_source"] == "envelope"
    assert event.attributes["workspace"] == "prod"
    later = {**wrapped, "time": "2024-05-02T12:00:00Z"}
    (other,) = Normalizer().normalize(orjson.dumps(later), family="terraform")
    assert other.id != event.id  # another plan of the same change is another event
    (again,) = Normalizer().normalize(orjson.dumps(wrapped), family="terraform")
    assert again.id == event.id


def test_sensitive_values_are_masked():
    plan = {
        "format_version": "1.2",
        "timestamp": "2024-01-01T00:00:00Z",
        "resource_changes": [
            {
                "address": "aws_db_instance.main",
                "type": "aws_db_instance",
                "name": "main",
                "change": {
                    "actions": ["update"],
                    "before": {"admin_note": "old-s3cr3t-value", "tags": {"a": "1", "b": "x"}},
                    "after": {"admin_note": "new-s3cr3t-value", "tags": {"a": "1", "b": "y"}},
                    "before_sensitive": {"admin_note": True, "tags": {"b": True}},
                    "after_sensitive": {"admin_note": True, "tags": {"b": True}},
                    "after_unknown": {},
                },
            }
        ],
    }
    (event,) = Normalizer().normalize(orjson.dumps(plan), family="terraform")
    assert event.attributes["after"] == {"admin_note": "****", "tags": {"a": "1", "b": "****"}}
    assert event.attributes["before"] == {"admin_note": "****", "tags": {"a": "1", "b": "****"}}
    assert event.attributes["changed_paths"] == ["admin_note", "tags.b"]
    assert "s3cr3t" not in orjson.dumps(event.to_dict()).decode()


def _plan(changes):
    return {"format_version": "1.0", "resource_changes": changes}


_CHANGE = {"address": "a.b", "change": {"actions": ["create"], "before": None, "after": {}}}


@pytest.mark.parametrize(
    ("doc", "code"),
    [
        ({"format_version": "1.0", "resource_changes": {}}, ErrorCode.WRONG_TYPE),
        (_plan([1]), ErrorCode.WRONG_TYPE),
        (_plan([{"change": _CHANGE["change"]}]), ErrorCode.MISSING_FIELD),
        (_plan([{"address": "a.b"}]), ErrorCode.MISSING_FIELD),
        (_plan([{"address": "a.b", "change": {"actions": []}}]), ErrorCode.INVALID_VALUE),
        (_plan([{"address": "a.b", "change": {"actions": "create"}}]), ErrorCode.WRONG_TYPE),
        ({**_plan([_CHANGE]), "timestamp": "soon"}, ErrorCode.INVALID_VALUE),
        ({**_plan([_CHANGE]), "timestamp": 1e300}, ErrorCode.INVALID_VALUE),
        ({"plan": _plan([_CHANGE]), "time": "later"}, ErrorCode.INVALID_VALUE),
        ({"plan": _plan([_CHANGE]), "workspace": 3}, ErrorCode.WRONG_TYPE),
        ({"plan": 1}, ErrorCode.UNKNOWN_FORMAT),
        ({"format_version": "1.0", "values": {}}, ErrorCode.UNKNOWN_FORMAT),  # state, not a plan
    ],
)
def test_bad_plans_fail_with_a_code(doc, code):
    with pytest.raises(NormalizeError) as info:
        Normalizer().normalize(orjson.dumps(doc), family="terraform")
    assert info.value.code == code


def test_plan_without_resource_changes_gives_no_events():
    plan = {"format_version": "1.2", "planned_values": {}, "timestamp": "2024-01-01T00:00:00Z"}
    assert Normalizer().normalize(orjson.dumps(plan), family="terraform") == []
