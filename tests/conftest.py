"""Session fixtures giving tests real brokers.

Order of preference: `KAFKA_BOOTSTRAP_SERVERS` / `RABBITMQ_URL` when set;
else Docker containers through testcontainers when `IOT_TESTCONTAINERS=1`
(for users who have a Docker engine); else the project's local stack
(`iot-monitoring stack up`), started once per session and stopped at the end
only if this session started it. Tests that need no broker never touch these
fixtures, so they never start one.

The secured listeners (`secure_stack`) are the local stack's, started with
`iot-monitoring stack up --secure` (`make test` does); when the session runs
its own local stack it secures it if needed. Against brokers given by the
environment they are used only if the stack of `IOT_STACK_DIR` runs secured,
and the tests that need them are skipped otherwise.
"""

from __future__ import annotations

import logging
import os
import re
import uuid
from dataclasses import dataclass
from typing import Callable, Iterator

import pytest

from cli.local_stack import LocalStack, StackConfig
from config.kafka_security import as_environment
from connectors.kafka_admin import ensure_topics, wait_for_kafka


logging.getLogger("pika").setLevel(logging.CRITICAL)  # it logs every refused connection attempt


def _use_testcontainers() -> bool:
    return os.environ.get("IOT_TESTCONTAINERS", "") in ("1", "true", "yes")


@pytest.fixture(scope="session")
def local_stack() -> Iterator[LocalStack | None]:
    """The local stack when neither env addresses nor testcontainers are used."""
    if (os.environ.get("KAFKA_BOOTSTRAP_SERVERS") and os.environ.get("RABBITMQ_URL")) or _use_testcontainers():
        yield None
        return
    stack = LocalStack()
    was_running = stack.running()
    stack.up()
    yield stack
    if not was_running and os.environ.get("IOT_KEEP_STACK") != "1":
        stack.down()


@pytest.fixture(scope="session")
def kafka_bootstrap(local_stack: LocalStack | None) -> Iterator[str]:
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        yield os.environ["KAFKA_BOOTSTRAP_SERVERS"]
    elif local_stack is not None:
        yield local_stack.cfg.kafka_bootstrap
    else:
        from testcontainers.kafka import KafkaContainer

        with KafkaContainer().with_kraft() as kafka:
            yield kafka.get_bootstrap_server()


@pytest.fixture(scope="session")
def rabbitmq_url(local_stack: LocalStack | None) -> Iterator[str]:
    if os.environ.get("RABBITMQ_URL"):
        yield os.environ["RABBITMQ_URL"]
    elif local_stack is not None:
        yield local_stack.cfg.rabbitmq_url
    else:
        from testcontainers.rabbitmq import RabbitMqContainer

        with RabbitMqContainer() as rabbit:
            params = rabbit.get_connection_params()
            yield f"amqp://guest:guest@{params.host}:{params.port}/%2F"


def _unique(request: pytest.FixtureRequest, prefix: str) -> str:
    test = re.sub(r"[^a-zA-Z0-9]+", "-", request.node.name)[:40].strip("-")
    return f"{prefix}-{test}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def new_topic(kafka_bootstrap: str, request: pytest.FixtureRequest) -> Callable[..., str]:
    """Create a uniquely named topic for this test: `new_topic(partitions=1)`."""
    admin = wait_for_kafka(kafka_bootstrap, timeout_s=60)

    def make(partitions: int = 1, name: str | None = None) -> str:
        topic = name or _unique(request, "t")
        ensure_topics(admin, {topic: partitions})
        return topic

    return make


@pytest.fixture
def new_exchange(rabbitmq_url: str, request: pytest.FixtureRequest) -> Callable[[], str]:
    """A unique exchange name for this test (declared by the code under test)."""
    return lambda: _unique(request, "x")


@dataclass(frozen=True)
class SecureStack:
    """The local stack's secured listeners, for tests."""

    cfg: StackConfig

    def kafka(self, how: str = "scram") -> dict[str, str]:
        """librdkafka settings, bootstrap included: `scram`, `plain` or `mtls`."""
        return self.cfg.kafka_client_settings(how)

    def env(self, how: str = "scram") -> dict[str, str]:
        """The same as the KAFKA_* variables a user would export."""
        return as_environment(self.kafka(how))


@pytest.fixture(scope="session")
def secure_stack(local_stack: LocalStack | None) -> SecureStack:
    if local_stack is not None:
        if not local_stack.secured():
            local_stack.up(secure=True)
        return SecureStack(local_stack.cfg)
    stack = LocalStack()
    if not stack.secured():
        pytest.skip(f"no secured local stack in {stack.cfg.home}: run `iot-monitoring stack up --secure` "
                    "(with IOT_STACK_DIR and the ports of the stack the tests use)")
    return SecureStack(stack.cfg)


@pytest.fixture
def new_secure_topic(secure_stack: SecureStack, request: pytest.FixtureRequest) -> Callable[..., str]:
    """A uniquely named topic, created through the SASL_SSL listener."""
    settings = secure_stack.kafka()
    admin = wait_for_kafka(settings.pop("bootstrap.servers"), timeout_s=60, extra=settings)

    def make(partitions: int = 1) -> str:
        topic = _unique(request, "s")
        ensure_topics(admin, {topic: partitions})
        return topic

    return make
