"""The gRPC UDF stage: call a Streaming Runtime UDF's `requestReply` for a batch.

Independent of Bytewax (plain lists in, plain lists out); `engine.udf_stage`
puts it in a dataflow. What it guarantees:

- at most `max_in_flight` calls at once, each with a deadline; calls for
  the same message key go one after the other, in input order (as Streaming
  Runtime's processor called its UDF), so a UDF that keeps state per key
  (e.g. comparing a window with the previous one) sees them in order;
- while the UDF is unreachable (`UNAVAILABLE`, or `CANCELLED` by a server
  going down) the calls are retried with exponential backoff for as long as
  it takes, with a log line when the outage starts, every `log_every_s`
  while it lasts, and when it ends: a UDF that is down at start, or
  restarted mid-stream, delays messages and loses none;
- a UDF that refuses every call (`UNIMPLEMENTED`: another service, or not a
  UDF, on that port; `UNAUTHENTICATED`, `PERMISSION_DENIED`: credentials)
  is a configuration error of the whole stage, not a verdict on each
  message: one error line says what is wrong (again every `log_every_s`
  while it lasts), and the messages are held and retried with the same
  backoff as an unreachable UDF, so that fixing the address, the service or
  the credentials lets them through; none is dead-lettered for it;
- a busy UDF (`DEADLINE_EXCEEDED`, `RESOURCE_EXHAUSTED`) is retried
  `busy_retries` times, so that one message that always times out cannot
  stall the pipeline forever;
- any other status (`INTERNAL`, `INVALID_ARGUMENT`, `UNKNOWN`, ...) is the
  UDF's verdict on that message: it becomes a `UdfFailure` carrying the
  status code and details, for the dead-letter topic, and the rest flow.

The channel is plaintext unless `UdfSettings.tls` is given: then TLS, with
the client certificate for mutual TLS when the settings carry one.
`check_udf` tries the channel once at start, so that a TLS handshake that
cannot succeed is a `UdfConfigError` before anything runs rather than an
outage retried for ever.

An empty reply payload means "no output for this message" (see `udf.sdk`):
the result is a `UdfReply` whose `outputs` is empty.

Results come back in the order of the calls. A call may reach the UDF more
than once (a reply lost with a crashing UDF is asked again), so a UDF should
be a function of its input; the sink's stable `message_id` lets consumers
drop the repeats.
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import time
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import grpc

from config.pipeline import TlsSettings
from connectors.tls import TlsConfigError, grpc_credentials, probe
from runtime.logs import FatalError
from runtime.redact import redact_text
from udf import headers as h
from udf.protocol import GrpcMessage, GrpcPayloadCollection, MessagingServiceStub

log = logging.getLogger(__name__)

UNREACHABLE = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED})
MISCONFIGURED = frozenset({grpc.StatusCode.UNIMPLEMENTED, grpc.StatusCode.UNAUTHENTICATED,
                           grpc.StatusCode.PERMISSION_DENIED})
BUSY = frozenset({grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.RESOURCE_EXHAUSTED})

# Reconnect quickly once the UDF is back: gRPC's default channel backoff grows to 2 minutes.
CHANNEL_OPTIONS = (
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 2000),
    ("grpc.enable_retries", 0),  # retries are ours, with logs
)


@dataclass(frozen=True)
class UdfSettings:
    """Where the UDF is and how patiently to call it."""

    address: str  # host:port; a sidecar is localhost:<srp.grpcPort>
    max_in_flight: int = 16
    deadline_s: float = 5.0
    initial_backoff_s: float = 0.1
    max_backoff_s: float = 5.0
    busy_retries: int | None = 10  # None: retry a busy UDF forever too
    log_every_s: float = 10.0
    ordered_by_key: bool = True  # same-key calls in sequence; False: every call independent
    name: str = "udf"  # for logs and metrics: the Processor's name
    tls: TlsSettings | None = None  # None: plaintext (a sidecar on localhost)


class UdfConfigError(FatalError):
    """The UDF channel cannot work as configured (TLS material, a refused handshake)."""


def channel_options(settings: UdfSettings) -> list[tuple[str, Any]]:
    options = list(CHANNEL_OPTIONS)
    if settings.tls is not None and settings.tls.server_name:
        options.append(("grpc.ssl_target_name_override", settings.tls.server_name))
    return options


def channel_credentials(settings: UdfSettings) -> grpc.ChannelCredentials | None:
    """TLS credentials for the channel, None for plaintext; UdfConfigError for unusable files."""
    if settings.tls is None:
        return None
    try:
        return grpc_credentials(settings.tls)
    except TlsConfigError as exc:
        raise UdfConfigError(f"UDF {settings.name} at {settings.address}: {exc}") from None


def open_channel(settings: UdfSettings) -> grpc.aio.Channel:
    """The asyncio channel to the UDF, plaintext or TLS as the settings say."""
    credentials = channel_credentials(settings)
    if credentials is None:
        return grpc.aio.insecure_channel(settings.address, options=channel_options(settings))
    return grpc.aio.secure_channel(settings.address, credentials, options=channel_options(settings))


HANDSHAKE_WORDS = ("handshake", "certificate", "ssl_error", "tsi_")


def check_udf(settings: UdfSettings, timeout_s: float = 3.0) -> bool:
    """Ask the UDF's health service once over the channel the stage will use.

    True when something answered (any status but UNAVAILABLE: a UDF without
    the health service answers UNIMPLEMENTED), False when the UDF cannot be
    reached (the stage waits for it). A TLS handshake that fails (an
    untrusted or misnamed certificate, a client certificate refused, TLS on
    one side only) raises UdfConfigError."""
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    credentials = channel_credentials(settings)
    options = channel_options(settings)
    channel = (grpc.secure_channel(settings.address, credentials, options=options) if credentials is not None
               else grpc.insecure_channel(settings.address, options=options))
    where = f"UDF {settings.name} at {settings.address}"
    with channel:
        try:
            health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=timeout_s)
            return True
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.UNAVAILABLE:
                return True
            details = exc.details() or ""
    host, _, port = settings.address.rpartition(":")
    problem = probe(host.strip("[]") or "localhost", int(port), settings.tls, alpn=("h2",), timeout_s=timeout_s)
    if problem is None and settings.tls is not None and any(w in details.lower() for w in HANDSHAKE_WORDS):
        problem = f"the TLS handshake failed ({details})"
    if problem is not None:
        hint = "" if settings.tls is not None else " (set srp.grpc.tls.enabled, or IOT_UDF_TLS=1)"
        raise UdfConfigError(redact_text(f"{where}: {problem}{hint}"))
    return False


@dataclass(frozen=True)
class UdfCall:
    """One message to send: payload, string headers, and the caller's reference
    (e.g. the source record) handed back with the result."""

    payload: bytes
    headers: Mapping[str, str]
    ref: Any = None


@dataclass(frozen=True)
class UdfOutput:
    """One output message of a reply."""

    payload: bytes
    headers: Mapping[str, str]
    index: int = 0  # position within a multipart reply


@dataclass(frozen=True)
class UdfReply:
    """A successful call. `outputs` is empty when the UDF chose to emit nothing;
    it has several entries when the UDF answered with a payload collection."""

    call: UdfCall
    outputs: tuple[UdfOutput, ...]
    attempts: int = 1


@dataclass(frozen=True)
class UdfFailure:
    """A call the UDF refused: for the dead-letter topic, with the gRPC status."""

    call: UdfCall
    code: str  # grpc.StatusCode name, e.g. INVALID_ARGUMENT
    details: str
    attempts: int
    address: str = ""

    def reason_headers(self) -> list[tuple[str, bytes]]:
        """Kafka headers that say what the UDF answered (the dead letter's reason is `udf-error`)."""
        return [
            ("x-udf-status", self.code.encode()),
            ("x-udf-status-details", redact_text(self.details).encode()),
            ("x-udf-address", self.address.encode()),
            ("x-udf-attempts", str(self.attempts).encode()),
        ]


UdfResult = UdfReply | UdfFailure


def outputs_of(payload: bytes, headers: Mapping[str, str]) -> tuple[UdfOutput, ...]:
    """The output messages a reply stands for: none when empty, one per entry of a collection."""
    if not payload:
        return ()
    if h.is_multipart(headers):
        inner = {k: v for k, v in headers.items() if k != h.CONTENT_TYPE}
        entries = GrpcPayloadCollection.FromString(payload).payload
        return tuple(UdfOutput(p, inner, i) for i, p in enumerate(entries) if p)
    return (UdfOutput(payload, dict(headers)),)


class _Outage:
    """Tracks a UDF outage so that many waiting calls make a few clear log lines."""

    def __init__(self, settings: UdfSettings, clock=time.monotonic) -> None:
        self.settings = settings
        self.clock = clock
        self.since: float | None = None
        self.last_log = 0.0
        self.waiting = 0
        self.back = asyncio.Event()  # set when a call succeeds: the others stop backing off

    async def pause(self, seconds: float) -> None:
        """Sleep `seconds`, or less if the UDF answers another call meanwhile."""
        try:
            await asyncio.wait_for(self.back.wait(), timeout=seconds)
        except asyncio.TimeoutError:
            pass

    def failed(self, code: grpc.StatusCode, details: str) -> None:
        self.back.clear()
        now = self.clock()
        where = f"UDF {self.settings.name} at {self.settings.address}"
        misconfigured = code in MISCONFIGURED
        if self.since is None:
            self.since = self.last_log = now
            if misconfigured:
                log.error("%s refuses the calls (%s: %s): %s; no message is sent on, they are held and retried"
                          " until it accepts them", where, code.name, details, _remedy(code))
            else:
                log.warning("%s is unreachable (%s: %s); holding messages and retrying until it is back",
                            where, code.name, details)
        elif now - self.last_log >= self.settings.log_every_s:
            self.last_log = now
            log.log(logging.ERROR if misconfigured else logging.WARNING,
                    "still waiting for %s: %s for %.0f s, %d message(s) held (%s: %s)", where,
                    "refusing the calls" if misconfigured else "unreachable", now - self.since, self.waiting,
                    code.name, details)

    def recovered(self) -> None:
        self.back.set()
        if self.since is not None:
            log.info("UDF %s at %s is reachable again after %.1f s",
                     self.settings.name, self.settings.address, self.clock() - self.since)
            self.since = None


def _remedy(code: grpc.StatusCode) -> str:
    if code is grpc.StatusCode.UNIMPLEMENTED:
        return ("the address does not serve the Streaming Runtime's MessagingService.requestReply"
                " (a wrong port, or another service there)")
    return "the UDF does not accept this client's credentials"


class _ThreadChannel:
    """A thread's own event loop, channel and outage state (asyncio objects belong to one loop)."""

    def __init__(self, settings: UdfSettings) -> None:
        self.loop = asyncio.new_event_loop()
        self.outage = _Outage(settings)
        self.channel: grpc.aio.Channel | None = None
        self.stub: MessagingServiceStub | None = None
        self.settings = settings

    def connect(self) -> MessagingServiceStub:
        if self.stub is None:  # created inside the loop, which the channel binds to
            self.channel = open_channel(self.settings)
            self.stub = MessagingServiceStub(self.channel)
        return self.stub

    def close(self) -> None:
        if self.channel is not None:
            self.loop.run_until_complete(self.channel.close())
        self.loop.close()


class UdfClient:
    """Calls one UDF. `call_batch` is synchronous (it runs a private event loop per
    thread), so it can be used from any Bytewax step, worker thread, or plain code."""

    def __init__(self, settings: UdfSettings) -> None:
        self.settings = settings
        self._local = threading.local()
        self._channels: list[_ThreadChannel] = []
        self._lock = threading.Lock()

    def _thread_channel(self) -> _ThreadChannel:
        own = getattr(self._local, "channel", None)
        if own is None:
            own = self._local.channel = _ThreadChannel(self.settings)
            with self._lock:
                self._channels.append(own)
        return own

    def call_batch(self, calls: Sequence[UdfCall]) -> list[UdfResult]:
        """One result per call, in order; returns once every call has its final result."""
        if not calls:
            return []
        own = self._thread_channel()
        return own.loop.run_until_complete(self._call_batch(own, calls))

    async def _call_batch(self, own: _ThreadChannel, calls: Sequence[UdfCall]) -> list[UdfResult]:
        stub = own.connect()
        slots = asyncio.Semaphore(max(1, self.settings.max_in_flight))
        own.outage.waiting = len(calls)
        results: list[UdfResult | None] = [None] * len(calls)

        async def in_sequence(positions: list[int]) -> None:
            for i in positions:
                results[i] = await self._call_one(stub, own.outage, calls[i], slots)

        await asyncio.gather(*(in_sequence(p) for p in self._sequences(calls)))
        return results  # type: ignore[return-value]

    def _sequences(self, calls: Sequence[UdfCall]) -> list[list[int]]:
        """Positions of the calls that must go one after the other: those of one key."""
        if not self.settings.ordered_by_key:
            return [[i] for i in range(len(calls))]
        by_key: dict[str, list[int]] = {}
        sequences: list[list[int]] = []
        for i, call in enumerate(calls):
            key = call.headers.get(h.MESSAGE_KEY)
            if key is None:
                sequences.append([i])
            elif key in by_key:
                by_key[key].append(i)
            else:
                by_key[key] = [i]
                sequences.append(by_key[key])
        return sequences

    async def _call_one(self, stub: MessagingServiceStub, outage: _Outage, call: UdfCall,
                        slots: asyncio.Semaphore) -> UdfResult:
        s = self.settings
        request = GrpcMessage(payload=call.payload, headers=dict(call.headers))
        attempts = busy = 0
        backoff = s.initial_backoff_s
        async with slots:
            while True:
                attempts += 1
                try:
                    reply = await stub.requestReply(request, timeout=s.deadline_s)
                except grpc.aio.AioRpcError as exc:
                    code, details = exc.code(), exc.details() or ""
                    if code in UNREACHABLE or code in MISCONFIGURED:
                        outage.failed(code, details)
                    elif code in BUSY and (s.busy_retries is None or busy < s.busy_retries):
                        busy += 1
                        log.warning("UDF %s at %s is busy (%s: %s); retry %d of %s",
                                    s.name, s.address, code.name, details, busy, s.busy_retries or "unlimited")
                    else:
                        outage.waiting -= 1
                        return UdfFailure(call, code.name, details, attempts, s.address)
                    await outage.pause(backoff * random.uniform(0.8, 1.2))
                    backoff = min(backoff * 2, s.max_backoff_s)
                    continue
                outage.recovered()
                outage.waiting -= 1
                try:
                    outputs = outputs_of(reply.payload, reply.headers)
                except Exception as exc:  # a multipart reply that does not decode
                    return UdfFailure(call, "INVALID_REPLY", f"multipart reply is not a GrpcPayloadCollection: {exc}",
                                      attempts, s.address)
                return UdfReply(call, outputs, attempts)

    def close(self) -> None:
        """Close every thread's channel and loop (call when no batch is running)."""
        with self._lock:
            channels, self._channels = self._channels, []
        for channel in channels:
            channel.close()
        self._local = threading.local()
