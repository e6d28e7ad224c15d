"""The UDF channel over TLS and mutual TLS, with a CA made for the test: the
real SDK server (`iot-monitoring udf serve --tls-*`), the client, and the
dataflow's UDF stage (Kafka -> UDF -> RabbitMQ); every misconfiguration is a
clear error at start, not an outage retried for ever."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from config.pipeline import TlsSettings
from connectors.udf_client import UdfCall, UdfClient, UdfConfigError, UdfReply, UdfSettings, check_udf
from tests.support.amqp import bound_queue, drain
from tests.integration.udf_servers import free_port, python_udf, running
from tests.support.tls import TestCA

ROW = {"window_start": "2024-01-01 10:00:00", "window_end": "2024-01-01 10:01:00", "error_code": "C001", "error_count": 3}


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("pki")
    ca, other = TestCA(folder / "ca"), TestCA(folder / "other", "other CA")
    server, client, stranger = ca.issue("udf", server=True), ca.issue("client", server=False), other.issue("stranger", server=False)
    return {"ca": ca.pem, "other_ca": other.pem, "server_cert": server.cert, "server_key": server.key,
            "client_cert": client.cert, "client_key": client.key, "stranger_cert": stranger.cert, "stranger_key": stranger.key}


def tls_args(pki: dict[str, Path], mutual: bool) -> tuple[str, ...]:
    args = ("--tls-cert", str(pki["server_cert"]), "--tls-key", str(pki["server_key"]))
    return args + (("--tls-client-ca", str(pki["ca"])) if mutual else ())


def one_call(settings: UdfSettings) -> UdfReply:
    client = UdfClient(settings)
    try:
        [result] = client.call_batch([UdfCall(orjson.dumps(ROW), {"contentType": "application/json"})])
    finally:
        client.close()
    assert isinstance(result, UdfReply), result
    return result


def test_tls_and_mutual_tls_through_the_sdk_server(pki: dict[str, Path], tmp_path: Path) -> None:
    for mutual in (False, True):
        port = free_port()
        with running(python_udf("uppercase", port, *tls_args(pki, mutual)), port, tmp_path / f"udf-{mutual}.log",
                     tls=(pki["ca"], pki["client_cert"], pki["client_key"])):
            client_cert = dict(cert_file=str(pki["client_cert"]), key_file=str(pki["client_key"])) if mutual else {}
            settings = UdfSettings(f"127.0.0.1:{port}", tls=TlsSettings(ca_file=str(pki["ca"]), **client_cert))
            assert check_udf(settings)
            assert one_call(settings).outputs[0].payload == orjson.dumps(ROW).upper()


@pytest.mark.parametrize("case, expected", [
    ("plaintext client", "the server speaks TLS, but the client is set for plaintext"),
    ("another CA", "the server's certificate is not trusted"),
    ("another name", "the server's certificate is not for this host name"),
    ("no client certificate", "wants a client certificate (mutual TLS)"),
    ("a client certificate of another CA", "does not trust the client certificate"),
])
def test_a_client_without_the_right_settings_gets_a_clear_error(pki: dict[str, Path], tmp_path: Path, case: str,
                                                               expected: str) -> None:
    port = free_port()
    tls = {
        "plaintext client": None,
        "another CA": TlsSettings(ca_file=str(pki["other_ca"])),
        "another name": TlsSettings(ca_file=str(pki["ca"]), server_name="udf.example.com"),
        "no client certificate": TlsSettings(ca_file=str(pki["ca"])),
        "a client certificate of another CA": TlsSettings(ca_file=str(pki["ca"]), cert_file=str(pki["stranger_cert"]),
                                                          key_file=str(pki["stranger_key"])),
    }[case]
    with running(python_udf("uppercase", port, *tls_args(pki, mutual=True)), port, tmp_path / "udf.log",
                 tls=(pki["ca"], pki["client_cert"], pki["client_key"])):
        with pytest.raises(UdfConfigError, match="UDF udf at 127.0.0.1") as caught:
            check_udf(UdfSettings(f"127.0.0.1:{port}", tls=tls))
    assert expected in str(caught.value)


def test_a_udf_that_is_down_is_not_a_configuration_error(pki: dict[str, Path]) -> None:
    assert check_udf(UdfSettings(f"127.0.0.1:{free_port()}", tls=TlsSettings(ca_file=str(pki["ca"])))) is False


# --- the dataflow ---------------------------------------------------------------------------------


def udf_pipeline(tmp_path: Path, counts_topic: str, exchange: str, attributes: dict[str, str]) -> Path:
    from tests.support.pipeline import seed_pipeline

    text = "".join(f"\n    {k}: \"{v}\"" for k, v in attributes.items())
    path = seed_pipeline(tmp_path, "unused-input", counts_topic, exchange)
    source = path.read_text()
    marker = "\n  template:"
    assert marker in source
    if attributes:
        path.write_text(source.replace(marker, "\n  attributes:" + text + marker, 1))
    return path


@pytest.mark.broker
@pytest.mark.parametrize("mutual", [False, True], ids=["tls", "mutual-tls"])
def test_the_udf_stage_calls_a_tls_udf(pki: dict[str, Path], tmp_path: Path, kafka_bootstrap: str, rabbitmq_url: str,
                                       new_topic, new_exchange, mutual: bool) -> None:
    from tests.support.kafka_io import produce
    from tests.support.pipeline import run_dataflow

    counts_topic, exchange = new_topic(), new_exchange()
    produce(kafka_bootstrap, counts_topic, [orjson.dumps(ROW)], key=b'{"error_code":"C001"}')
    connection, channel, queue = bound_queue(rabbitmq_url, exchange)

    attributes = {"srp.grpc.tls.caFile": str(pki["ca"])}
    if mutual:
        attributes |= {"srp.grpc.tls.certFile": str(pki["client_cert"]), "srp.grpc.tls.keyFile": str(pki["client_key"])}
    port = free_port()
    pipeline = udf_pipeline(tmp_path, counts_topic, exchange, attributes)
    with running(python_udf("uppercase", port, *tls_args(pki, mutual)), port, tmp_path / "udf.log",
                 tls=(pki["ca"], pki["client_cert"], pki["client_key"])):
        result = run_dataflow(pipeline, kafka_bootstrap, processors="udf",
                              env={"IOT_UDF_ADDRESS": f"127.0.0.1:{port}", "RABBITMQ_URL": rabbitmq_url})
        # the same UDF, called by a dataflow whose channel lacks what the server asks for
        wrong = {"srp.grpc.tls.caFile": str(pki["ca"])} if mutual else {}  # no client certificate / plaintext
        (tmp_path / "wrong").mkdir()
        refused = run_dataflow(udf_pipeline(tmp_path / "wrong", counts_topic, exchange, wrong), kafka_bootstrap,
                               processors="udf", env={"IOT_UDF_ADDRESS": f"127.0.0.1:{port}", "RABBITMQ_URL": rabbitmq_url},
                               timeout=60)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "(TLS, CA " in result.stderr
    bodies = [body for _m, _p, body in drain(channel, queue)]
    connection.close()
    assert bodies == [orjson.dumps(ROW).upper()]

    assert refused.returncode == 2, refused.stderr[-3000:]
    [line] = [l for l in refused.stderr.splitlines() if l.startswith("iot-monitoring:")]
    expected = "wants a client certificate" if mutual else "the server speaks TLS, but the client is set for plaintext"
    assert expected in line
    assert "Traceback" not in refused.stderr
