"""Building the dataflow does no I/O: every shipped pipeline's flow builds
with no broker reachable, and no client of any broker is even created.

Each stage is one composite step of the Bytewax graph (its own step id
scope), whose named outputs the wiring connects to sinks.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from config import load_pipeline
from dataflows.iot import compile_plans
from dataflows.wiring import build_flow
from runtime.settings import RunOptions

REPO = Path(__file__).resolve().parents[2]
SHIPPED = sorted(
    p for p in [*REPO.glob("config/*.yaml"), *REPO.glob("k8s/**/*.yaml")]
    if "kind: Processor" in p.read_text()
)


@pytest.fixture
def no_connections(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every way the package reaches a broker, made to fail loudly and record the attempt."""
    attempts: list[str] = []

    def refuse(what: str):
        def fail(*args, **kwargs):
            attempts.append(what)
            raise AssertionError(f"{what} while the flow is built")

        return fail

    import confluent_kafka
    import confluent_kafka.admin
    import grpc
    import pika

    for module, name in [(confluent_kafka, "Consumer"), (confluent_kafka, "Producer"), (confluent_kafka.admin, "AdminClient"),
                         (pika, "BlockingConnection"), (grpc, "insecure_channel"), (grpc, "secure_channel"),
                         (grpc.aio, "insecure_channel"), (grpc.aio, "secure_channel")]:
        monkeypatch.setattr(module, name, refuse(f"{module.__name__}.{name}"))
    for module_name in ("connectors.kafka_admin", "connectors.kafka_readers", "connectors.kafka_source",
                        "connectors.kafka_sink", "connectors.late_fetch"):
        module = __import__(module_name, fromlist=["_"])
        for name in ("Consumer", "Producer", "AdminClient"):
            if hasattr(module, name):
                monkeypatch.setattr(module, name, refuse(f"{module_name}.{name}"))
    monkeypatch.setattr(socket.socket, "connect", refuse("socket.connect"))
    monkeypatch.setattr(socket.socket, "connect_ex", refuse("socket.connect_ex"))
    monkeypatch.setattr(socket, "create_connection", refuse("socket.create_connection"))
    return attempts


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_shipped_pipelines_are_found() -> None:
    names = {p.name for p in SHIPPED}
    assert {"iot-monitoring.yaml", "streaming-pipeline.yaml"} <= names


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: str(p.relative_to(REPO)))
def test_every_shipped_pipeline_builds_without_any_connection(path: Path, no_connections: list[str]) -> None:
    port = closed_port()
    env = {"KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{port}", "RABBITMQ_URL": f"amqp://guest:guest@127.0.0.1:{port}/%2F"}
    pipeline = load_pipeline(path, env=env)
    options = RunOptions.from_env({})
    flow = build_flow(pipeline, compile_plans(pipeline, options), options)
    assert no_connections == []
    kinds = {step.step_id.split(".", 1)[1]: type(step).__name__ for step in flow.substeps}
    for processor in pipeline.query_processors:
        assert kinds[processor.name] == "query"
    assert sum(kind == "udf_processor" for kind in kinds.values()) == sum(
        len(u.inputs) * len(u.outputs) for u in pipeline.udf_processors)


def test_the_guard_notices_a_connection(no_connections: list[str]) -> None:
    """The fixture itself: creating a client is caught (so the test above can fail)."""
    from connectors.kafka_admin import wait_for_kafka

    with pytest.raises(AssertionError):
        wait_for_kafka(f"127.0.0.1:{closed_port()}", 0.1)
    assert no_connections
