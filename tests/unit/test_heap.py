"""The start-up heap leaves the collector's sight; later garbage is still collected."""

from __future__ import annotations

import gc
import weakref
from typing import Iterator

import pytest

from runtime.heap import YOUNG_GENERATION_THRESHOLD, settle_startup_heap


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


@pytest.fixture
def restored_gc() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


def test_objects_made_before_settling_are_frozen(restored_gc: None) -> None:
    before = Node()
    settle_startup_heap()
    assert gc.get_freeze_count() > 0
    assert not any(obj is before for obj in gc.get_objects())


def test_only_the_youngest_threshold_is_raised(restored_gc: None) -> None:
    _, older, oldest = gc.get_threshold()
    settle_startup_heap()
    assert gc.get_threshold() == (YOUNG_GENERATION_THRESHOLD, older, oldest)


def test_a_cycle_made_later_is_still_collected_without_asking(restored_gc: None) -> None:
    settle_startup_heap(young_threshold=1_000)
    a, b = Node(), Node()
    a.other, b.other = b, a
    gone = weakref.ref(a)
    del a, b
    assert gone() is not None  # a cycle: reference counting alone cannot free it
    keep = [Node() for _ in range(5_000)]  # more tracked allocations than the threshold
    assert gone() is None
    assert len(keep) == 5_000


def test_a_collector_turned_off_for_start_up_is_turned_back_on(restored_gc: None) -> None:
    gc.disable()
    try:
        settle_startup_heap()
        assert gc.isenabled()
    finally:
        gc.enable()
