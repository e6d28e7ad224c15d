"""(e) Quix Streams doing the query its documented way: deserialize, filter,
a 1-minute tumbling window with 3 s grace on the `ts` field, `count()`,
`final()`, results to a topic. Quix stops on a count of outputs or an idle
timeout, not at the end of its input; this program counts the input records
and stops the application after the last one, so no idle wait is timed.

Changelog topics are off: the benchmark compares processing, and the package
is timed without its recovery store too. State stays in RocksDB as usual.
"""

from __future__ import annotations

import tempfile
import uuid
from datetime import timedelta
from typing import Any

from quixstreams import Application
from quixstreams.models import Deserializer

from benchmarks.contenders.common import arguments, consumer_tuning, record_decoder


class ConfluentAvro(Deserializer):
    """Confluent-framed Avro without a registry: the seed's writer schema."""

    def __init__(self) -> None:
        super().__init__()
        self.decode = record_decoder("avro-confluent")

    def __call__(self, value: bytes, ctx: Any) -> dict:
        return self.decode(value)


def main() -> None:
    args = arguments(__doc__ or "")
    with tempfile.TemporaryDirectory(prefix="bench-quix-") as state_dir:
        app = Application(
            broker_address=args.bootstrap, consumer_group=f"bench-quix-{uuid.uuid4().hex[:8]}",
            auto_offset_reset="earliest", state_dir=state_dir, use_changelog_topics=False, loglevel="WARNING",
            consumer_extra_config=consumer_tuning(args.fetch_queue_backoff_ms),
        )
        source = app.topic(
            args.input,
            value_deserializer=ConfluentAvro() if args.format == "avro-confluent" else "json",
            timestamp_extractor=lambda value, headers, timestamp, kind: value["ts"],
        )
        sink = app.topic(args.output, value_serializer="json")
        seen = 0

        def stop_after_last(value: dict) -> None:
            nonlocal seen
            seen += 1
            if seen == args.events:
                app.stop()

        sdf = app.dataframe(source)
        sdf = sdf.update(stop_after_last)
        sdf = sdf.filter(lambda value: value["type"] == "ERROR")
        sdf = sdf.tumbling_window(timedelta(minutes=1), grace_ms=timedelta(seconds=3)).count().final()
        sdf.to_topic(sink)
        app.run()
    print(f"read {seen} records")


if __name__ == "__main__":
    main()
