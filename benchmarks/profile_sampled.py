"""Where the time of contender (c) goes, sampled from outside the process.

    python benchmarks/profile_sampled.py [--events 2000000] [--format avro-confluent] [--rate 250]

Runs `python -m bytewax.run dataflows.iot` exactly as the throughput
benchmark's (c) does, under py-spy (a sampling profiler that reads the
process's stacks without running code inside it), and prints the share of
samples per function: where the time is spent (self) and below which
callers (inclusive). An in-process tracing profiler such as pyinstrument
(`profile_package.py`) hooks every call into C, which inflates code that
makes many cheap C calls (a list comprehension over 20,000 messages) several
times over; sampling from outside does not.
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


RUNPY = ("_run_module_as_main ", "_run_code ")  # `python -m`'s own frames, below everything


def summarize(collapsed: Path, top: int) -> list[str]:
    """Self and inclusive shares from py-spy's collapsed stacks (`frame;frame;... count`)."""
    own: collections.Counter[str] = collections.Counter()
    below: collections.Counter[str] = collections.Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        total += n
        frames = stack.split(";")
        own[frames[-1]] += n
        for frame in set(frames):
            below[frame] += n
    if not total:
        return ["no samples"]
    lines = [f"{total} samples", "", "self (the function itself was running):"]
    lines += [f"  {100 * n / total:5.1f} %  {frame}" for frame, n in own.most_common(top)]
    lines += ["", "inclusive (the function or what it called):"]
    callers = [(frame, n) for frame, n in below.most_common() if not frame.startswith(RUNPY)]
    lines += [f"  {100 * n / total:5.1f} %  {frame}" for frame, n in callers[:top]]
    return lines


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"))
    p.add_argument("--events", type=int, default=2_000_000)
    p.add_argument("--partitions", type=int, default=4)
    p.add_argument("--format", choices=("avro-confluent", "json"), default="avro-confluent")
    p.add_argument("--rate", type=int, default=250, help="samples per second")
    p.add_argument("--top", type=int, default=25)
    args = p.parse_args()

    spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if spy is None:
        print("profile_sampled: py-spy is not installed (pip install -e '.[bench]')", file=sys.stderr)
        return 2

    from benchmarks.pipeline_yaml import write_pipeline
    from benchmarks.runner import engine_revision
    from benchmarks.throughput import Bench, Setup, package_env

    setup = Setup(args.bootstrap, args.events, args.partitions, (args.format,), frozenset())
    bench = Bench(setup)
    try:
        inputs, _data = bench.load()
        pipeline = write_pipeline(bench.tmp, inputs[args.format], bench.topic("out"), args.format,
                                  setup.consumer_properties)
        collapsed = Path(tempfile.mkdtemp(prefix="profile-")) / "stacks.txt"
        cmd = [spy, "record", "--rate", str(args.rate), "--format", "raw", "--output", str(collapsed), "--",
               sys.executable, "-m", "bytewax.run", "dataflows.iot"]
        started = time.perf_counter()
        done = subprocess.run(cmd, env=dict(os.environ, **package_env(pipeline, args.bootstrap)),
                              capture_output=True, text=True)
        seconds = time.perf_counter() - started
        if done.returncode != 0:
            print(done.stdout[-2000:], done.stderr[-2000:], sep="\n", file=sys.stderr)
            return 1
        print(f"iot-monitoring at {engine_revision()}")
        print(f"{args.events:,} {args.format} events in {seconds:.2f} s under py-spy at {args.rate} samples/s "
              f"(= {args.events / seconds:,.0f} events/s; sampling slows the run a little)")
        print("\n".join(summarize(collapsed, args.top)))
    finally:
        bench.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
