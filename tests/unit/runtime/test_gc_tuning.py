"""The heap is frozen after each full collection, and thawed before frozen cycles pile up."""

from __future__ import annotations

import asyncio
import gc
import weakref

import pytest

from app.runtime import gc_tuning
from app.runtime.gc_tuning import FrozenHeap


class Node:
    """An object that can sit in a reference cycle."""

    def __init__(self) -> None:
        self.other: Node | None = None


def _cycle() -> Node:
    a, b = Node(), Node()
    a.other, b.other = b, a
    return a


@pytest.fixture
def loop():
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


def test_survivors_of_a_full_collection_are_frozen_and_refcounting_still_frees(loop):
    heap = FrozenHeap(loop, growth=1000.0)
    heap.install()
    try:
        kept = [Node() for _ in range(1000)]
        before = gc.get_freeze_count()
        gc.collect()
        assert gc.get_freeze_count() >= before + 1000, "survivors were not frozen"
        ref = weakref.ref(kept[0])
        del kept
        assert ref() is None, "a frozen object without references was not freed"
    finally:
        heap.uninstall()
    assert gc.get_freeze_count() == 0


def test_a_cycle_that_died_frozen_is_collected_by_the_next_thaw(loop):
    heap = FrozenHeap(loop, growth=1000.0)
    heap.install()
    try:
        holder = [_cycle()]
        gc.collect()  # the cycle is alive: frozen
        ref = weakref.ref(holder[0])
        holder.clear()
        gc.collect()
        assert ref() is not None, "frozen garbage cycles are not expected to be collected"
        heap.growth = 0.5  # the frozen heap now counts as grown past its bound
        gc.collect()
        assert heap.thaws == 1, "no thaw before the loop ran it"
        loop.run_until_complete(asyncio.sleep(0))
        assert heap.thaws == 2, "the thaw was not handed to the loop"
        assert ref() is None, "the thaw did not collect the frozen cycle"
        assert gc.get_freeze_count() > 0, "the survivors of the thaw were not frozen again"
    finally:
        heap.uninstall()


def test_a_thaw_is_not_scheduled_twice_while_one_is_pending(loop):
    heap = FrozenHeap(loop, growth=0.5)
    heap.install()
    try:
        gc.collect()
        gc.collect()
        loop.run_until_complete(asyncio.sleep(0))
        assert heap.thaws == 2, f"{heap.thaws - 1} thaws ran for two collections"
    finally:
        heap.uninstall()


def test_install_makes_young_collections_rarer_and_freezes(loop):
    before = gc.get_threshold()
    heap = gc_tuning.install(loop)
    try:
        assert gc.get_threshold() == (gc_tuning.YOUNG_THRESHOLD, *before[1:])
        assert gc.get_freeze_count() > 0, "the heap was not frozen at install"
    finally:
        heap.uninstall()
        gc.set_threshold(*before)
