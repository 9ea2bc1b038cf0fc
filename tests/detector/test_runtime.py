"""The process GC setting the worker, the API and `riskwire featurize` start with."""

from __future__ import annotations

import gc

from detector.runtime import GC_THRESHOLDS, tune_gc


def test_tune_gc_raises_the_thresholds_freezes_start_up_objects_and_still_collects_cycles():
    before = gc.get_threshold()
    try:
        assert tune_gc() == before
        assert gc.get_threshold() == GC_THRESHOLDS
        assert gc.get_freeze_count() > 1000  # what was alive at start-up is out of the collector's sight

        class Node:
            pass

        a, b = Node(), Node()
        a.peer, b.peer = b, a  # a cycle: reference counting alone never frees it
        del a, b
        assert gc.collect() >= 2  # a (rarer) pass still frees cycles made after start-up
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
