"""The late output: late records arrive as Kafka coordinates, are read back
(`connectors.late_fetch`) and written unchanged to `<input topic>-late`.

A sink, so that the consumer that reads them back and the producer that
writes them are opened by the worker at run time and closed with it.
"""

from __future__ import annotations

from typing import Mapping

from bytewax.outputs import DynamicSink, StatelessSinkPartition

from connectors.kafka_sink import KafkaOutPartition, KafkaOutSink
from connectors.late_fetch import LateRecordFetcher
from engine.records import LateRecord


class LateRecordPartition(StatelessSinkPartition[LateRecord]):
    def __init__(self, fetcher: LateRecordFetcher, out: KafkaOutPartition) -> None:
        self.fetcher = fetcher
        self.out = out

    def write_batch(self, items: list[LateRecord]) -> None:
        self.out.write_batch(self.fetcher.fetch(items))

    def close(self) -> None:
        try:
            self.fetcher.close()
        finally:
            self.out.close()


class LateRecordSink(DynamicSink[LateRecord]):
    """Reads late records back from `bootstrap` and writes them to `late_topic`."""

    def __init__(self, bootstrap: str, late_topic: str, config: Mapping[str, str] | None = None) -> None:
        self.bootstrap = bootstrap
        self.late_topic = late_topic
        self.config = dict(config or {})

    def build(self, step_id: str, worker_index: int, worker_count: int) -> LateRecordPartition:
        out = KafkaOutSink(self.bootstrap, self.config).build(step_id, worker_index, worker_count)
        return LateRecordPartition(LateRecordFetcher(self.bootstrap, self.late_topic, self.config), out)
