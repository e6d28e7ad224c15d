"""End-to-end benchmark of the IoT monitoring dataflow (`make bench`).

    python benchmarks/e2e.py [--events N] [--partitions P] [--formats avro-confluent,json] [--skip e,f] [--repeat R]
    python benchmarks/e2e.py --secure [scram|plain|mtls] --skip a,b,d,e,f [--repeat R]
    python benchmarks/e2e.py --mode latency [--rate 20000] [--duration 200]
    python benchmarks/e2e.py --mode memory [--events 10000000]

Throughput (the default mode) prints events/s and peak RSS of each
contender, whether their counts agree with the generator's, and ends with
two machine-readable lines: the json ratios, then the avro-confluent ones:

    json ratios c/a=.. c/b=.. c/e=.. c/f=.. d/c=..
    ratios c/a=.. c/b=.. c/e=.. c/f=.. d/c=..

With `--secure`, (c) also runs as (s), over the local stack's secured
listener (`python -m cli.main stack up --secure`; SASL_SSL with SCRAM by
default), on the same data; a last line gives `s/c` per format:

    secure ratios json s/c=.. avro-confluent s/c=..

It needs a Kafka broker (`python -m cli.main stack up` starts one).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks.throughput import CONTENDERS, FormatReport, Setup, measure  # noqa: E402
from connectors.kafka_admin import BrokerUnavailable  # noqa: E402

FORMATS = ("json", "avro-confluent")  # avro-confluent (the seed's) last: its ratios are the last line
TARGETS = {  # ratio -> (avro-confluent, json) minimum
    "c/a": (0.5, 0.5),
    "c/b": (2.0, 1.0),
    "c/e": (5.0, 5.0),
    "c/f": (5.0, 5.0),
    "d/c": (1.0, 1.0),
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mode", choices=("throughput", "latency", "memory"), default="throughput")
    p.add_argument("--bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"))
    p.add_argument("--events", type=int, default=None,
                   help="events to load (default 2,000,000 for throughput, 10,000,000 for memory)")
    p.add_argument("--partitions", type=int, default=4)
    p.add_argument("--formats", default=",".join(FORMATS), help="comma-separated: avro-confluent, json")
    p.add_argument("--skip", default="", help=f"contenders to leave out, comma-separated letters of {','.join(CONTENDERS)}")
    p.add_argument("--event-rate", type=float, default=1000.0,
                   help="event-time rate of the loaded data, events per second of `ts` (default: %(default)s)")
    p.add_argument("--rate", type=float, default=20000.0, help="latency mode: live events per second")
    p.add_argument("--duration", type=float, default=200.0, help="latency mode: seconds of live traffic")
    p.add_argument("--fetch-queue-backoff-ms", type=int, default=10,
                   help="librdkafka fetch.queue.backoff.ms given to every contender alike, the package through its "
                        "Stream's ddl.properties; -1 keeps the library default of 1000 ms (default: %(default)s)")
    p.add_argument("--repeat", type=int, default=1, help="runs per contender, the fastest counts (default: %(default)s)")
    p.add_argument("--secure", nargs="?", const="scram", choices=("scram", "plain", "mtls"),
                   help="also run (c) over the local stack's secured listener of the same broker (IOT_STACK_DIR): "
                        "SASL_SSL with SCRAM-SHA-512 (scram, the default), SASL_SSL with PLAIN, or mutual TLS")
    p.add_argument("--keep-topics", action="store_true", help="leave the benchmark's topics in Kafka")
    p.add_argument("--timeout", type=float, default=1800.0, help="seconds any one contender may take")
    return p.parse_args(argv)


def formats_of(text: str) -> tuple[str, ...]:
    wanted = [f.strip() for f in text.split(",") if f.strip()]
    unknown = [f for f in wanted if f not in FORMATS]
    if unknown:
        raise SystemExit(f"e2e: unknown format {', '.join(unknown)} (choose from {', '.join(FORMATS)})")
    return tuple(f for f in FORMATS if f in wanted)


def skipped(text: str) -> frozenset[str]:
    letters = frozenset(x.strip() for x in text.split(",") if x.strip())
    unknown = letters - set(CONTENDERS)
    if unknown:
        raise SystemExit(f"e2e: unknown contender {', '.join(sorted(unknown))} (choose from {', '.join(CONTENDERS)})")
    return letters


def target_notes(report: FormatReport) -> list[str]:
    column = 0 if report.fmt == "avro-confluent" else 1
    notes = []
    for name, minimums in TARGETS.items():
        value = report.ratio(name)
        if value is None:
            continue
        goal = minimums[column]
        mark = "met" if (value > goal if name == "d/c" else value >= goal) else f"missed by {goal / value:.2f}x"
        notes.append(f"{name} {value:.2f} (target {'>' if name == 'd/c' else '>='} {goal:g}: {mark})")
    return notes


def throughput(args: argparse.Namespace) -> int:
    setup = Setup(
        bootstrap=args.bootstrap, events=args.events or 2_000_000, partitions=args.partitions,
        formats=formats_of(args.formats), skip=skipped(args.skip), events_per_s=args.event_rate,
        keep_topics=args.keep_topics, timeout_s=args.timeout, fetch_queue_backoff_ms=args.fetch_queue_backoff_ms,
        repeat=max(1, args.repeat), secure=secure_settings(args.secure),
    )
    reports = measure(setup)
    print()
    for report in reports:
        print(f"{report.fmt} targets: " + "; ".join(target_notes(report)))
        cpu = [(name, report.cpu_ratio(name)) for name in ("c/a", "c/b", "c/e", "c/f")]
        print(f"{report.fmt} per CPU second: " + " ".join(f"{n}={v:.2f}" for n, v in cpu if v is not None))
    for report in reports:
        print(("" if report.fmt == "avro-confluent" else f"{report.fmt} ") + report.ratios_line())
    if setup.secure:
        ratios = [(r.fmt, r.ratio("s/c")) for r in reports]
        print("secure ratios " + " ".join(f"{fmt} s/c={v:.2f}" for fmt, v in ratios if v is not None))
    return 0


def secure_settings(how: str | None) -> dict[str, str] | None:
    """The local stack's secured listener, when asked for and running."""
    if how is None:
        return None
    from cli.local_stack import LocalStack

    stack = LocalStack()
    if not stack.secured():
        raise SystemExit(f"e2e: --secure needs the local stack in {stack.cfg.home} running secured "
                         "(python -m cli.main stack up --secure)")
    return stack.cfg.kafka_client_settings(how)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        if args.mode == "latency":
            from benchmarks.latency import latency
            return latency(args)
        if args.mode == "memory":
            from benchmarks.memory import memory
            return memory(args)
        return throughput(args)
    except BrokerUnavailable as exc:
        print(f"e2e: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
