"""What an AMQP frame can carry, checked before a message is published.

AMQP 0-9-1 writes the routing key, the message id, the content type and the
name of every header as a short string: at most 255 bytes of UTF-8. A
message that breaks a rule (a group key of 300 characters as routing key,
say) cannot be sent at all, on any connection; it is a dead letter of its
own, never a reason to reconnect. Plain code, without the AMQP client, so
that the UDF stage can route it.
"""

from __future__ import annotations

from engine.records import AmqpMessage

SHORT_STRING_MAX = 255  # bytes of an AMQP short string


def _utf8_size(text: str) -> int | None:
    """Bytes of `text` in UTF-8, None when it has no UTF-8 form (a lone surrogate)."""
    try:
        return len(text.encode())
    except UnicodeEncodeError:
        return None


def encoding_problem(message: AmqpMessage) -> str | None:
    """Why AMQP cannot carry `message`, as a dead-letter reason (`amqp-encoding-error: ...`), or None."""
    short = [("the routing key", message.routing_key), ("the message id", message.message_id)]
    if message.content_type is not None:
        short.append(("the content type", message.content_type))
    short += [(f"header name {name[:40]!r}", name) for name in message.headers]
    for what, text in short:
        size = _utf8_size(text)
        if size is None:
            return f"amqp-encoding-error: {what} is not valid UTF-8 text"
        if size > SHORT_STRING_MAX:
            return f"amqp-encoding-error: {what} is {size} bytes, AMQP allows {SHORT_STRING_MAX}"
    for name, value in message.headers.items():
        if not isinstance(value, str) or _utf8_size(value) is None:
            return f"amqp-encoding-error: the value of header {name[:40]!r} is not valid UTF-8 text"
    return None
