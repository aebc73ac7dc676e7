"""Container image references (`registry:5000/team/app:1.2@sha256:...`) and their repository."""

from __future__ import annotations


def image_repository(reference: str, known: list[str] | tuple[str, ...] = ()) -> str:
    """The repository of an image reference, without tag or digest.

    `known` are the image's RepoTags/RepoDigests: when `reference` is not one of their
    repositories (e.g. Trivy scanned a `.tar` file), the first of them names the image.
    """
    repo = _strip_tag(reference)
    known_repos = [_strip_tag(ref) for ref in known if isinstance(ref, str) and ref]
    if known_repos and repo not in known_repos:
        return known_repos[0]
    return repo


def _strip_tag(reference: str) -> str:
    name = reference.split("@", 1)[0]
    head, slash, last = name.rpartition("/")
    return f"{head}{slash}{last.split(':', 1)[0]}"  # a ':' before the last '/' is a port
