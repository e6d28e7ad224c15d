"""Names of the message headers that a Streaming Runtime UDF receives.

Streaming Runtime's processor turned every Spring message header into a
string entry of `GrpcMessage.headers`; these are the names its UDFs saw,
so existing UDFs keep reading the same keys. Times are epoch milliseconds
written as decimal strings.
"""

from __future__ import annotations

from typing import Mapping

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
