"""Names of the message headers that a Streaming Runtime UDF receives.

Streaming Runtime's processor turned every Spring message header into a
string entry of `GrpcMessage.headers`; these are the names its UDFs saw,
so existing UDFs keep reading the same keys. Times are epoch milliseconds
written as decimal strings. `HeaderBuilder` makes a call's headers from a
record the way that processor did.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import orjson

from udf.times import epoch_ms

CONTENT_TYPE = "contentType"  # e.g. application/json; multipart/<subtype> for a payload collection
MESSAGE_KEY = "kafka_receivedMessageKey"  # the Kafka record key, as text (Spring Kafka's inbound name)
TOPIC = "kafka_receivedTopic"
PARTITION = "kafka_receivedPartitionId"
OFFSET = "kafka_offset"
RECORD_TIMESTAMP = "kafka_receivedTimestamp"
EVENT_TIME = "eventtime"
WATERMARK = "watermark"
WINDOW_START = "windowStartTime"
WINDOW_END = "windowEndTime"
PARTIAL = "partial"  # "true" when an aggregate window was released before it closed

JSON = "application/json"
MULTIPART_PREFIX = "multipart/"


def is_multipart(headers: Mapping[str, str]) -> bool:
    """Whether the payload is a serialized `GrpcPayloadCollection` (an aggregate window)."""
    return headers.get(CONTENT_TYPE, "").lower().startswith(MULTIPART_PREFIX)


def multipart_of(inner_content_type: str) -> str:
    """The content type of a collection whose entries are `inner_content_type`:
    `application/json` becomes `multipart/json`."""
    subtype = inner_content_type.split(";", 1)[0].strip().rsplit("/", 1)[-1] or "octet-stream"
    return MULTIPART_PREFIX + subtype


def key_text(key: bytes | str | None) -> str:
    """A message key as header text (invalid UTF-8 kept readable, not dropped)."""
    if key is None:
        return ""
    if isinstance(key, str):
        return key
    return key.decode("utf-8", errors="backslashreplace")


def request_headers(
    *,
    key: bytes | str | None = None,
    content_type: str = JSON,
    event_time_ms: int | None = None,
    watermark_ms: int | None = None,
    window_start_ms: int | None = None,
    window_end_ms: int | None = None,
    topic: str | None = None,
    partition: int | None = None,
    offset: int | None = None,
    timestamp_ms: int | None = None,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Headers as Streaming Runtime's processor passed them: the message's own
    headers (`extra`) as strings, then content type, key, Kafka coordinates,
    event time, watermark and window bounds, each only when known."""
    headers = dict(extra or {})
    named = {
        CONTENT_TYPE: content_type,
        MESSAGE_KEY: key_text(key) if key is not None else None,
        TOPIC: topic,
        PARTITION: partition,
        OFFSET: offset,
        RECORD_TIMESTAMP: timestamp_ms,
        EVENT_TIME: event_time_ms,
        WATERMARK: watermark_ms,
        WINDOW_START: window_start_ms,
        WINDOW_END: window_end_ms,
    }
    headers.update({name: str(value) for name, value in named.items() if value is not None})
    return headers


def decode_headers(headers: Sequence[tuple[str, bytes | str | None]] | None) -> dict[str, str]:
    """Kafka record headers as strings (the last value wins for a repeated name)."""
    out: dict[str, str] = {}
    for name, value in headers or ():
        if value is None:
            out[name] = ""
        else:
            out[name] = value if isinstance(value, str) else value.decode("utf-8", errors="backslashreplace")
    return out


def flink_time_ms(value: Any) -> int | None:
    """Epoch millis of a JSON time (`udf.times.epoch_ms`), None when it is not one."""
    try:
        return epoch_ms(value)
    except ValueError:
        return None


def window_from_value(value: bytes | None) -> tuple[int, int] | None:
    """(start, end) of the window a JSON count record describes, when it names one."""
    if not value:
        return None
    try:
        record = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(record, dict):
        return None
    start, end = flink_time_ms(record.get("window_start")), flink_time_ms(record.get("window_end"))
    return (start, end) if start is not None and end is not None else None


@dataclass
class HeaderBuilder:
    """The headers of a UDF call for one record, as Streaming Runtime's processor sent them.

    The window bounds are the caller's when it knows them (a query's result
    handed over in the same dataflow), else the record's
    `windowStartTime`/`windowEndTime` headers, else the JSON value's
    `window_start`/`window_end`. The event time is the window's last
    millisecond (Flink's row time of a window result), else the record
    timestamp. The watermark is this stage's view: the largest event time
    seen on the record's partition minus `watermark_delay_ms`.
    """

    content_type: str = JSON
    watermark_delay_ms: int = 0
    _partition_max: dict[tuple[str, int | None], int] = field(default_factory=dict)

    def headers_for(self, topic: str, partition: int | None, offset: int | None, key: bytes | None, value: bytes | None,
                    headers: Sequence[tuple[str, bytes]] | None, timestamp_ms: int | None,
                    window: tuple[int, int] | None = None) -> dict[str, str]:
        own = decode_headers(headers)
        if window is None:
            start, end = _int_or_none(own.get(WINDOW_START)), _int_or_none(own.get(WINDOW_END))
            if start is None or end is None:
                start, end = window_from_value(value) or (None, None)
        else:
            start, end = window
        event_time = end - 1 if end is not None else timestamp_ms
        watermark = None
        if event_time is not None:
            seen = max(self._partition_max.get((topic, partition), event_time), event_time)
            self._partition_max[(topic, partition)] = seen
            watermark = seen - self.watermark_delay_ms
        return request_headers(
            key=key, content_type=own.get(CONTENT_TYPE, self.content_type), event_time_ms=event_time,
            watermark_ms=watermark, window_start_ms=start, window_end_ms=end, topic=topic,
            partition=partition, offset=offset, timestamp_ms=timestamp_ms, extra=own,
        )


def _int_or_none(text: str | None) -> int | None:
    try:
        return int(text) if text not in (None, "") else None
    except ValueError:
        return None
