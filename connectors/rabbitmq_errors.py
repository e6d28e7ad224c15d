"""The RabbitMQ sink's configuration error, importable without the AMQP
client: the dataflow's entry point catches it, and a pipeline with no UDF
processor to run should not pay for loading pika and gRPC."""

from __future__ import annotations

from runtime.logs import FatalError


class RabbitMQConfigError(FatalError):
    """RabbitMQ refused the configuration (credentials, vhost, exchange type, TLS): retrying will not help."""
