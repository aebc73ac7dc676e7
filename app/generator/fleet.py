"""The estate the generator's telemetry comes from: hosts, services, their images, stacks,
pods and people, the AWS account, and the fixed identifiers derived from them with hashlib
(the same in every process, so a seed always gives the same bytes)."""

from __future__ import annotations

import functools
import hashlib
import random

from app.generator.scenarios import SCENARIOS, with_alerts, with_falco, with_incidents

HOSTS = ("node-a", "node-b", "node-c", "node-d")
SERVICES = ("payments", "checkout", "search", "auth")
IMAGES = {service: f"registry.example.com/{service}" for service in SERVICES}
STACKS = {"payments": "java", "checkout": "go", "search": "python", "auth": "node"}
#: payments and checkout build on GitHub Actions, search and auth on GitLab CI.
GITHUB_SERVICES = ("payments", "checkout")
NAMESPACE = "prod"
DEVELOPERS = ("alice", "bob", "carol", "dave", "erin")
ACCOUNT = "493817265094"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role"

#: The services whose scenario lets Falco rules fire, raises alerts, spikes (incidents), or
#: has people exec into its pods (a medium compliance violation each time).
FALCO_SERVICES = with_falco(SERVICES)
ALERTING = with_alerts(SERVICES)
INCIDENT_SERVICES = with_incidents(SERVICES)
EXEC_SERVICES = tuple(s for s in SERVICES if SCENARIOS[s].pod_exec)


@functools.lru_cache(maxsize=1024)
def hex_id(*parts: str, size: int = 20) -> str:
    """A fixed hex identifier derived from `parts` (`size` bytes)."""
    return hashlib.blake2b("/".join(parts).encode(), digest_size=size).hexdigest()


def number_id(*parts: str, modulo: int = 10**9) -> int:
    """A fixed number derived from `parts`, below `modulo`."""
    return int(hex_id(*parts, size=8), 16) % modulo


def uuid_text(hex32: str) -> str:
    """A version-4 UUID's text made of 32 hex digits."""
    h = hex32
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-{h[20:32]}"


def _pod(service: str, index: int) -> dict[str, str]:
    rs = hex_id(service, "rs", size=5)[:10]
    suffix = hex_id(service, str(index), size=3)[:5]
    return {
        "name": f"{service}-{rs}-{suffix}",
        "id": uuid_text(hex_id(service, str(index), "uid", size=16)),
        "docker_id": hex_id(service, str(index), "container", size=32),
        "host": HOSTS[(index + SERVICES.index(service)) % len(HOSTS)],
        "ip": f"10.42.{SERVICES.index(service) + 1}.{10 + index}",
        "hash": rs,
    }


#: The three pods of each service's Deployment.
PODS = {service: [_pod(service, i) for i in range(3)] for service in SERVICES}
SECURITY_GROUPS = {s: "sg-0" + hex_id("sg", s, size=8)[:16] for s in SERVICES}


def new_pod_name(service: str, rnd: random.Random) -> str:
    """The name of a pod the service's ReplicaSet creates now."""
    return f"{PODS[service][0]['name'][:-5]}{rnd.getrandbits(20):05x}"
