"""RabbitMQ output, the way Spring Cloud Stream's Rabbit binder wrote it.

The output Stream's `spec.name` is a durable topic exchange; consumers bind
their own queues to it (`required_queues` declares some up front, like the
binder's `requiredGroups`, so that nothing published before a consumer
exists is dropped by the exchange). Every message is persistent, carries its
key as routing key, its headers as AMQP headers, and a stable `message_id`
so that consumers can drop repeats.

Delivery: publisher confirms. `RabbitPublisher.publish_batch` returns only
when the broker has confirmed every message of the batch. When the
connection breaks (RabbitMQ restarted, network), it reconnects with
exponential backoff and jitter (a log line each time, never a tight loop)
and publishes again every message not yet confirmed: nothing is lost, and a
repeat is always the same message with the same `message_id`. A broker that
is down at start is waited for, with a log line now and then; wrong
credentials, a missing virtual host, an exchange of another type, or a TLS
handshake that fails (an untrusted certificate, a host name it does not
carry, a client certificate refused) are configuration errors, raised as
`RabbitMQConfigError` with a clear message.

`amqps://` URLs connect over TLS (`connection_parameters`): the CA, client
certificate and host name check of the stream's `TlsSettings`, else the
system's CAs.

A message AMQP cannot carry (a routing key over 255 bytes, a header name
over 255 bytes, text that is not UTF-8) is a problem of that message, not
of the connection: `engine.amqp_checks` says so before publishing, and the UDF
stage dead-letters its input record with reason `amqp-encoding-error: ...`.
Should one reach the publisher anyway, it is skipped, logged and counted
(`iot_rabbitmq_rejected`), and `publish_batch` returns it.

Unroutable messages: the exchange is the contract, as with Spring Cloud
Stream's binder; consumers bind their queues to it (`required_queues`
declares some up front). A message that no queue is bound for is dropped by
RabbitMQ even though it is confirmed; messages are published `mandatory`, so
the broker says so, and each is counted (`iot_rabbitmq_unroutable`) and
logged (at most every `log_every_s`), never published again.

`RabbitMQSink` is the Bytewax sink around the publisher.
"""

from __future__ import annotations

import logging
import random
import struct
import time
from dataclasses import dataclass
from typing import Sequence

import pika
import pika.exceptions as px
from bytewax.outputs import DynamicSink, StatelessSinkPartition

from config.pipeline import TlsSettings, public_url
from connectors.rabbitmq_errors import RabbitMQConfigError
from connectors.tls import CLOSED_MESSAGE, TlsConfigError, closed_during_tls, ssl_context, tls_failure
from engine.amqp_checks import encoding_problem
from engine.records import AmqpMessage, stable_message_id
from runtime.metrics import RABBITMQ_PUBLISHED, RABBITMQ_REJECTED, RABBITMQ_UNROUTABLE

__all__ = ["AmqpMessage", "RabbitMQConfigError", "RabbitMQSink", "RabbitPublisher", "connection_parameters",
           "encoding_problem", "stable_message_id"]

log = logging.getLogger(__name__)

PERSISTENT = 2  # AMQP delivery mode
DEFAULT_HEARTBEAT_S = 600  # a blocking client only answers heartbeats while publishing: keep idle gaps legal


def properties_of(message: AmqpMessage) -> pika.BasicProperties:
    """The AMQP properties a message is published with: persistent, its id, headers and content type."""
    return pika.BasicProperties(
        delivery_mode=PERSISTENT,
        message_id=message.message_id,
        headers=dict(message.headers) or None,
        content_type=message.content_type,
        timestamp=message.timestamp_s,
    )


ENCODING_ERRORS = (px.ShortStringTooLong, UnicodeError, TypeError, ValueError, OverflowError, struct.error)


@dataclass(frozen=True)
class Rejected:
    """A message the publisher could not encode, and why."""

    message: AmqpMessage
    reason: str


def connection_parameters(url: str, tls: TlsSettings | None = None) -> pika.URLParameters:
    """pika's parameters for an AMQP URL; an `amqps://` one gets an
    `ssl.SSLContext` from `tls` (the system's CAs when None) that checks the
    certificate and its host name. Raises RabbitMQConfigError for a
    malformed URL or TLS material that cannot be used."""
    try:
        params = pika.URLParameters(url)
    except Exception as exc:  # ValueError, or worse for text that is no URL at all
        raise RabbitMQConfigError(f"malformed AMQP URL {public_url(url)}: {exc or type(exc).__name__}") from None
    if "heartbeat" not in url:
        params.heartbeat = DEFAULT_HEARTBEAT_S
    if params.ssl_options is not None:
        tls = tls or TlsSettings()
        try:
            context = ssl_context(tls)
        except TlsConfigError as exc:
            raise RabbitMQConfigError(f"RabbitMQ at {_endpoint(params)}: {exc}") from None
        params.ssl_options = pika.SSLOptions(context, tls.server_name or params.host)
    return params


def _endpoint(params: pika.URLParameters) -> str:
    return f"{params.host}:{params.port}{'' if params.virtual_host == '/' else ' vhost ' + params.virtual_host}"


class RabbitPublisher:
    """Publishes batches to one durable topic exchange with confirms; reconnects on its own."""

    def __init__(
        self,
        url: str,
        exchange: str,
        *,
        required_queues: Sequence[str] = (),
        initial_backoff_s: float = 0.5,
        max_backoff_s: float = 10.0,
        log_every_s: float = 10.0,
        connect_timeout_s: float | None = None,  # None: wait for the broker as long as it takes
        tls: TlsSettings | None = None,
    ) -> None:
        self.params = connection_parameters(url, tls)
        self.exchange = exchange
        self.required_queues = tuple(required_queues)
        self.initial_backoff_s = initial_backoff_s
        self.max_backoff_s = max_backoff_s
        self.log_every_s = log_every_s
        self.connect_timeout_s = connect_timeout_s
        self._connection: pika.BlockingConnection | None = None
        self._channel = None
        self.published = 0  # messages confirmed since start
        self.unroutable = 0  # of those, the ones no queue was bound for
        self.rejected = 0  # messages AMQP could not encode, skipped
        self._last_unroutable_log = -float("inf")
        self.processor = exchange  # the metrics label

    # -- connection -------------------------------------------------------------------------

    def _open(self) -> None:
        """One attempt: connect, enable confirms, declare the exchange (and required queues)."""
        connection = pika.BlockingConnection(self.params)
        try:
            channel = connection.channel()
            channel.confirm_delivery()
            channel.exchange_declare(self.exchange, exchange_type="topic", durable=True)
            for queue in self.required_queues:
                channel.queue_declare(queue, durable=True)
                channel.queue_bind(queue, self.exchange, routing_key="#")
        except px.ChannelClosedByBroker as exc:
            connection.close()
            raise RabbitMQConfigError(
                f"RabbitMQ at {_endpoint(self.params)} refused exchange {self.exchange!r}"
                f" (durable topic): {exc.reply_code} {exc.reply_text}"
            ) from None
        except BaseException:
            if connection.is_open:
                connection.close()
            raise
        self._connection, self._channel = connection, channel

    def connect(self) -> None:
        """Connect, waiting with backoff while the broker is unreachable."""
        if self._connection is not None and self._connection.is_open:
            return
        started = last_log = time.monotonic()
        backoff = self.initial_backoff_s
        attempts = closed_in_tls = 0
        while True:
            attempts += 1
            try:
                self._open()
            except (px.ProbableAuthenticationError, px.AuthenticationError) as exc:
                raise RabbitMQConfigError(f"RabbitMQ at {_endpoint(self.params)} refused the credentials: {exc}") from None
            except px.ProbableAccessDeniedError as exc:
                raise RabbitMQConfigError(f"RabbitMQ at {_endpoint(self.params)} denied access: {exc}") from None
            except (px.AMQPError, OSError) as exc:
                if isinstance(exc, px.ConnectionClosedByBroker) and exc.reply_code in (403, 530):
                    raise RabbitMQConfigError(
                        f"RabbitMQ at {_endpoint(self.params)} refused the connection: {exc.reply_code} {exc.reply_text}"
                    ) from None
                if (problem := tls_failure(exc)) is not None:
                    raise RabbitMQConfigError(f"RabbitMQ at {_endpoint(self.params)}: {problem}") from None
                closed_in_tls = closed_in_tls + 1 if closed_during_tls(exc) else 0
                if closed_in_tls >= 2:
                    raise RabbitMQConfigError(f"RabbitMQ at {_endpoint(self.params)}: {CLOSED_MESSAGE}") from None
                now = time.monotonic()
                waited = now - started
                if self.connect_timeout_s is not None and waited >= self.connect_timeout_s:
                    raise ConnectionError(
                        f"RabbitMQ at {_endpoint(self.params)} still unreachable after {waited:.0f} s: {_describe(exc)}"
                    ) from None
                if attempts == 1:
                    log.warning("RabbitMQ at %s is unreachable (%s); retrying, messages are held until it is back",
                                _endpoint(self.params), _describe(exc))
                elif now - last_log >= self.log_every_s:
                    last_log = now
                    log.warning("still waiting for RabbitMQ at %s: unreachable for %.0f s (%s)",
                                _endpoint(self.params), waited, _describe(exc))
                time.sleep(backoff * random.uniform(0.8, 1.2))
                backoff = min(backoff * 2, self.max_backoff_s)
                continue
            if attempts > 1:
                log.info("connected to RabbitMQ at %s after %.1f s", _endpoint(self.params), time.monotonic() - started)
            return

    def _drop_connection(self) -> None:
        connection, self._connection, self._channel = self._connection, None, None
        if connection is not None and connection.is_open:
            try:
                connection.close()
            except Exception:  # already broken: nothing to tidy
                pass

    # -- publishing -------------------------------------------------------------------------

    def publish_batch(self, messages: Sequence[AmqpMessage]) -> list[Rejected]:
        """Publish every message and return when all are confirmed; returns the
        messages AMQP could not encode (skipped, see the module).

        Messages are confirmed one by one, in order, so after a broken
        connection exactly the unconfirmed rest is published again, after a
        pause that doubles (with jitter) while losses repeat without progress."""
        position = 0
        backoff = self.initial_backoff_s
        rejected: list[Rejected] = []
        while position < len(messages):
            self.connect()
            progress = position
            try:
                self._connection.process_data_events(0)  # notice a connection the broker closed while idle
                while position < len(messages):
                    message = messages[position]
                    try:
                        self._channel.basic_publish(self.exchange, message.routing_key, message.body,
                                                    properties_of(message), mandatory=True)
                    except px.UnroutableError:
                        self._count_unroutable(message)
                    except ENCODING_ERRORS as exc:  # before anything was sent: the connection is fine
                        rejected.append(self._reject(message, exc))
                        position += 1
                        continue
                    position += 1
                    self.published += 1
                backoff = self.initial_backoff_s
            except px.NackError:
                log.warning("RabbitMQ rejected message %s (nack); publishing it again in %.1f s",
                            messages[position].message_id, backoff)
                time.sleep(backoff)
                backoff = min(backoff * 2, self.max_backoff_s)
            except (px.AMQPError, OSError) as exc:
                if position > progress:
                    backoff = self.initial_backoff_s
                pause = backoff * random.uniform(0.8, 1.2)
                log.warning("lost the RabbitMQ connection to %s (%s); reconnecting in %.1f s to publish the %d"
                            " unconfirmed message(s)", _endpoint(self.params), _describe(exc), pause,
                            len(messages) - position)
                self._drop_connection()
                time.sleep(pause)
                backoff = min(backoff * 2, self.max_backoff_s)
        return rejected

    def _count_unroutable(self, message: AmqpMessage) -> None:
        self.unroutable += 1
        RABBITMQ_UNROUTABLE.labels(self.processor).inc()
        now = time.monotonic()
        if now - self._last_unroutable_log >= self.log_every_s:
            self._last_unroutable_log = now
            log.warning("RabbitMQ dropped message %s (routing key %r): no queue is bound to exchange %r for it;"
                        " %d dropped so far. Bind a queue, or list it in required_queues, to keep such messages",
                        message.message_id, message.routing_key[:80], self.exchange, self.unroutable)

    def _reject(self, message: AmqpMessage, exc: BaseException) -> Rejected:
        self.rejected += 1
        RABBITMQ_REJECTED.labels(self.processor).inc()
        reason = encoding_problem(message) or f"amqp-encoding-error: {type(exc).__name__}: {exc}"
        log.error("message %s cannot be sent to RabbitMQ and is skipped: %s", message.message_id, reason)
        return Rejected(message, reason)

    def close(self) -> None:
        self._drop_connection()


def _describe(exc: BaseException) -> str:
    """The innermost cause in a few words (pika nests the socket error in two wrappers)."""
    root = exc
    while True:
        inner = getattr(root, "exception", None)  # pika's connector errors keep the cause here
        if not isinstance(inner, BaseException) and root.args and isinstance(root.args[0], BaseException):
            inner = root.args[0]
        if not isinstance(inner, BaseException):
            break
        root = inner
    if isinstance(root, OSError) and root.strerror:
        return root.strerror
    text = str(root) or repr(root)
    return text if type(root).__name__ in text else f"{type(root).__name__}: {text}"


class RabbitMQSinkPartition(StatelessSinkPartition[AmqpMessage]):
    def __init__(self, publisher: RabbitPublisher, processor: str) -> None:
        self.publisher = publisher
        self.publisher.processor = processor
        self.confirmed = RABBITMQ_PUBLISHED.labels(processor)

    def write_batch(self, items: list[AmqpMessage]) -> None:
        rejected = self.publisher.publish_batch(items)
        self.confirmed.inc(len(items) - len(rejected))

    def close(self) -> None:
        self.publisher.close()


class RabbitMQSink(DynamicSink[AmqpMessage]):
    """Bytewax sink: each worker publishes its items to the exchange with confirms.

    It connects at the first batch, so a broker that is down at start delays
    only this output, not the rest of the dataflow."""

    def __init__(self, url: str, exchange: str, *, processor: str = "", **publisher_options) -> None:
        self.url = url
        self.exchange = exchange
        self.processor = processor or exchange  # the metrics label
        self.publisher_options = publisher_options

    def build(self, step_id: str, worker_index: int, worker_count: int) -> RabbitMQSinkPartition:
        publisher = RabbitPublisher(self.url, self.exchange, **self.publisher_options)
        log.info("%s: publishing to RabbitMQ exchange %r at %s", step_id, self.exchange, _endpoint(publisher.params))
        return RabbitMQSinkPartition(publisher, self.processor)
