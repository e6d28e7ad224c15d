"""(a) The transport limit: one confluent-kafka consumer reads every
partition to its end and touches nothing but the message count."""

from __future__ import annotations

from benchmarks.contenders.common import arguments, consumer_tuning
from benchmarks.kafka_read import batches


def main() -> None:
    args = arguments(__doc__ or "")
    n = 0
    for batch in batches(args.bootstrap, args.input, extra=consumer_tuning(args.fetch_queue_backoff_ms)):
        n += len(batch)
    print(f"read {n} records")


if __name__ == "__main__":
    main()
