"""Write a Streaming Runtime UDF in Python as a plain function, and serve it.

A UDF is a function of one message::

    def fn(payload: bytes, headers: dict[str, str]) -> tuple[bytes, dict[str, str]] | None

    serve(fn)                      # gRPC MessagingService on 0.0.0.0:55554

What a reply means to the pipeline:

- `(payload, headers)`: one output message; the headers replace the input's.
- `None`, or an empty payload: *no output* for this input. The reply on the
  wire is a `GrpcMessage` with an empty payload, and the pipeline counts the
  input as consumed and publishes nothing (an aggregate: an empty collection).
- raising `UdfError(code, details)`: the call fails with that gRPC status;
  any other exception fails it with `INTERNAL`. The pipeline sends such an
  input to its dead-letter topic with the status, and goes on.

Aggregating UDFs (Streaming Runtime's time-window mode) receive a serialized
`GrpcPayloadCollection` with content type `multipart/<subtype>`. By default
`fn` is applied to each entry and the outputs are sent back as a collection;
pass `aggregate=` to see the whole window at once instead.

The function may be `async def`; a plain function runs in a worker thread, so
a slow one never stalls the health checks.

`serve(fn, tls=ServerTls(cert_file, key_file))` serves over TLS;
`ServerTls(..., client_ca_file=...)` also requires every client to present a
certificate signed by that CA (mutual TLS). Plaintext is the default, for the
sidecar reached on localhost. All four RPCs of the protocol are
served: `requestReply` (what the pipeline calls), `serverStream` (one reply per
output), `biStream` (one reply per request, in order) and `clientStream` (the
whole stream handled as one collection).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import AsyncIterator, Awaitable, Callable, Mapping, Sequence, Union

import grpc
from google.protobuf.message import DecodeError
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from runtime.redact import redact_text
from udf import headers as h
from udf.protocol import (
    SERVICE_NAME,
    GrpcMessage,
    GrpcPayloadCollection,
    MessagingServiceServicer,
    add_MessagingServiceServicer_to_server,
)

DEFAULT_PORT = 55554
DEFAULT_HOST = "0.0.0.0"

Reply = tuple[Union[bytes, str], Mapping[str, str]]
UdfFunction = Callable[[bytes, dict[str, str]], Union[Reply, None, Awaitable[Union[Reply, None]]]]
AggregateReply = tuple[Sequence[bytes], Mapping[str, str]]
AggregateFunction = Callable[
    [list[bytes], dict[str, str]], Union[AggregateReply, None, Awaitable[Union[AggregateReply, None]]]
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServerTls:
    """The server's certificate chain and private key (PEM files, the key
    unencrypted); with `client_ca_file`, clients must present a certificate
    signed by that CA (mutual TLS)."""

    cert_file: str
    key_file: str
    client_ca_file: str | None = None

    def credentials(self) -> grpc.ServerCredentials:
        """gRPC's server credentials; OSError naming the file that cannot be read."""

        def read(path: str, what: str) -> bytes:
            try:
                return Path(path).read_bytes()
            except OSError as exc:
                raise OSError(f"cannot read the {what} {path}: {exc.strerror or exc}") from None

        chain, key = read(self.cert_file, "server certificate"), read(self.key_file, "server key")
        client_ca = read(self.client_ca_file, "client CA") if self.client_ca_file else None
        return grpc.ssl_server_credentials([(key, chain)], root_certificates=client_ca,
                                           require_client_auth=client_ca is not None)

    def describe(self) -> str:
        return "TLS, client certificates required" if self.client_ca_file else "TLS"


class UdfError(Exception):
    """Raised by a UDF to fail one call with a chosen gRPC status (e.g. INVALID_ARGUMENT)."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(details)
        self.code = code
        self.details = details


def encode_collection(payloads: Sequence[bytes]) -> bytes:
    """Serialize payloads as a `GrpcPayloadCollection`, the protocol's form of a window."""
    return GrpcPayloadCollection(payload=list(payloads)).SerializeToString()


def decode_collection(data: bytes) -> list[bytes]:
    """The payloads of a serialized `GrpcPayloadCollection`; `UdfError` if it is not one."""
    try:
        return list(GrpcPayloadCollection.FromString(data).payload)
    except DecodeError as exc:
        raise UdfError(grpc.StatusCode.INVALID_ARGUMENT, f"multipart payload is not a GrpcPayloadCollection: {exc}")


async def _call(fn: Callable, *args):
    """Await an async function; run a plain one in a worker thread."""
    if inspect.iscoroutinefunction(fn):
        return await fn(*args)
    result = await asyncio.to_thread(fn, *args)
    if inspect.isawaitable(result):
        result = await result
    return result


def _as_bytes(payload: bytes | str) -> bytes:
    if isinstance(payload, str):
        return payload.encode()
    if isinstance(payload, (bytes, bytearray, memoryview)):
        return bytes(payload)
    raise TypeError(f"a UDF must return bytes or str as payload, not {type(payload).__name__}")


def _as_headers(headers: Mapping[str, str] | None) -> dict[str, str]:
    return {str(k): str(v) for k, v in (headers or {}).items()}


class FunctionService(MessagingServiceServicer):
    """The protocol's `MessagingService` around a per-message function."""

    def __init__(self, fn: UdfFunction, aggregate: AggregateFunction | None = None) -> None:
        self._fn = fn
        self._aggregate = aggregate

    async def apply(self, request: GrpcMessage) -> GrpcMessage:
        """The reply to one request; raises `UdfError` or the function's own exception."""
        headers = dict(request.headers)
        if h.is_multipart(headers):
            outputs, reply_headers = await self.apply_collection(decode_collection(request.payload), headers)
            return GrpcMessage(payload=encode_collection(outputs) if outputs else b"", headers=reply_headers)
        result = await _call(self._fn, request.payload, headers)
        if result is None:
            return GrpcMessage()
        payload, reply_headers = result
        return GrpcMessage(payload=_as_bytes(payload), headers=_as_headers(reply_headers))

    async def apply_collection(
        self, payloads: list[bytes], headers: dict[str, str]
    ) -> tuple[list[bytes], dict[str, str]]:
        """Outputs of a window: the aggregate function's, or `fn` applied entry by entry."""
        content_type = headers.get(h.CONTENT_TYPE) or h.multipart_of(h.JSON)
        if self._aggregate is not None:
            result = await _call(self._aggregate, payloads, headers)
            if result is None:
                return [], {h.CONTENT_TYPE: content_type}
            outputs, reply_headers = result
            reply_headers = _as_headers(reply_headers)
            reply_headers.setdefault(h.CONTENT_TYPE, content_type)
            return [_as_bytes(p) for p in outputs], reply_headers
        outputs = []
        for payload in payloads:
            result = await _call(self._fn, payload, dict(headers))
            if result is not None and result[0]:
                outputs.append(_as_bytes(result[0]))
        return outputs, {h.CONTENT_TYPE: content_type}

    async def _apply_or_abort(self, request: GrpcMessage, context: grpc.aio.ServicerContext) -> GrpcMessage:
        try:
            return await self.apply(request)
        except UdfError as exc:
            await context.abort(exc.code, exc.details)
        except Exception as exc:  # the UDF's own bug: fail this call only, keep serving
            log.exception("UDF failed on a message")
            await context.abort(grpc.StatusCode.INTERNAL, redact_text(f"{type(exc).__name__}: {exc}"))
        raise AssertionError("unreachable: context.abort raises")

    async def requestReply(self, request: GrpcMessage, context: grpc.aio.ServicerContext) -> GrpcMessage:
        return await self._apply_or_abort(request, context)

    async def serverStream(
        self, request: GrpcMessage, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[GrpcMessage]:
        reply = await self._apply_or_abort(request, context)
        if not reply.payload:
            return
        if h.is_multipart(reply.headers):
            inner = {k: v for k, v in reply.headers.items() if k != h.CONTENT_TYPE}
            for payload in decode_collection(reply.payload):
                yield GrpcMessage(payload=payload, headers=inner)
        else:
            yield reply

    async def biStream(
        self, request_iterator: AsyncIterator[GrpcMessage], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[GrpcMessage]:
        async for request in request_iterator:
            yield await self._apply_or_abort(request, context)

    async def clientStream(
        self, request_iterator: AsyncIterator[GrpcMessage], context: grpc.aio.ServicerContext
    ) -> GrpcMessage:
        payloads: list[bytes] = []
        first_headers: dict[str, str] | None = None
        async for request in request_iterator:
            payloads.append(request.payload)
            if first_headers is None:
                first_headers = dict(request.headers)
        headers = first_headers or {}
        headers[h.CONTENT_TYPE] = h.multipart_of(headers.get(h.CONTENT_TYPE, h.JSON))
        window = GrpcMessage(payload=encode_collection(payloads), headers=headers)
        return await self._apply_or_abort(window, context)


async def start_server(
    fn: UdfFunction,
    port: int = DEFAULT_PORT,
    host: str = DEFAULT_HOST,
    *,
    aggregate: AggregateFunction | None = None,
    tls: ServerTls | None = None,
) -> tuple[grpc.aio.Server, health.aio.HealthServicer, int]:
    """Start serving `fn` with the health service; returns (server, health, bound port).

    Raises `OSError` when the address cannot be bound (e.g. the port is
    taken) or the TLS files cannot be read.
    """
    # no SO_REUSEPORT: a second server on a taken port must fail, not share it silently
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    add_MessagingServiceServicer_to_server(FunctionService(fn, aggregate), server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    try:
        if tls is None:
            bound = server.add_insecure_port(f"{host}:{port}")
        else:
            bound = server.add_secure_port(f"{host}:{port}", tls.credentials())
    except RuntimeError as exc:
        raise OSError(f"cannot listen on {host}:{port}: {exc}") from None
    await server.start()
    for service in ("", SERVICE_NAME):
        await health_servicer.set(service, health_pb2.HealthCheckResponse.SERVING)
    return server, health_servicer, bound


async def serve_async(
    fn: UdfFunction,
    port: int = DEFAULT_PORT,
    host: str = DEFAULT_HOST,
    *,
    aggregate: AggregateFunction | None = None,
    grace_seconds: float = 5.0,
    tls: ServerTls | None = None,
) -> None:
    """Serve until SIGTERM or SIGINT, then drain: health turns NOT_SERVING, calls in
    flight get `grace_seconds` to finish, new ones are refused."""
    server, health_servicer, bound = await start_server(fn, port, host, aggregate=aggregate, tls=tls)
    name = getattr(fn, "__name__", "udf")
    log.info("UDF %s serving %s on %s:%d (%s)", name, SERVICE_NAME, host, bound, tls.describe() if tls else "plaintext")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        log.info("UDF %s shutting down (grace %.1fs)", name, grace_seconds)
        await health_servicer.enter_graceful_shutdown()
        await server.stop(grace_seconds)
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
    log.info("UDF %s stopped", name)


def serve(
    fn: UdfFunction,
    port: int = DEFAULT_PORT,
    host: str = DEFAULT_HOST,
    *,
    aggregate: AggregateFunction | None = None,
    grace_seconds: float = 5.0,
    tls: ServerTls | None = None,
) -> None:
    """Blocking form of `serve_async`: the whole `main` of a UDF process."""
    asyncio.run(serve_async(fn, port, host, aggregate=aggregate, grace_seconds=grace_seconds, tls=tls))
