"""Process-wide settings for long-running riskwire processes (worker, API, batch jobs).

Garbage collection. CPython's cyclic collector runs a young-generation pass every 700
container allocations and, now and then, a full pass over every live container. A
riskwire process holds millions of long-lived containers (spaCy's vocabulary, model
tables, the featuriser's order records and entity index) and allocates a few dict rows
per order: with the defaults, collection took ~15% of the featuriser's CPU
(``bench/features.py`` prints the figure with and without this setting). After start-up
everything loaded so far is moved out of the collector's sight (``gc.freeze``) and the
young-generation threshold is raised, so passes are rarer and never re-walk the models.
Reference counting still frees almost everything at once; only reference cycles wait
for the next (rarer) pass, which bounds the extra memory to that many objects.
"""

from __future__ import annotations

import gc

__all__ = ["GC_THRESHOLDS", "tune_gc"]

#: (young, middle, old): a young pass every 50,000 container allocations instead of 700.
GC_THRESHOLDS = (50_000, 20, 100)


def tune_gc(*, freeze: bool = True) -> tuple[int, int, int]:
    """Apply :data:`GC_THRESHOLDS` (and freeze what is alive now); returns the old thresholds."""
    old = gc.get_threshold()
    if freeze:
        gc.collect()
        gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
    return old
