"""The recurring-phrase clusterer's state in this process: compact tables, same answers.

:class:`~features.text.phrasing.PhraseClusterer` keeps, per LSH band key, an event-time
series of texts and a distinct set of accounts, plus one record per event id. Over the
generic ``features.state`` interface that is a dozen bundles per text (each a dict of
parts, each part a general-purpose object); on ``RedisState`` that is what is shared
between workers, and it stays so. On ``MemoryState`` the same state lives here instead,
in one bundle of that store: a band key is a small integer (``band << bits | code``:
``bands * 2**bits`` keys in all), so the tables are a list indexed by it.

The answers are those of the bundles, operation by operation:

- :class:`Band` holds what :class:`~features.state.structures.WindowSeries` (counts only,
  the sums are never read) and :class:`~features.state.structures.DistinctSet` hold,
  updated by the same algorithms (bucket insertion, pruning into a base count, eviction
  of the oldest tenth past the cap, ties by member); everything is an integer, so the
  figures are equal, not merely close.
- Expiry is the store's: an entry is kept ``ttl`` past the watermark at which it was
  last touched and counts as absent once the watermark passes that, which is when
  ``MemoryState`` would drop the bundle. The watermark is the store's own
  (``StateView.watermark``), so other components
  that advance a shared store's event time expire phrase state exactly as before.
- Sweeping (every hour of event time) only frees memory, as the store's sweep does.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections import OrderedDict
from typing import Any

__all__ = ["Band", "PhraseTables"]

_SWEEP_EVERY_S = 3600


class Band:
    """One band key's 60-second series of texts and its accounts' last sightings.

    ``ts``: bucket starts, ``cc``: cumulative count up to and including each bucket,
    ``base``: the count of the buckets pruned; ``seen``: member digest -> last event
    time (int), at most ``cap`` members.
    """

    __slots__ = ("base", "cc", "deadline", "seen", "ts")

    def __init__(self, deadline: float) -> None:
        self.ts: list[int] = []
        self.cc: list[int] = []
        self.base = 0
        self.seen: dict[bytes, int] = {}
        self.deadline = deadline

    def bump(self, t: float, resolution: int, cutoff: float, span: int) -> int:
        """``WindowSeries``: ``add(t)``, ``prune(cutoff)``, then the count of ``windows(t, (span,))``."""
        ts, cc = self.ts, self.cc
        b = int(t) // resolution * resolution
        if not ts or b > ts[-1]:
            ts.append(b)
            cc.append((cc[-1] if cc else self.base) + 1)
        elif b == ts[-1]:
            cc[-1] += 1
        else:
            i = bisect_left(ts, b)
            if ts[i] != b:
                ts.insert(i, b)
                cc.insert(i, cc[i - 1] if i else self.base)
            for k in range(i, len(ts)):
                cc[k] += 1
        if ts[0] <= cutoff:
            n = bisect_right(ts, cutoff)
            self.base = cc[n - 1]
            del ts[:n], cc[:n]
        i = len(ts) if ts[-1] <= t else bisect_right(ts, t)
        if i == 0:
            return 0
        j = bisect_right(ts, t - span, 0, i)
        if j >= i:
            return 0
        return cc[i - 1] - (cc[j - 1] if j else self.base)

    def distinct(self, lo: float, member: bytes) -> int:
        """``DistinctSet.counts``: members last seen after ``lo``, plus ``member`` once."""
        seen = self.seen
        n = 0
        for v in seen.values():
            if v > lo:
                n += 1
        mine = seen.get(member)
        return n + (0 if (mine is not None and mine > lo) else 1)

    def add(self, member: bytes, t: int, cap: int) -> None:
        """``DistinctSet.add`` (``t`` already an int)."""
        seen = self.seen
        old = seen.get(member)
        if old is None or t > old:
            seen[member] = t
            if len(seen) > cap:
                keep = sorted(seen.items(), key=lambda kv: (kv[1], kv[0]))[len(seen) - cap * 9 // 10 :]
                self.seen = dict(keep)

    def prune_members(self, cutoff: float) -> None:
        """``DistinctSet.prune``."""
        seen = self.seen
        for v in seen.values():
            if v <= cutoff:
                self.seen = {m: v for m, v in seen.items() if v > cutoff}
                return


class PhraseTables:
    """Every band key's :class:`Band`, the all-texts series and the per-event answers."""

    __slots__ = ("bands", "events", "last_sweep", "total")

    def __init__(self, n_keys: int) -> None:
        self.bands: list[Band | None] = [None] * n_keys
        self.total: Band | None = None
        #: event id -> (deadline, answer), in deadline order (a touch moves it to the end).
        self.events: OrderedDict[str, tuple[float, Any]] = OrderedDict()
        self.last_sweep = float("-inf")

    def sweep(self, wm: float) -> None:
        """Drop what expired (memory only: an expired entry already counts as absent)."""
        if wm - self.last_sweep < _SWEEP_EVERY_S:
            return
        self.last_sweep = wm
        events = self.events
        while events:
            key, (deadline, _) = next(iter(events.items()))
            if deadline >= wm:
                break
            del events[key]
        bands = self.bands
        for i, band in enumerate(bands):
            if band is not None and band.deadline < wm:
                bands[i] = None
        if self.total is not None and self.total.deadline < wm:
            self.total = None

    def __len__(self) -> int:
        return len(self.events) + sum(b is not None for b in self.bands) + (self.total is not None)
