"""Write docker/requirements.lock: Vigil's runtime dependencies, pinned to the versions the
development environment (`.venv`, where the tests ran) has installed.

    .venv/bin/python docker/lock.py           # rewrite docker/requirements.lock
    .venv/bin/python docker/lock.py --check   # exit 1 when the lock differs from .venv

The lock holds the closure of `vigil`'s own requirements (pyproject `dependencies`, without the
`dev` extra and without Vigil itself), with environment markers evaluated for CPython 3.11 on
Linux, the image's interpreter. `pip freeze` would also list the dev tools and their
dependencies; this walks the installed metadata instead.
"""

from __future__ import annotations

import sys
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

LOCK = Path(__file__).resolve().parent / "requirements.lock"
PROJECT = "vigil"
HEADER = """\
# Vigil's runtime dependencies, pinned: what the Docker image installs (docker/Dockerfile).
# Generated from the development environment by `.venv/bin/python docker/lock.py`; do not edit.
# The closure of pyproject.toml's `dependencies` (no dev tools, not Vigil itself), with markers
# evaluated for CPython 3.11 on Linux. tests/unit/test_deploy.py fails when it is out of date.
"""


def _environment() -> dict[str, str]:
    env = dict(default_environment())
    env.update(
        python_version="3.11",
        platform_system="Linux",
        sys_platform="linux",
        os_name="posix",
        implementation_name="cpython",
        platform_python_implementation="CPython",
        extra="",
    )
    return env


def runtime_pins(project: str = PROJECT) -> dict[str, str]:
    """Canonical name -> installed version of every runtime dependency of `project`."""
    env = _environment()
    pins: dict[str, str] = {}
    todo = [Requirement(r) for r in distribution(project).requires or []]
    while todo:
        req = todo.pop()
        if req.marker is not None and not req.marker.evaluate(env):
            continue  # dev extra, or not for Linux / Python 3.11
        name = canonicalize_name(req.name)
        if name in pins or name == canonicalize_name(project):
            continue
        try:
            dist = distribution(req.name)
        except PackageNotFoundError:
            raise SystemExit(f"{req.name} (needed by {project}) is not installed") from None
        pins[name] = dist.version
        todo.extend(Requirement(r) for r in dist.requires or [])
    return dict(sorted(pins.items()))


def render(pins: dict[str, str]) -> str:
    """The lock file's text."""
    return HEADER + "".join(f"{name}=={version}\n" for name, version in pins.items())


def read_lock(path: Path = LOCK) -> dict[str, str]:
    """Canonical name -> version of each `name==version` line of a lock file."""
    pins: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            pins[canonicalize_name(name)] = version.strip()
    return pins


def main(argv: list[str]) -> int:
    text = render(runtime_pins())
    if "--check" in argv:
        if LOCK.read_text() != text:
            print(f"{LOCK} is out of date: run .venv/bin/python docker/lock.py", file=sys.stderr)
            return 1
        return 0
    LOCK.write_text(text)
    print(f"wrote {LOCK}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
