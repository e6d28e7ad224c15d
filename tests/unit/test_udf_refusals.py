"""A UDF that refuses every call (wrong service on the port, missing or wrong
credentials) is a configuration error of the stage: one clear error line,
the messages held and retried, none dead-lettered. The server here is a
small in-process gRPC one."""

from __future__ import annotations

import logging
from concurrent import futures

import grpc
import pytest

from connectors.udf_client import UdfCall, UdfClient, UdfFailure, UdfReply, UdfSettings
from tests.support.ports import free_port
from udf.protocol import GrpcMessage, MessagingServiceServicer, add_MessagingServiceServicer_to_server


class RefusingFirst(MessagingServiceServicer):
    """Refuses the first `refusals` calls with `code`, then upper-cases."""

    def __init__(self, code: grpc.StatusCode, refusals: int) -> None:
        self.code, self.refusals, self.calls = code, refusals, 0

    def requestReply(self, request, context):
        self.calls += 1
        if self.calls <= self.refusals:
            context.abort(self.code, f"refused ({self.code.name})")
        return GrpcMessage(payload=request.payload.upper(), headers=dict(request.headers))


@pytest.fixture
def server():
    started = []

    def start(servicer: RefusingFirst) -> str:
        port = free_port()
        srv = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        add_MessagingServiceServicer_to_server(servicer, srv)
        srv.add_insecure_port(f"127.0.0.1:{port}")
        srv.start()
        started.append(srv)
        return f"127.0.0.1:{port}"

    yield start
    for srv in started:
        srv.stop(0)


@pytest.mark.parametrize("code", [grpc.StatusCode.UNIMPLEMENTED, grpc.StatusCode.UNAUTHENTICATED,
                                  grpc.StatusCode.PERMISSION_DENIED])
def test_a_refusing_udf_holds_the_messages_and_says_so_once(server, code, caplog) -> None:
    servicer = RefusingFirst(code, refusals=12)
    address = server(servicer)
    client = UdfClient(UdfSettings(address, max_in_flight=4, initial_backoff_s=0.01, max_backoff_s=0.05,
                                   log_every_s=3600, ordered_by_key=False))
    calls = [UdfCall(f"m{i}".encode(), {"contentType": "text/plain"}) for i in range(6)]
    try:
        with caplog.at_level(logging.INFO, logger="connectors.udf_client"):
            results = client.call_batch(calls)
    finally:
        client.close()
    assert not any(isinstance(r, UdfFailure) for r in results)
    assert [r.outputs[0].payload for r in results if isinstance(r, UdfReply)] == [f"M{i}".encode() for i in range(6)]
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and code.name in errors[0].getMessage() and address in errors[0].getMessage()
    assert servicer.calls == 12 + 6


def test_a_verdict_on_one_message_is_still_a_dead_letter(server) -> None:
    servicer = RefusingFirst(grpc.StatusCode.INVALID_ARGUMENT, refusals=1)
    client = UdfClient(UdfSettings(server(servicer), ordered_by_key=False))
    try:
        first, second = client.call_batch([UdfCall(b"a", {}), UdfCall(b"b", {})])
    finally:
        client.close()
    assert [type(first).__name__, type(second).__name__].count("UdfFailure") == 1
