"""Dead letters: an input that cannot be used, unchanged, with headers saying why.

Every dead letter keeps the input's key, value and headers, and adds
`x-dlq-reason` (a stable code, then details) and where the input came from,
so that it can be inspected and replayed.
"""

from __future__ import annotations

from engine.records import KafkaOut, QueryResult, RawRecord


def dead_letter(record: RawRecord, reason: str, topic: str) -> KafkaOut:
    """A record read from Kafka, with its reason and its topic, partition, offset and timestamp."""
    headers = list(record.headers or [])
    headers += [
        ("x-dlq-reason", reason.encode()),
        ("x-source-topic", str(record.topic).encode()),
        ("x-source-partition", str(record.partition).encode()),
        ("x-source-offset", str(record.offset).encode()),
    ]
    if record.timestamp_ms is not None:
        headers.append(("x-source-timestamp", str(record.timestamp_ms).encode()))
    return KafkaOut(topic, record.key, record.value, headers)


def dead_letter_of_result(result: QueryResult, reason: str, topic: str) -> KafkaOut:
    """A query's result handed over in the same dataflow (it has no offset
    yet): with its reason and the output topic it is also written to."""
    out = result.out
    headers = [*out.headers, ("x-dlq-reason", reason.encode()), ("x-source-topic", out.topic.encode())]
    return KafkaOut(topic, out.key, out.value, headers)
