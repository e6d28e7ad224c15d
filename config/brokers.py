"""The checks a RabbitMQ URL must pass before a run (shown to users with
`config.pipeline.public_url`, never with its password).

The AMQP URL is read by pika at run time; what it would refuse, or silently
read as something else (no host: localhost; `/a/b`: vhost `a`), is refused
here with words a user can act on. pika is not imported: resolving a
pipeline must not load the AMQP client.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

# the query parameters pika's URLParameters takes
AMQP_URL_PARAMETERS = frozenset({
    "blocked_connection_timeout", "channel_max", "client_properties", "connection_attempts", "frame_max",
    "heartbeat", "locale", "retry_delay", "socket_timeout", "stack_timeout", "ssl_options", "tcp_options",
})
def amqp_url_problem(url: str) -> str | None:
    """What is wrong with an AMQP URL (in words that never repeat its password), or None."""
    form = "amqp://user:password@host:port/vhost"
    if any(c.isspace() for c in url):
        return f"it contains white space (expected {form})"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - reading it checks it
    except ValueError as exc:
        return f"{exc} (expected {form})"
    if parts.scheme.lower() not in ("amqp", "amqps"):
        return f"it must start with amqp:// or amqps:// (expected {form})"
    if not parts.hostname:
        return f"it names no host (expected {form})"
    if parts.path.count("/") > 1:
        return "the virtual host is one path segment: write a '/' inside it as %2F"
    for name, _ in parse_qsl(parts.query, keep_blank_values=True):
        if name not in AMQP_URL_PARAMETERS:
            return f"unknown URL parameter {name!r} (known: {', '.join(sorted(AMQP_URL_PARAMETERS))})"
    return None
