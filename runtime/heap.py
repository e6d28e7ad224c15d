"""Keep Python's cyclic garbage collector off the start-up heap.

A read batch holds tens of thousands of confluent-kafka message objects,
which the collector tracks. They outlive the youngest generations while the
batch is decoded, so they reach the oldest one, and every few batches a full
collection walked every object the process had made at start (the imported
polars, sqlglot, pydantic and Bytewax modules, the compiled plan), for a
quarter of a replay's time (docs/performance.md, "Start-up"). Start-up
objects live as long as the process, so they are moved out of the collector's sight once the
dataflow is built, and the youngest generation is made larger than a read
batch, so that a batch's messages are freed by reference counting before a
collection walks them. Reference cycles made later are still collected.

The dataflow's start-up turns the collector off before its imports:
collections during start-up only walk objects that will live as long as the
process, and settling the heap turns it back on.
"""

from __future__ import annotations

import gc

YOUNG_GENERATION_THRESHOLD = 50_000
"""Tracked allocations (net of frees) between collections of the youngest
generation: more than one read batch (20,000 records by default) makes."""


def settle_startup_heap(young_threshold: int = YOUNG_GENERATION_THRESHOLD) -> None:
    """Freeze the start-up heap, raise the youngest generation's threshold
    (the older two keep theirs) and enable the collector, which start-up may
    have turned off. No collection first: it would cost every start more
    to free the few dozen objects of start-up's own cycles."""
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(max(young_threshold, 1), older, oldest)
    gc.enable()
