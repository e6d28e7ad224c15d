"""Nothing the package writes shows a secret.

One pipeline carries known secrets in every place they can come from: the
Kafka SCRAM password in a Secret document of the YAML (the Streams' binding),
the RabbitMQ password in a file (`RABBITMQ_PASSWORD_FILE`), the schema
registry's password in the input Stream's options; the brokers are the
secured local stack's (SASL_SSL, AMQPS) and the registry a real HTTP server
that requires basic auth. The pipeline goes through `validate`, through a
start with a wrong Kafka password and one with a wrong RabbitMQ password, a
run (results, dead letters, alerts, metrics) and a crash (the registry
refuses the credentials while the dataflow runs). Every byte written —
standard output and error, the UDF's log, the output topics' records and
headers, the RabbitMQ messages, the metrics endpoint's text — is searched for
every form of every secret."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from urllib.parse import quote

import orjson
import pytest

from config import load_pipeline
from config.pipeline import TlsSettings
from tests.integration.udf_servers import free_port, python_script_udf, running
from tests.support.amqp import bound_queue, drain
from tests.support.kafka_io import produce, read_all
from tests.support.pipeline import REPO, run_dataflow, scrape, seed_pipeline, start_dataflow
from tests.support.registry import RegistryState, running_registry

pytestmark = pytest.mark.broker

REGISTRY_USER, REGISTRY_PASSWORD = "reader", "Reg1stry-secret-value"
WRONG_KAFKA, WRONG_RABBITMQ = "wrong-kafka-secret-5d1", "wrong-rabbit-secret-8e2"
EVENTS, START_MS = 600, 1_700_000_098_000  # two seconds before a minute ends: two windows

# A UDF with a bug that puts a credential of its own into its error (for one
# error code; the others are upper-cased): the UDF's log, its gRPC status and
# the dead letter it becomes must not show it.
LEAKY_UDF = """
import os
from runtime.logs import configure_logging
configure_logging()
def fn(payload, headers):
    if b"C001" in payload:
        raise RuntimeError("cannot call the alerting API with token " + os.environ["UDF_API_TOKEN"])
    return payload.upper(), headers
"""

# A bug in a step whose exception carries a stream's whole client configuration.
CRASHING_FLOW = """
import bytewax.operators as op
from bytewax.dataflow import Dataflow
from bytewax.testing import TestingSource
from config import load_pipeline
from runtime.logs import configure_logging
from runtime.settings import environment, pipeline_path

configure_logging()
stream = load_pipeline(pipeline_path(), environment()).stream("iot-monitoring-stream")

def use(item):
    raise RuntimeError(f"no client for {stream.servers} with {dict(stream.kafka_properties)} ({item})")

flow = Dataflow("crash")
op.inspect("use", op.map("map", op.input("in", flow, TestingSource([1])), use))
"""


def forms(secret: str) -> set[str]:
    return {secret, quote(secret, safe=""), json.dumps(secret)[1:-1]}


class Secrets:
    def __init__(self, secure_stack) -> None:
        cfg = secure_stack.cfg
        self.kafka = secure_stack.kafka("scram")
        self.rabbitmq = cfg.secure.passwords().rabbitmq
        self.ca = str(cfg.secure.tls.ca)
        self.rabbitmq_port = cfg.rabbitmq_tls_port
        self.values = [self.kafka["sasl.password"], self.rabbitmq, REGISTRY_PASSWORD, WRONG_KAFKA, WRONG_RABBITMQ]

    def assert_absent(self, text: str | bytes, where: str) -> None:
        if isinstance(text, bytes):
            text = text.decode("utf-8", errors="replace")
        for secret in self.values:
            for form in forms(secret):
                assert form not in text, f"{where} shows a secret ({secret[:3]}...)"


@pytest.fixture(scope="module")
def secrets(secure_stack) -> Secrets:
    return Secrets(secure_stack)


def pipeline_with_secrets(tmp_path: Path, secrets: Secrets, source: str, sink: str, exchange: str, registry: str,
                          kafka_password: str) -> Path:
    path = seed_pipeline(tmp_path, source, sink, exchange)
    text = path.read_text().replace('  protocol: "kafka"\n', '  protocol: "kafka"\n  binding: kafka-credentials\n')
    options = "    options:\n"
    assert text.count(options) >= 1
    text = text.replace(options, options + f'      ddl.value.avro-confluent.basic-auth.user-info: "{REGISTRY_USER}:{REGISTRY_PASSWORD}"\n', 1)
    text = text.replace("  dataSchemaContext:\n", f'  dataSchemaContext:\n    schemaRegistryUri: "{registry}"\n', 1)
    text += "\n---\n" + "\n".join([
        "apiVersion: v1", "kind: Secret", "metadata: {name: kafka-credentials}", "type: servicebinding.io/kafka",
        "stringData:", "  type: kafka", "  security.protocol: SASL_SSL", "  sasl.mechanism: SCRAM-SHA-512",
        f"  username: {secrets.kafka['sasl.username']}", f'  password: "{kafka_password}"', "",
    ])
    path.write_text(text)
    return path


def environment(tmp_path: Path, secrets: Secrets, rabbitmq_password: str) -> dict[str, str]:
    password_file = tmp_path / "rabbitmq-password"
    password_file.write_text(rabbitmq_password + "\n")
    return {
        "KAFKA_BOOTSTRAP_SERVERS": secrets.kafka["bootstrap.servers"], "KAFKA_SSL_CA_LOCATION": secrets.ca,
        "RABBITMQ_URL": f"amqps://iot@127.0.0.1:{secrets.rabbitmq_port}/%2F", "RABBITMQ_PASSWORD_FILE": str(password_file),
        "RABBITMQ_SSL_CA_LOCATION": secrets.ca, "IOT_LOG_FORMAT": "json", "IOT_CONNECT_TIMEOUT": "20",
    }


def registry_state(pipeline: Path, env: dict[str, str], **kwargs) -> RegistryState:
    schema = load_pipeline(pipeline, env=env).stream("iot-monitoring-stream").avro_schema_json
    return RegistryState(REGISTRY_USER, REGISTRY_PASSWORD, {1: schema}, **kwargs)


def validate(pipeline: Path, env: dict[str, str], *args: str):
    import os
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "cli.main", *args, "validate", str(pipeline)], cwd=REPO,
                          env={**os.environ, **env}, capture_output=True, text=True, timeout=60)


def test_validate_and_failed_starts_show_no_secret(tmp_path: Path, secrets: Secrets, new_secure_topic, new_exchange) -> None:
    source, sink, exchange = new_secure_topic(), new_secure_topic(), new_exchange()
    registry = "http://127.0.0.1:1"  # not asked by validate
    good = pipeline_with_secrets(tmp_path, secrets, source, sink, exchange, registry, secrets.kafka["sasl.password"])
    env = environment(tmp_path, secrets, secrets.rabbitmq)

    for args in ((), ("--log-format", "json")):
        shown = validate(good, env, *args)
        assert shown.returncode == 0, shown.stderr
        assert "credentials  from binding kafka-credentials (Secret document kafka-credentials)" in shown.stdout
        assert "kafka        sasl.password=***" in shown.stdout and "registry     basic.auth.user.info=***" in shown.stdout
        assert f"amqps://iot:***@127.0.0.1:{secrets.rabbitmq_port}/%2F" in shown.stdout
        secrets.assert_absent(shown.stdout + shown.stderr, f"validate {args}")
    broken = tmp_path / "broken.yaml"  # every problem printed, still no secret
    broken.write_text(good.read_text().replace("sasl.mechanism: SCRAM-SHA-512", "sasl.mechanism: SCRAM-SHA-1024"))
    shown = validate(broken, env)
    assert shown.returncode == 2 and "unknown SASL mechanism 'SCRAM-SHA-1024'" in shown.stderr
    secrets.assert_absent(shown.stdout + shown.stderr, "validate of a broken file")

    (tmp_path / "k").mkdir()
    wrong_kafka = pipeline_with_secrets(tmp_path / "k", secrets, source, sink, exchange, registry, WRONG_KAFKA)
    result = run_dataflow(wrong_kafka, env["KAFKA_BOOTSTRAP_SERVERS"], processors="all", env=env, timeout=90)
    assert result.returncode == 2 and "authentication failed" in result.stderr, result.stderr[-2000:]
    secrets.assert_absent(result.stdout + result.stderr, "a start with a wrong Kafka password")

    (tmp_path / "r").mkdir()
    wrong_rabbit_env = environment(tmp_path / "r", secrets, WRONG_RABBITMQ)
    with running_registry(registry_state(good, env)) as url:
        wrong_rabbit = pipeline_with_secrets(tmp_path / "r", secrets, source, sink, exchange, url, secrets.kafka["sasl.password"])
        result = run_dataflow(wrong_rabbit, env["KAFKA_BOOTSTRAP_SERVERS"], processors="all", env=wrong_rabbit_env, timeout=90)
    assert result.returncode == 2 and "refused the credentials" in result.stderr, result.stderr[-2000:]
    secrets.assert_absent(result.stdout + result.stderr, "a start with a wrong RabbitMQ password")


def test_a_run_and_a_crash_show_no_secret(tmp_path: Path, secrets: Secrets, new_secure_topic, new_exchange, monkeypatch) -> None:
    from cli.main import main

    source, sink, exchange = new_secure_topic(partitions=2), new_secure_topic(), new_exchange()
    env = environment(tmp_path, secrets, secrets.rabbitmq)
    bootstrap = env["KAFKA_BOOTSTRAP_SERVERS"]
    tls = TlsSettings(ca_file=secrets.ca)
    rabbit_url = f"amqps://iot:{quote(secrets.rabbitmq, safe='')}@127.0.0.1:{secrets.rabbitmq_port}/%2F"
    connection, channel, queue = bound_queue(rabbit_url, exchange, tls)

    first = pipeline_with_secrets(tmp_path, secrets, source, sink, exchange, "http://127.0.0.1:1", secrets.kafka["sasl.password"])
    state = registry_state(first, env)
    udf_port, api_port = free_port(), free_port()
    for name, value in {**env, "UDF_API_TOKEN": secrets.rabbitmq}.items():
        monkeypatch.setenv(name, value)
    with running_registry(state) as registry, running(python_script_udf(LEAKY_UDF, udf_port), udf_port, tmp_path / "udf.log"):
        pipeline = pipeline_with_secrets(tmp_path, secrets, source, sink, exchange, registry, secrets.kafka["sasl.password"])
        assert main(["generate", "--config", str(pipeline), "--bootstrap", bootstrap, "--count", str(EVENTS), "--rate", "0",
                     "--seed", "5", "--start-ms", str(START_MS), "--no-progress"]) == 0
        produce(bootstrap, source, [b"\x00\x00\x00\x00\x01 not avro"], partition=0, config=secrets.kafka)  # a dead letter
        proc = start_dataflow(pipeline, bootstrap, processors="all", env={
            **env, "IOT_UDF_ADDRESS": f"127.0.0.1:{udf_port}", "BYTEWAX_DATAFLOW_API_ENABLED": "true",
            "BYTEWAX_DATAFLOW_API_PORT": str(api_port), "BYTEWAX_DATAFLOW_API_CACHE_PATH": str(tmp_path)})
        try:
            results = read_all(bootstrap, sink, timeout_s=90, expect=2, config=secrets.kafka)
            metrics = scrape(f"http://127.0.0.1:{api_port}/metrics", timeout_s=30)
        finally:
            proc.send_signal(signal.SIGINT)
            output, _ = proc.communicate(timeout=60)
    assert results, output[-3000:]
    assert 'iot_records_in_total{processor="iot-monitoring-processor"}' in metrics
    dead = read_all(bootstrap, source + "-dlq", expect=1, config=secrets.kafka)
    assert dead and dict(dead[0][2]).get("x-dlq-reason")
    udf_dead = read_all(bootstrap, sink + "-dlq", expect=1, config=secrets.kafka)
    details = [dict(h)["x-udf-status-details"] for _k, _v, h, _p, _o in udf_dead]
    masked = bool(details) and all(d.startswith(b"RuntimeError: cannot call the alerting API with token ***") for d in details)
    assert masked, "the UDF's error is not in the dead letter's headers with its token masked"  # no value shown on failure
    assert "token ***" in (tmp_path / "udf.log").read_text(), "the UDF's log does not show its error with the token masked"
    alerts = [body + json.dumps(properties.headers or {}).encode() for _m, properties, body in drain(channel, queue, 5)]
    connection.close()
    assert alerts, output[-3000:]

    written = [("the dataflow's output", output), ("the UDF's log", (tmp_path / "udf.log").read_text()),
               ("the metrics endpoint", metrics), ("the RabbitMQ messages", b"".join(alerts))]
    for topic, records in ((sink, results), (source + "-dlq", dead), (sink + "-dlq", udf_dead)):
        for key, value, headers, _p, _o in records:
            written.append((f"a record of {topic}", (key or b"") + (value or b"") + orjson.dumps([[k, v.decode()] for k, v in headers])))
    for where, text in written:
        secrets.assert_absent(text, where)

    # The crash: the registry refuses the credentials once the dataflow runs
    # (as when they are rotated): one line, exit 2, no secret.
    (tmp_path / "crash").mkdir()
    revoked = registry_state(first, env, revoke_after_probe=True)
    with running_registry(revoked) as registry:
        crashing = pipeline_with_secrets(tmp_path / "crash", secrets, source, sink, exchange, registry,
                                         secrets.kafka["sasl.password"])
        result = run_dataflow(crashing, bootstrap, processors="sql", env=env, timeout=120)
    assert result.returncode == 2, result.stderr[-3000:]
    [line] = [l for l in result.stderr.splitlines() if l.startswith("iot-monitoring:")]
    assert line == f"iot-monitoring: schema registry at {registry} refused the credentials (401 Unauthorized): " \
                   "check basic-auth.user-info (value.avro-confluent.basic-auth.user-info, or SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO)"
    assert "Traceback" not in result.stderr
    secrets.assert_absent(result.stdout + result.stderr, "the crash")


def test_a_crash_with_the_config_in_its_message_shows_no_secret(tmp_path: Path, secrets: Secrets) -> None:
    import os
    import subprocess
    import sys

    (tmp_path / "crash_flow.py").write_text(CRASHING_FLOW)
    pipeline = pipeline_with_secrets(tmp_path, secrets, "t", "u", "x", "http://127.0.0.1:1", secrets.kafka["sasl.password"])
    env = {**os.environ, **environment(tmp_path, secrets, secrets.rabbitmq), "IOT_PIPELINE": str(pipeline),
           "IOT_LOG_FORMAT": "text", "PYTHONPATH": f"{tmp_path}{os.pathsep}{REPO}"}
    result = subprocess.run([sys.executable, "-m", "bytewax.run", "crash_flow"], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "RuntimeError: no client for 127.0.0.1:9093 with {" in result.stderr, "no traceback"
    assert "'sasl.password': '***'" in result.stderr, "the traceback's client settings are not masked"
    secrets.assert_absent(result.stdout + result.stderr, "the crash's traceback")
