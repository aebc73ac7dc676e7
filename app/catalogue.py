"""The service catalogue: which service an entity belongs to, how critical and how exposed it is.

A YAML file (see `docs/catalogue.example.yaml`):

    services:
      - name: payments
        criticality: critical        # low | medium | high | critical
        exposure: internet           # internal | internet
        owner: team-payments         # optional, passed through
        entities:                    # exact entity ids or shell-style globs
          - service:payments
          - image:registry.example.com/payments
          - k8s:prod/*/payments-*

A service name (`SERVICE_NAME`) is 1 to 128 letters, digits, `.`, `_` and `-`, starting with
a letter or digit: the syntax `/gate/{service}` accepts too.

`service_for(entity)` returns `{name, criticality, exposure, ...}` for the first service that
lists the entity exactly, else the first (in file order) whose glob matches it, else None.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

CRITICALITIES: tuple[str, ...] = ("low", "medium", "high", "critical")
EXPOSURES: tuple[str, ...] = ("internal", "internet")
_GLOB_CHARS = frozenset("*?[")
#: The syntax of a service name (catalogue entries, `/gate/{service}`).
SERVICE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


@dataclass(slots=True)
class Catalogue:
    """Services and the entities that belong to them."""

    services: list[dict[str, Any]] = field(default_factory=list)
    _exact: dict[str, dict[str, Any]] = field(default_factory=dict, init=False, repr=False)
    _globs: list[tuple[str, dict[str, Any]]] = field(default_factory=list, init=False, repr=False)

    def __post_init__(self) -> None:
        for service in self.services:
            info = {k: v for k, v in service.items() if k != "entities"}
            for pattern in service.get("entities", []):
                if _GLOB_CHARS & set(pattern):
                    self._globs.append((pattern, info))
                else:
                    self._exact.setdefault(pattern, info)

    def names(self) -> frozenset[str]:
        """Every service name in the catalogue."""
        return frozenset(service["name"] for service in self.services)

    def service_for(self, entity: str) -> dict[str, Any] | None:
        """`{name, criticality, exposure, ...}` of the entity's service, or None."""
        found = self._exact.get(entity)
        if found is not None:
            return dict(found)
        for pattern, info in self._globs:
            if fnmatch.fnmatchcase(entity, pattern):
                return dict(info)
        return None

    @classmethod
    def from_dict(cls, data: Any) -> Catalogue:
        """Validate a parsed catalogue document; ValueError with the offending entry."""
        if data is None:
            return cls([])
        if not isinstance(data, dict) or not isinstance(data.get("services", []), list):
            raise ValueError("catalogue: expected a mapping with a 'services' list")
        services = []
        for index, entry in enumerate(data.get("services") or []):
            where = f"catalogue: services[{index}]"
            if not isinstance(entry, dict):
                raise ValueError(f"{where}: must be a mapping")
            name = entry.get("name")
            if not isinstance(name, str) or not SERVICE_NAME.match(name):
                raise ValueError(
                    f"{where}: 'name' must be 1-128 letters, digits, '.', '_' or '-', starting "
                    f"with a letter or digit, got {name!r}"
                )
            criticality = entry.get("criticality", "medium")
            if criticality not in CRITICALITIES:
                raise ValueError(
                    f"{where} ({name}): criticality {criticality!r} is not one of "
                    + ", ".join(CRITICALITIES)
                )
            exposure = entry.get("exposure", "internal")
            if exposure not in EXPOSURES:
                raise ValueError(
                    f"{where} ({name}): exposure {exposure!r} is not one of " + ", ".join(EXPOSURES)
                )
            entities = entry.get("entities") or []
            if not isinstance(entities, list) or not all(isinstance(e, str) for e in entities):
                raise ValueError(f"{where} ({name}): 'entities' must be a list of strings")
            services.append({**entry, "criticality": criticality, "exposure": exposure})
        return cls(services)

    @classmethod
    def load(cls, path: str | Path) -> Catalogue:
        """Read a catalogue YAML file."""
        with open(path, encoding="utf-8") as handle:
            return cls.from_dict(yaml.safe_load(handle))
