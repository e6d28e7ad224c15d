"""Real UDF servers (Python SDK samples and the Go server) speaking the Streaming Runtime protocol."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import grpc
import orjson
import pytest
from grpc_health.v1 import health_pb2

from tests.integration.udf_servers import free_port, go_udf, health_status, python_script_udf, python_udf, running
from udf.protocol import SERVICE_NAME, GrpcMessage, GrpcPayloadCollection, MessagingServiceStub

COUNT = {"window_start": "2022-02-16 14:18:00", "window_end": "2022-02-16 14:19:00",
         "error_code": "C009_OUT_OF_RANGE", "error_count": 20}
REQUEST_HEADERS = {"contentType": "application/json", "kafka_receivedMessageKey": '{"error_code":"C009_OUT_OF_RANGE"}',
                   "eventtime": "1645021139999", "watermark": "1645021136999"}

UPPERCASE_SERVERS = {
    "python": (lambda port: python_udf("uppercase", port), {}),
    "go": (go_udf, {"x-udf-lang": "go"}),
}


def stub(port: int) -> MessagingServiceStub:
    return MessagingServiceStub(grpc.insecure_channel(f"127.0.0.1:{port}"))


@pytest.mark.parametrize("lang", sorted(UPPERCASE_SERVERS))
def test_uppercase_request_reply(lang: str, tmp_path: Path) -> None:
    make_argv, reply_headers = UPPERCASE_SERVERS[lang]
    port = free_port()
    payload = orjson.dumps(COUNT) + " é".encode()
    with running(make_argv(port), port, tmp_path / "udf.log"):
        reply = stub(port).requestReply(GrpcMessage(payload=payload, headers=REQUEST_HEADERS), timeout=5)
        assert reply.payload.decode() == payload.decode().upper()
        assert b'"ERROR_CODE":"C009_OUT_OF_RANGE"' in reply.payload
        assert dict(reply.headers) == reply_headers  # request headers are dropped, as udf-uppercase-go did


@pytest.mark.parametrize("lang", sorted(UPPERCASE_SERVERS))
def test_health_serving_and_graceful_stop(lang: str, tmp_path: Path) -> None:
    make_argv, _ = UPPERCASE_SERVERS[lang]
    port = free_port()
    with running(make_argv(port), port, tmp_path / "udf.log") as udf:
        assert health_status(port) == health_pb2.HealthCheckResponse.SERVING
        assert health_status(port, SERVICE_NAME) == health_pb2.HealthCheckResponse.SERVING
        assert udf.terminate() == 0, udf.log()
        assert "stopped" in udf.log()
        assert health_status(port) is None


@pytest.mark.parametrize("lang", sorted(UPPERCASE_SERVERS))
def test_invalid_input_is_an_error_status_and_the_server_goes_on(lang: str, tmp_path: Path) -> None:
    make_argv, _ = UPPERCASE_SERVERS[lang]
    port = free_port()
    with running(make_argv(port), port, tmp_path / "udf.log"):
        client = stub(port)
        with pytest.raises(grpc.RpcError) as caught:
            client.requestReply(GrpcMessage(payload=b"\xff\xfe"), timeout=5)
        assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert client.requestReply(GrpcMessage(payload=b"ok"), timeout=5).payload == b"OK"


@pytest.mark.parametrize("lang", sorted(UPPERCASE_SERVERS))
def test_streaming_rpcs(lang: str, tmp_path: Path) -> None:
    make_argv, _ = UPPERCASE_SERVERS[lang]
    port = free_port()
    words = [b"alpha", b"beta", b"gamma"]
    with running(make_argv(port), port, tmp_path / "udf.log"):
        client = stub(port)
        replies = list(client.biStream(iter(GrpcMessage(payload=w) for w in words), timeout=5))
        assert [r.payload for r in replies] == [w.upper() for w in words]
        assert [r.payload for r in client.serverStream(GrpcMessage(payload=b"one"), timeout=5)] == [b"ONE"]
        joined = client.clientStream(iter(GrpcMessage(payload=w) for w in words), timeout=5)
        if lang == "go":
            assert joined.payload == b"".join(w.upper() for w in words)
        else:  # the SDK treats a client stream as a window: a payload collection comes back
            assert list(GrpcPayloadCollection.FromString(joined.payload).payload) == [w.upper() for w in words]


def test_python_uppercase_as_an_aggregating_udf(tmp_path: Path) -> None:
    port = free_port()
    entries = [orjson.dumps({"n": i, "code": f"c{i}"}) for i in range(3)]
    window = GrpcPayloadCollection(payload=entries).SerializeToString()
    headers = {"contentType": "multipart/json", "windowStartTime": "0", "windowEndTime": "60000", "partial": "false"}
    with running(python_udf("uppercase", port), port, tmp_path / "udf.log"):
        reply = stub(port).requestReply(GrpcMessage(payload=window, headers=headers), timeout=5)
        assert reply.headers["contentType"] == "multipart/json"
        assert list(GrpcPayloadCollection.FromString(reply.payload).payload) == [e.decode().upper().encode() for e in entries]
        streamed = list(stub(port).serverStream(GrpcMessage(payload=window, headers=headers), timeout=5))
        assert [m.payload for m in streamed] == [e.decode().upper().encode() for e in entries]


def count_payload(code: str, minute: int, n: int) -> bytes:
    return orjson.dumps({"window_start": f"2022-02-16 14:{minute:02d}:00", "window_end": f"2022-02-16 14:{minute + 1:02d}:00",
                         "error_code": code, "error_count": n})


def test_alerting_udf_over_grpc(tmp_path: Path) -> None:
    port = free_port()
    threshold, jump = 25, 3.0
    # (code, minute, count) in arrival order, and whether an alert is expected, by the documented rules
    sequence = [
        ("C001", 18, 10, None),          # first window: no history, below threshold
        ("C001", 19, 31, "jump"),        # 31 >= 3 x 10 (and >= threshold 25): both reasons, warning (31 < 2 x 25)
        ("C002", 19, 60, "critical"),    # 60 >= 2 x 25
        ("C001", 20, 24, None),          # below threshold, 24 < 3 x 31
        ("C002", 20, 5, None),
    ]
    argv = python_udf("alerting", port, "--threshold", str(threshold), "--jump-factor", str(jump))
    with running(argv, port, tmp_path / "udf.log"):
        client = stub(port)
        for code, minute, n, expected in sequence:
            reply = client.requestReply(GrpcMessage(payload=count_payload(code, minute, n), headers=REQUEST_HEADERS), timeout=5)
            if expected is None:
                assert reply.payload == b"", (code, minute, reply.payload)
                continue
            alert = orjson.loads(reply.payload)
            assert reply.headers["contentType"] == "application/json"
            assert (alert["error_code"], alert["error_count"]) == (code, n)
            assert alert["window_start"] == f"2022-02-16 14:{minute:02d}:00"
            if expected == "jump":
                assert alert["previous_count"] == 10 and alert["severity"] == "warning"
                assert "3.1x" in alert["reason"] and "threshold 25" in alert["reason"]
            else:
                assert alert["severity"] == "critical"
        with pytest.raises(grpc.RpcError) as caught:
            client.requestReply(GrpcMessage(payload=b'{"error_code": "C1"}'), timeout=5)
        assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert "window_start" in caught.value.details()


def test_port_taken_is_a_clear_error(tmp_path: Path) -> None:
    port = free_port()
    with running(python_udf("uppercase", port), port, tmp_path / "udf.log"):
        second = subprocess.run([sys.executable, "-c", "from cli.main import main; raise SystemExit(main())",
                                 "udf", "serve", "uppercase", "--host", "127.0.0.1", "--port", str(port)],
                                capture_output=True, text=True, timeout=30)
        assert second.returncode == 2
        assert f"cannot listen on 127.0.0.1:{port}" in second.stderr
        assert "Traceback" not in second.stderr


def test_sigterm_lets_the_call_in_flight_finish(tmp_path: Path) -> None:
    port = free_port()
    source = "import time\ndef fn(payload, headers):\n    time.sleep(1.5)\n    return payload + b' done', {}\n"
    outcome: dict = {}
    with running(python_script_udf(source, port), port, tmp_path / "udf.log") as udf:
        client = stub(port)

        def call() -> None:
            try:
                outcome["reply"] = client.requestReply(GrpcMessage(payload=b"work"), timeout=10).payload
            except grpc.RpcError as exc:
                outcome["error"] = exc.code()

        caller = threading.Thread(target=call)
        caller.start()
        time.sleep(0.5)  # the call is now inside the UDF
        assert udf.terminate() == 0
        caller.join(10)
    assert outcome == {"reply": b"work done"}
