"""The Python UDF SDK's function wrapping, without a server."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from udf import headers as h
from udf.protocol import GrpcMessage, GrpcPayloadCollection
from udf.sdk import FunctionService, UdfError, decode_collection, encode_collection


def apply(service: FunctionService, payload: bytes, headers: dict[str, str] | None = None) -> GrpcMessage:
    return asyncio.run(service.apply(GrpcMessage(payload=payload, headers=headers or {})))


def test_plain_function_reply_becomes_payload_and_headers() -> None:
    def reverse(payload: bytes, headers: dict[str, str]) -> tuple[bytes, dict[str, str]]:
        return payload[::-1], {"seen": headers["in"]}

    reply = apply(FunctionService(reverse), b"abc", {"in": "x"})
    assert reply.payload == b"cba"
    assert dict(reply.headers) == {"seen": "x"}


def test_async_function_and_str_payload_are_accepted() -> None:
    async def shout(payload: bytes, headers: dict[str, str]):
        await asyncio.sleep(0)
        return payload.decode() + "!", {"n": 1}

    reply = apply(FunctionService(shout), b"hi")
    assert reply.payload == b"hi!"
    assert dict(reply.headers) == {"n": "1"}  # header values are strings on the wire


def test_none_means_an_empty_reply() -> None:
    reply = apply(FunctionService(lambda p, hd: None), b"anything", {"a": "b"})
    assert reply.payload == b""
    assert dict(reply.headers) == {}


def test_udf_error_and_bugs_propagate_to_the_server_layer() -> None:
    def refuse(payload: bytes, headers: dict[str, str]):
        raise UdfError(grpc.StatusCode.INVALID_ARGUMENT, "no thanks")

    with pytest.raises(UdfError) as caught:
        apply(FunctionService(refuse), b"x")
    assert caught.value.code is grpc.StatusCode.INVALID_ARGUMENT

    with pytest.raises(TypeError):
        apply(FunctionService(lambda p, hd: (123, {})), b"x")


def test_collection_round_trip_is_the_protobuf_message() -> None:
    payloads = [b"one", b"", b"\x00three"]
    data = encode_collection(payloads)
    assert GrpcPayloadCollection.FromString(data).payload == payloads
    assert decode_collection(data) == payloads
    with pytest.raises(UdfError) as caught:
        decode_collection(b"\xff\xff\xff")
    assert caught.value.code is grpc.StatusCode.INVALID_ARGUMENT


def test_multipart_request_maps_the_function_over_entries_and_drops_no_outputs() -> None:
    def keep_long(payload: bytes, headers: dict[str, str]):
        return (payload.upper(), {}) if len(payload) > 2 else None

    request = encode_collection([b"ab", b"abc", b"wxyz"])
    reply = apply(FunctionService(keep_long), request, {h.CONTENT_TYPE: "multipart/json", h.WINDOW_START: "0"})
    assert reply.headers[h.CONTENT_TYPE] == "multipart/json"
    assert decode_collection(reply.payload) == [b"ABC", b"WXYZ"]


def test_multipart_request_goes_to_the_aggregate_function_when_given() -> None:
    seen = {}

    def total(payloads: list[bytes], headers: dict[str, str]):
        seen.update(headers)
        return [str(sum(int(p) for p in payloads)).encode()], {"partial": headers.get(h.PARTIAL, "")}

    service = FunctionService(lambda p, hd: pytest.fail("per-message function must not be called"), aggregate=total)
    reply = apply(service, encode_collection([b"1", b"2", b"39"]),
                  {h.CONTENT_TYPE: "multipart/json", h.PARTIAL: "false", h.WINDOW_START: "60000"})
    assert decode_collection(reply.payload) == [b"42"]
    assert reply.headers[h.CONTENT_TYPE] == "multipart/json"  # added when the function gives none
    assert reply.headers["partial"] == "false"
    assert seen[h.WINDOW_START] == "60000"


def test_multipart_with_no_outputs_is_an_empty_reply() -> None:
    reply = apply(FunctionService(lambda p, hd: None), encode_collection([b"a", b"b"]), {h.CONTENT_TYPE: "multipart/json"})
    assert reply.payload == b""


@pytest.mark.parametrize(
    ("content_type", "expected"),
    [("application/json", "multipart/json"), ("text/plain; charset=utf-8", "multipart/plain"), ("", "multipart/octet-stream")],
)
def test_multipart_content_type_of_inner_type(content_type: str, expected: str) -> None:
    assert h.multipart_of(content_type) == expected
    assert h.is_multipart({h.CONTENT_TYPE: expected})
    assert not h.is_multipart({h.CONTENT_TYPE: content_type})


def test_udf_serve_refuses_tls_options_that_do_not_go_together(capsys, tmp_path) -> None:
    from cli.main import main

    assert main(["udf", "serve", "uppercase", "--port", "1", "--tls-cert", "server.pem"]) == 2
    assert capsys.readouterr().err.strip() == "iot-monitoring udf: --tls-cert and --tls-key go together"
    missing = str(tmp_path / "missing.pem")
    assert main(["udf", "serve", "uppercase", "--host", "127.0.0.1", "--port", "1",
                 "--tls-cert", missing, "--tls-key", missing]) == 2
    assert capsys.readouterr().err.strip() == f"iot-monitoring udf: cannot read the server certificate {missing}: No such file or directory"
