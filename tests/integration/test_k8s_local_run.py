"""The StatefulSet's wiring, run as plain local processes against the real stack.

The dataflow container's command, args and env are taken from the rendered
base StatefulSet and run here with `python` (no Docker, no cluster): a host
file of one entry written the way the init container writes it, the pod name
`iot-monitoring-0`, a recovery directory made by the image's init script, and
`IOT_BOUNDED=1` so the run ends. The UDF sidecar's command runs beside it and
the generator Deployment's command produces the input. Only what a cluster
would supply differently is replaced: paths, ports and the broker addresses.

Expected counts come from reading the produced records back from Kafka and
decoding them here with fastavro, not from the project's own decoder.
"""

from __future__ import annotations

import collections
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.kustomize_render import K8S, REPO, STATEFULSET, config_map_data, container, find, literal_env, render
from tests.support.kafka_io import read_all
from tests.support.ports import free_port

pytestmark = pytest.mark.broker

EVENTS = 150
RUN_TIMEOUT_S = 180
POD_NAME = f"{STATEFULSET}-0"


def _local(command: list[str]) -> list[str]:
    """The container's command, with the console script run from this interpreter."""
    if command[0] == "iot-monitoring":
        return [sys.executable, "-m", "cli.main", *command[1:]]
    if command[0] == "python":
        return [sys.executable, *command[1:]]
    return command


def _pipeline_with_topics(text: str, names: dict[str, str]) -> str:
    """The mounted pipeline with each Stream's topic/exchange renamed (fresh per test)."""
    docs = [d for d in yaml.safe_load_all(text) if d]
    for doc in docs:
        if doc["kind"] == "Stream" and doc["metadata"]["name"] in names:
            doc["spec"]["name"] = names[doc["metadata"]["name"]]
    return yaml.safe_dump_all(docs, sort_keys=False)


def _avro_schema(text: str, stream: str) -> dict[str, Any]:
    """The input Stream's record schema, written from its fields here."""
    doc = next(d for d in yaml.safe_load_all(text) if d and d["metadata"]["name"] == stream)
    fields = []
    for f in doc["spec"]["dataSchemaContext"]["schema"]["fields"]:
        avro_type: Any = "string" if f["type"] == "string" else {"type": "long", "logicalType": "timestamp-millis"}
        fields.append({"name": f["name"], "type": avro_type})
    return {"type": "record", "name": "MonitoringStream", "fields": fields}


def _values(bootstrap: str, topic: str) -> list[bytes]:
    return [value for _key, value, *_ in read_all(bootstrap, topic)]


def _decode(value: bytes, schema: dict[str, Any]) -> dict[str, Any]:
    import io

    import fastavro

    body = value[5:] if value[:1] == b"\x00" and len(value) > 5 else value  # Confluent framing
    return fastavro.schemaless_reader(io.BytesIO(body), fastavro.parse_schema(schema))


def test_statefulset_command_and_env_produce_results_locally(
    kafka_bootstrap: str, rabbitmq_url: str, new_topic, new_exchange, tmp_path: Path
) -> None:
    if not (REPO / "dataflows" / "iot.py").exists():
        pytest.fail("dataflows/iot.py does not exist: nothing to run")
    objects = render("base")
    sts = find(objects, "StatefulSet", STATEFULSET)
    pod = sts["spec"]["template"]["spec"]
    dataflow = container(pod, "dataflow")
    udf = container(pod, "udf")
    generator = container(find(objects, "Deployment", "iot-monitoring-generator")["spec"]["template"]["spec"], "generator")
    brokers = config_map_data(objects, "iot-monitoring-brokers")
    assert set(brokers) == {"KAFKA_BOOTSTRAP_SERVERS", "RABBITMQ_URL"}
    local_brokers = {"KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap, "RABBITMQ_URL": rabbitmq_url}

    # The pipeline ConfigMap, pointed at fresh topics and a fresh exchange.
    mounted = config_map_data(objects, "iot-monitoring-pipeline")["pipeline.yaml"]
    source, counts, exchange = new_topic(partitions=2), new_topic(partitions=1), new_exchange()
    pipeline = tmp_path / "pipeline.yaml"
    pipeline.write_text(
        _pipeline_with_topics(
            mounted,
            {"iot-monitoring-stream": source, "error-count-stream": counts, "udf-output-error-count-stream": exchange},
        )
    )
    base_env = {"PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}", "PYTHONUNBUFFERED": "1"}

    # Input: the generator Deployment's command, bounded; event times within one minute.
    minute = 60_000
    start_ms = (int(time.time() * 1000) // minute - 5) * minute + 1_000
    command = _local(generator["command"])
    command[command.index("--config") + 1] = str(pipeline)
    command += ["--count", str(EVENTS), "--rate", "1000", "--seed", "11", "--start-ms", str(start_ms)]
    produced = subprocess.run(
        command, env={**base_env, **literal_env(generator), **local_brokers}, cwd=REPO,
        capture_output=True, text=True, timeout=120,
    )
    assert produced.returncode == 0, produced.stderr

    schema = _avro_schema(mounted, "iot-monitoring-stream")
    records = [_decode(v, schema) for v in _values(kafka_bootstrap, source)]
    assert len(records) == EVENTS
    expected = collections.Counter(r["error_code"] for r in records if r["type"] == "ERROR")
    assert expected, "the generator produced no ERROR events to count"

    # The UDF sidecar's command, on a free port (55554 may be taken on this machine).
    udf_port = free_port()
    udf_command = _local(udf["command"])
    udf_command[udf_command.index("--port") + 1] = str(udf_port)
    udf_process = subprocess.Popen(
        udf_command, env={**base_env, **literal_env(udf), "ALERT_THRESHOLD": "1"}, cwd=REPO,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )

    # What the init containers would have made: a one-entry host file and this pod's partition.
    hostfile = tmp_path / "hostfile.txt"
    hostfile.write_text(f"127.0.0.1:{free_port()}\n")
    recovery = tmp_path / "recovery"
    recovery.mkdir()
    init = container(pod, "init-recovery", init=True)
    init_env = {**literal_env(init), "BYTEWAX_RECOVERY_DIRECTORY": str(recovery), "BYTEWAX_POD_NAME": POD_NAME,
                # one process here, so one partition: the smallest process count this run uses
                "BYTEWAX_RECOVERY_PARTS": "1"}
    init_command = [str(K8S / "image" / Path(a).name) if a.startswith("/app/") else a for a in init["command"]]
    subprocess.run(init_command, env={**base_env, **init_env}, check=True, capture_output=True)
    assert [p.name for p in recovery.iterdir()] == ["part-0.sqlite3"]

    env = {
        **base_env,
        **literal_env(dataflow),
        **local_brokers,
        "BYTEWAX_POD_NAME": POD_NAME,  # the fieldRef
        "BYTEWAX_HOSTFILE_PATH": str(hostfile),
        "BYTEWAX_DATAFLOW_API_PORT": str(free_port()),
        "IOT_PIPELINE": str(pipeline),
        "IOT_UDF_ADDRESS": f"127.0.0.1:{udf_port}",
        "IOT_BOUNDED": "1",
    }
    args = list(dataflow["args"])
    args[args.index("-r") + 1] = str(recovery)
    try:
        run = subprocess.run(
            _local(dataflow["command"]) + args, env=env, cwd=REPO, capture_output=True, text=True,
            timeout=RUN_TIMEOUT_S,
        )
    finally:
        udf_process.terminate()
        udf_process.wait(timeout=30)
    assert run.returncode == 0, run.stderr[-4000:]

    results = [json.loads(v) for v in _values(kafka_bootstrap, counts)]
    got = {r["error_code"]: r["error_count"] for r in results}
    assert len(got) == len(results), f"a code was counted twice in one window: {results}"
    assert got == dict(expected)
    assert len({r["window_start"] for r in results}) == 1

    # The RabbitMQ sink reached the broker the env names: its exchange exists.
    import pika

    connection = pika.BlockingConnection(pika.URLParameters(rabbitmq_url))
    try:
        connection.channel().exchange_declare(exchange, passive=True)
    finally:
        connection.close()
