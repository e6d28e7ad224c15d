"""`udf_processor`: an SRP Processor's UDF stage as one composite Bytewax step.

    records (read from Kafka, or a query's results of the same dataflow)
    -> UdfStage (requestReply, bounded in flight) -> UdfOut(messages, dead)
"""

from __future__ import annotations

from dataclasses import dataclass
from operator import attrgetter

import bytewax.operators as op
from bytewax.dataflow import Stream, operator

from engine.records import AmqpMessage, KafkaOut
from engine.udf_stage import UdfInput, UdfStage, UdfStageOutput


@dataclass(frozen=True)
class UdfOut:
    """The streams a UDF stage produces."""

    messages: Stream[AmqpMessage | KafkaOut]
    """What the UDF answered, for the output Stream (RabbitMQ messages or Kafka records, as it says)."""
    dead: Stream[KafkaOut]
    """Inputs the UDF refused, for the input's dead-letter topic."""


@operator
def udf_processor(step_id: str, up: Stream[UdfInput], stage: UdfStage) -> UdfOut:
    """Call the UDF for each batch of `up`."""
    outputs: Stream[UdfStageOutput] = op.flat_map_batch("call", up, lambda items: [stage.process(items)])
    return UdfOut(op.flat_map("messages", outputs, attrgetter("messages")), op.flat_map("dead", outputs, attrgetter("dead")))
