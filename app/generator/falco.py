"""Falco alerts (Falco's JSON output): the rules each service's scenario lets fire, and bursts
of alerts on one node (the event-rate anomalies)."""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass, field

import orjson

from app.generator.fleet import FALCO_SERVICES, HOSTS, IMAGES, SERVICES
from app.generator.scenarios import SCENARIOS
from app.generator.source import Source

#: (rule, priority, output template, tags) of common Falco rules.
FALCO_RULES = (
    (
        "Terminal shell in container",
        "Notice",
        "A shell was spawned in a container with an attached terminal (user={user} {container} "
        "shell=bash parent=runc cmdline=bash terminal=34816)",
        ["container", "shell", "mitre_execution"],
    ),
    (
        "Write below etc",
        "Error",
        "File below /etc opened for writing (user={user} command=sed -i s/a/b/ /etc/hosts "
        "file=/etc/hosts {container})",
        ["filesystem", "mitre_persistence"],
    ),
    (
        "Launch Privileged Container",
        "Informational",
        "Privileged container started (user={user} {container})",
        ["container", "cis"],
    ),
    (
        "Read sensitive file untrusted",
        "Warning",
        "Sensitive file opened for reading by non-trusted program (user={user} file=/etc/shadow "
        "{container})",
        ["filesystem", "mitre_credential_access"],
    ),
    (
        "Outbound Connection to C2 Servers",
        "Critical",
        "Outbound connection to C2 server (command=curl http://203.0.113.7/x {container})",
        ["network", "mitre_command_and_control"],
    ),
)
#: How often each rule fires, relative to the others a scenario allows.
FALCO_WEIGHTS = (30, 8, 5, 6, 1)
#: Falco bursts (event-rate anomalies) happen in the noisy service's containers.
BURST_SERVICE = next(s for s in SERVICES if SCENARIOS[s].name == "noisy")


@dataclass(eq=False)
class Falco(Source):
    """Falco alerts, alone or in bursts on one node."""

    _burst_left: int = field(default=0, init=False)
    _burst_host: str = field(default=HOSTS[0], init=False)

    @property
    def bursting(self) -> bool:
        """Whether a burst has alerts left."""
        return self._burst_left > 0

    def start_burst(self, host: str, alerts: int) -> None:
        """The next `alerts` alerts of the burst come from `host`."""
        self._burst_left, self._burst_host = alerts, host

    def alert(self, ts_ms: int, host: str | None = None, service: str | None = None) -> bytes:
        """A Falco alert in a container of `service` (else one whose scenario has Falco rules),
        one of the rules its scenario lets fire."""
        rnd = self.rnd
        host = host or rnd.choice(HOSTS)
        service = service or rnd.choice(FALCO_SERVICES)
        rules = SCENARIOS[service].falco_rules
        index = rnd.choices(rules, [FALCO_WEIGHTS[i] for i in rules])[0]
        rule, priority, template, tags = FALCO_RULES[index]
        container_id = _container_id(host, service)
        tag = self.releases.version(service)
        container = f"container_id={container_id} image={IMAGES[service]}:{tag} k8s.ns=prod"
        user = rnd.choice(("root", "app", "nobody"))
        time = self.clock.millis(ts_ms)
        alert = {
            "hostname": host,
            "output": f"{time}: {priority} " + template.format(user=user, container=container),
            "priority": priority,
            "rule": rule,
            "source": "syscall",
            "tags": tags,
            "time": time.replace("Z", "000000Z"),
            "output_fields": {
                "container.id": container_id,
                "container.image.repository": IMAGES[service],
                "container.image.tag": tag,
                "k8s.ns.name": "prod",
                "k8s.pod.name": f"{service}-{container_id[:5]}",
                "user.name": user,
                "evt.time": ts_ms * 1_000_000,
                "proc.cmdline": "bash",
            },
        }
        return orjson.dumps(alert)

    def burst(self, ts_ms: int) -> bytes:
        """The next alert of a burst on one node, in the containers of a noisy (low-severity)
        service; starts a burst when none is under way."""
        if self._burst_left == 0:
            self._burst_left = self.rnd.randint(40, 120)
            self._burst_host = self.rnd.choice(HOSTS)
        self._burst_left -= 1
        return self.alert(ts_ms, host=self._burst_host, service=BURST_SERVICE)


@functools.lru_cache(maxsize=64)
def _container_id(host: str, service: str) -> str:
    return hashlib.blake2b(f"{host}/{service}".encode(), digest_size=6).hexdigest()
