"""RabbitMQ over TLS, against the secured local stack's listener (127.0.0.1:5671,
its own user): the publisher with the stack's CA, with credentials from a
file, and each refusal (an untrusted certificate, another host name, a client
certificate of another CA, a wrong password) a `RabbitMQConfigError` at once;
the dataflow's UDF stage publishing over `amqps://` from the environment."""

from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import unquote, urlsplit

import orjson
import pytest

from config.pipeline import TlsSettings
from connectors.rabbitmq import RabbitMQConfigError, RabbitPublisher
from engine.records import AmqpMessage
from tests.support.amqp import bound_queue, drain
from tests.support.tls import TestCA

pytestmark = pytest.mark.broker


@pytest.fixture(scope="module")
def stack_tls(secure_stack) -> dict[str, str]:
    cfg = secure_stack.cfg
    url = cfg.secure_rabbitmq_url()
    parts = urlsplit(url)
    return {"url": url, "ca": str(cfg.secure.tls.ca), "user": unquote(parts.username or ""),
            "password": unquote(parts.password or ""), "plain_url": url.replace(f":{parts.password}@", "@"),
            "client_cert": str(cfg.secure.tls.client_cert), "client_key": str(cfg.secure.tls.client_key)}


def test_publishing_over_tls_with_the_stacks_ca_and_a_client_certificate(stack_tls, new_exchange) -> None:
    exchange = new_exchange()
    for tls in (TlsSettings(ca_file=stack_tls["ca"]),
                TlsSettings(ca_file=stack_tls["ca"], cert_file=stack_tls["client_cert"], key_file=stack_tls["client_key"])):
        connection, channel, queue = bound_queue(stack_tls["url"], exchange, tls)
        publisher = RabbitPublisher(stack_tls["url"], exchange, tls=tls, connect_timeout_s=10)
        try:
            publisher.publish_batch([AmqpMessage("C001", b'{"n": 1}', "id-1")])
        finally:
            publisher.close()
        assert [body for _m, _p, body in drain(channel, queue, 5)] == [b'{"n": 1}']
        connection.close()


@pytest.mark.parametrize("case, expected", [
    ("system CAs", "the server's certificate is not trusted"),
    ("another host name", "the server's certificate is not for this host name"),
    ("a client certificate of another CA", "a client certificate it trusts"),
    ("a wrong password", "refused the credentials"),
])
def test_each_refusal_is_a_configuration_error_at_once(stack_tls, tmp_path: Path, case: str, expected: str) -> None:
    url, ca = stack_tls["url"], stack_tls["ca"]
    if case == "system CAs":
        tls = TlsSettings()
    elif case == "another host name":
        tls = TlsSettings(ca_file=ca, server_name="rabbit.example.com")
    elif case == "a client certificate of another CA":
        stranger = TestCA(tmp_path, "stranger CA").issue("stranger", server=False)
        tls = TlsSettings(ca_file=ca, cert_file=str(stranger.cert), key_file=str(stranger.key))
    else:
        tls = TlsSettings(ca_file=ca)
        url = url.replace(f":{urlsplit(url).password}@", ":not-the-password-41@")
    publisher = RabbitPublisher(url, "never-declared", tls=tls)  # no timeout: only a configuration error ends it
    started = time.monotonic()
    with pytest.raises(RabbitMQConfigError) as caught:
        publisher.connect()
    assert time.monotonic() - started < 10
    message = str(caught.value)
    assert message.startswith("RabbitMQ at 127.0.0.1:5671") and expected in message
    assert stack_tls["password"] not in message and "not-the-password-41" not in message


def test_unusable_tls_files_are_a_configuration_error(tmp_path: Path, stack_tls) -> None:
    with pytest.raises(RabbitMQConfigError, match="cannot read the CA file"):
        RabbitPublisher(stack_tls["url"], "x", tls=TlsSettings(ca_file=str(tmp_path / "missing.pem")))


def test_the_udf_stage_publishes_over_amqps_from_the_environment(tmp_path: Path, stack_tls, kafka_bootstrap: str,
                                                                new_topic, new_exchange) -> None:
    """The built-in pipeline's RabbitMQ output from RABBITMQ_URL (no password
    in it), RABBITMQ_PASSWORD_FILE and RABBITMQ_SSL_CA_LOCATION alone."""
    from tests.support.kafka_io import produce
    from tests.support.pipeline import run_dataflow, seed_pipeline

    counts_topic, exchange = new_topic(), new_exchange()
    row = {"window_start": "2024-01-01 10:00:00", "window_end": "2024-01-01 10:01:00", "error_code": "C7", "error_count": 2}
    produce(kafka_bootstrap, counts_topic, [orjson.dumps(row)], key=b'{"error_code":"C7"}')
    tls = TlsSettings(ca_file=stack_tls["ca"])
    connection, channel, queue = bound_queue(stack_tls["url"], exchange, tls)
    password_file = tmp_path / "rabbitmq-password"
    password_file.write_text(stack_tls["password"] + "\n")
    pipeline = seed_pipeline(tmp_path, "unused-input", counts_topic, exchange)
    text = pipeline.read_text().replace("\n  template:", '\n  attributes:\n    srp.skipUdf: "true"\n  template:', 1)
    pipeline.write_text(text)  # no UDF call: the counts are forwarded as they are
    env = {"RABBITMQ_URL": stack_tls["plain_url"], "RABBITMQ_PASSWORD_FILE": str(password_file),
           "RABBITMQ_SSL_CA_LOCATION": stack_tls["ca"]}
    result = run_dataflow(pipeline, kafka_bootstrap, processors="udf", env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    bodies = [body for _m, _p, body in drain(channel, queue)]
    connection.close()
    assert bodies == [orjson.dumps(row)]
    assert stack_tls["password"] not in result.stdout + result.stderr
