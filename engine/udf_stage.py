"""The SRP Processor's UDF stage: records in, output messages and dead letters out.

`UdfStage.process` is plain code, tested and reused without Bytewax
(`operators.udf` is the step around it). Its input is either a record read
from Kafka (`RawRecord`) or a query's result handed over in the same
dataflow (`QueryResult`, which already knows its window and identity). For
each one it calls the UDF (`connectors.udf_client`) with the Streaming
Runtime's headers (`udf.headers`) and turns the reply into:

- one output message per reply payload, to RabbitMQ (`AmqpMessage`: routing
  key from the record key, a `message_id` that is the same for every
  re-emission of the same result and different from every other result's)
  or to Kafka (`KafkaOut`: same key, reply headers), as the output Stream says;
- nothing, when the reply is empty (the UDF's "no output");
- a dead letter (the input unchanged, with the gRPC status in its headers)
  when the UDF refused it, or when AMQP cannot carry an output made of it
  (a routing key over 255 bytes, say: reason `amqp-encoding-error: ...`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Iterable, Literal, Sequence

import orjson

from connectors.udf_client import UdfCall, UdfClient, UdfFailure, UdfOutput, UdfReply
from engine.amqp_checks import encoding_problem
from engine.dead_letters import dead_letter, dead_letter_of_result
from engine.records import AmqpMessage, KafkaOut, QueryResult, RawRecord, stable_message_id
from runtime.metrics import UDF_CALLS
from udf import headers as h
from udf.headers import HeaderBuilder, decode_headers, key_text

UdfInput = RawRecord | QueryResult


@dataclass(frozen=True)
class UdfStageOutput:
    """What one batch of the stage gives: messages for the output Stream, dead letters."""

    messages: list[AmqpMessage | KafkaOut] = field(default_factory=list)
    dead: list[KafkaOut] = field(default_factory=list)


def routing_key(key: bytes | None, key_fields: Sequence[str] = ()) -> str:
    """The routing key of a message key: a JSON object key (Flink's `key.format=json`,
    e.g. `{"error_code":"C009"}`) gives its key fields' values joined by `.`
    (`C009`), so queues can bind by value; any other key is used as text."""
    text = key_text(key)
    if not text.startswith("{"):
        return text
    try:
        fields = orjson.loads(text)
    except orjson.JSONDecodeError:
        return text
    if not isinstance(fields, dict):
        return text
    names = [n for n in key_fields if n in fields] or list(fields)
    return ".".join("" if fields[n] is None else str(fields[n]) for n in names)


def identity_of(item: UdfInput, call_headers: dict[str, str]) -> tuple:
    """What stays the same for every re-emission of an input and differs between inputs.

    A handed-over result knows it (its window and whole group key, or its
    input's coordinates). A window result read back from Kafka is named by
    its window and its bytes: a re-emission is byte-identical, and two
    results of one window differ in their key or value. Any other record is
    named by its place in Kafka."""
    if isinstance(item, QueryResult):
        return item.identity
    start, end = call_headers.get(h.WINDOW_START), call_headers.get(h.WINDOW_END)
    if start is not None and end is not None:
        digest = hashlib.sha256((item.key or b"") + b"\x00" + (item.value or b"")).hexdigest()
        return ("window-record", start, end, digest)
    return ("record", item.topic, item.partition, item.offset)


@dataclass
class UdfStage:
    """Calls the UDF for a batch of inputs and shapes what comes back."""

    client: UdfClient | None  # None: no UDF (a broker bridge), records pass unchanged
    output_protocol: Literal["rabbitmq", "kafka"]
    output_topic: str  # Kafka topic when the output is Kafka (RabbitMQ: the sink knows its exchange)
    dlq_topic: str
    key_fields: tuple[str, ...] = ()
    header_builder: HeaderBuilder = field(default_factory=HeaderBuilder)
    processor: str = "udf"

    def call_for(self, item: UdfInput) -> UdfCall:
        if isinstance(item, QueryResult):
            out = item.out
            headers = self.header_builder.headers_for(out.topic, None, None, out.key, out.value, out.headers, None, item.window)
            return UdfCall(out.value or b"", headers, item)
        headers = self.header_builder.headers_for(item.topic, item.partition, item.offset, item.key, item.value,
                                                  item.headers, item.timestamp_ms)
        return UdfCall(item.value or b"", headers, item)

    def process(self, items: Sequence[UdfInput]) -> UdfStageOutput:
        """Output messages and dead letters for `items`, each in input order."""
        result = UdfStageOutput()
        calls = [self.call_for(i) for i in items]
        if self.client is None:
            replies = [UdfReply(c, (UdfOutput(c.payload, _own_headers(c.ref)),) if c.payload else ()) for c in calls]
        else:
            replies = self.client.call_batch(calls)
        for reply in replies:
            item: UdfInput = reply.call.ref
            if isinstance(reply, UdfFailure):
                UDF_CALLS.labels(self.processor, reply.code).inc()
                letter = self.dead_letter(item, "udf-error")
                letter.headers.extend(reply.reason_headers())
                result.dead.append(letter)
                continue
            UDF_CALLS.labels(self.processor, "OK" if reply.outputs else "OK_EMPTY").inc()
            for output in self.outputs_for(item, reply):
                problem = encoding_problem(output) if isinstance(output, AmqpMessage) else None
                if problem is None:
                    result.messages.append(output)
                else:
                    result.dead.append(self.dead_letter(item, problem))
        return result

    def dead_letter(self, item: UdfInput, reason: str) -> KafkaOut:
        if isinstance(item, QueryResult):
            return dead_letter_of_result(item, reason, self.dlq_topic)
        return dead_letter(item, reason, self.dlq_topic)

    def outputs_for(self, item: UdfInput, reply: UdfReply) -> Iterable[AmqpMessage | KafkaOut]:
        key = item.out.key if isinstance(item, QueryResult) else item.key
        identity = identity_of(item, dict(reply.call.headers))
        for output in reply.outputs:
            if self.output_protocol == "kafka":
                yield KafkaOut(self.output_topic, key, output.payload, [(k, v.encode()) for k, v in output.headers.items()])
                continue
            yield AmqpMessage(
                routing_key=routing_key(key, self.key_fields),
                body=output.payload,
                message_id=stable_message_id(*identity, output.index),
                headers=dict(output.headers),
                content_type=output.headers.get(h.CONTENT_TYPE),
            )

    def close(self) -> None:
        if self.client is not None:
            self.client.close()


def _own_headers(item: UdfInput) -> dict[str, str]:
    """An input's own headers as strings (what a stage without a UDF forwards)."""
    return decode_headers(item.out.headers if isinstance(item, QueryResult) else item.headers)
