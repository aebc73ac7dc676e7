"""Alertmanager label-set fingerprints equal prometheus/common's."""

from __future__ import annotations

import pytest

from app.model.fingerprints import alertmanager_fingerprint


# prometheus/common model/signature_test.go (TestMetricToFingerprint, TestLabelsToSignature and
# the BenchmarkMetricToFingerprint* cases) pins these label sets to these fingerprints; model.
# LabelSet.Fingerprint is what Alertmanager uses for an alert's identity.
@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        ({}, 14695981039346656037),
        ({"name": "garland, briggs", "fear": "love is not enough"}, 5799056148416392346),
        ({"first-label": "first-label-value"}, 5146282821936882169),
        (
            {"first-label": "first-label-value", "second-label": "second-label-value"},
            3195800080984914717,
        ),
        (
            {
                "first-label": "first-label-value",
                "second-label": "second-label-value",
                "third-label": "third-label-value",
            },
            13843036195897128121,
        ),
    ],
)
def test_fingerprint_matches_prometheus_common(labels, expected):
    fingerprint = alertmanager_fingerprint(labels)
    assert fingerprint == f"{expected:016x}"
    assert len(fingerprint) == 16


def test_fingerprint_ignores_label_order_but_not_values():
    a = alertmanager_fingerprint({"a": "1", "b": "2"})
    assert a == alertmanager_fingerprint({"b": "2", "a": "1"})
    assert a != alertmanager_fingerprint({"a": "1", "b": "3"})
    # The 0xFF separator keeps name/value boundaries apart.
    assert alertmanager_fingerprint({"ab": "c"}) != alertmanager_fingerprint({"a": "bc"})
