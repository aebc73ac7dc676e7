"""An image reference's repository: tag, digest and port handled, known tags preferred."""

from __future__ import annotations

import pytest

from app.model.images import image_repository


@pytest.mark.parametrize(
    ("reference", "known", "repository"),
    [
        ("alpine:3.20", (), "alpine"),
        ("registry.local:5000/team/api:1.4", (), "registry.local:5000/team/api"),
        ("ghcr.io/o/app@sha256:" + "0" * 64, (), "ghcr.io/o/app"),
        ("images/app.tar", ("ghcr.io/o/app:1",), "ghcr.io/o/app"),
        ("ghcr.io/o/app:2", ("docker.io/o/app:2", "ghcr.io/o/app:2"), "ghcr.io/o/app"),
    ],
)
def test_image_repository(reference, known, repository):
    assert image_repository(reference, known) == repository
