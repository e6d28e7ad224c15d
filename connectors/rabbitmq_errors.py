"""The RabbitMQ sink's configuration error, importable without the AMQP
client: the dataflow's entry point catches it, and a pipeline with no UDF
processor to run should not pay for loading pika and gRPC."""

from __future__ import annotations


class RabbitMQConfigError(RuntimeError):
    """RabbitMQ refused the configuration (credentials, vhost, exchange type): retrying will not help."""
