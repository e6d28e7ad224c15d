"""(b) The Python limit: one process, one loop - consume, decode each record,
keep type='ERROR', count per (1-minute window, error_code). No watermarks,
no lateness, no state store: the least work the query can be done with in
plain Python, record by record."""

from __future__ import annotations

from collections import defaultdict

from benchmarks.contenders.common import WINDOW_MS, arguments, consumer_tuning, publish_counts, record_decoder
from benchmarks.kafka_read import batches


def main() -> None:
    args = arguments(__doc__ or "")
    decode = record_decoder(args.format)
    counts: defaultdict[tuple[int, str], int] = defaultdict(int)
    for batch in batches(args.bootstrap, args.input, extra=consumer_tuning(args.fetch_queue_backoff_ms)):
        for msg in batch:
            record = decode(msg.value())
            if record["type"] == "ERROR":
                ts = record["ts"]
                counts[(ts - ts % WINDOW_MS, record["error_code"])] += 1
    if args.output:
        publish_counts(args.bootstrap, args.output, counts)
    print(f"{len(counts)} counts")


if __name__ == "__main__":
    main()
