"""What the builders of every source family share: the stream's random draws, its clock, and
the image each service runs in production.

Deterministic: every choice comes from the one `random.Random` of the stream, fixed
identifiers from hashlib (app/generator/fleet.py), times from the `ts_ms` passed in. State is
kept in lists and dicts only (never sets of strings, whose order changes between processes).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from app.generator.clock import Clock
from app.generator.fleet import SERVICES, uuid_text


class Releases:
    """The image tag each service runs in production; a successful deployment bumps the patch."""

    def __init__(self) -> None:
        self._patch = {service: 2 for service in SERVICES}
        self.versions = {service: "1.4.2" for service in SERVICES}

    def version(self, service: str) -> str:
        """The image tag of `service` running in production."""
        return self.versions[service]

    def deploy(self, service: str) -> None:
        """A deployment of `service` succeeded: its next patch runs."""
        self._patch[service] += 1
        self.versions[service] = f"1.4.{self._patch[service]}"


@dataclass(eq=False)
class Source:
    """A source family's builder: one raw record (bytes) per call, in the tool's own format.
    Subclasses declare the state they keep as fields (`init=False`)."""

    rnd: random.Random
    clock: Clock = field(default_factory=Clock)
    releases: Releases = field(default_factory=Releases)

    def uuid(self) -> str:
        """A random UUID (a request, report or audit id)."""
        return uuid_text(f"{self.rnd.getrandbits(128):032x}")

    def sha(self) -> str:
        """A random git commit id."""
        return f"{self.rnd.getrandbits(160):040x}"
