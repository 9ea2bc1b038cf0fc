"""Generic windowed counters over the state backends, for any component that needs them.

The text helpers (recurring phrasing clusters, return history) and anything else that
wants "how many / how much / how many distinct per key over sliding event-time
windows" use these two classes; they work unchanged on ``MemoryState`` and
``RedisState`` and each call is one transaction (one micro-batch)::

    from features.state import WindowedCounter, DistinctCounter, build_state

    state = build_state("memory")
    returns = WindowedCounter(state, namespace="returns.customer", windows_s=(86400, 30 * 86400))
    # per event: (key, event time in epoch seconds, value); answers include the event itself
    [[(n_1d, sum_1d), (n_30d, sum_30d)]] = returns.observe([("c-1", 1_763_800_000.0, 49.9)])

    accounts = DistinctCounter(state, namespace="phrase.accounts", windows_s=(7 * 86400,))
    [[n_accounts_7d]] = accounts.observe([("cluster-17", "c-1", 1_763_800_000.0)])

Windows are ``(t - w, t]`` in event time, at ``resolution_s`` granularity (1 s: exact).
State is kept ``max(windows) + lateness_s`` past each key's newest event, then expires.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from functools import lru_cache

from features.state.base import StateStore, StateView

__all__ = ["DistinctCounter", "WindowedCounter", "member_digest"]


@lru_cache(maxsize=1 << 16)
def member_digest(value: str) -> bytes:
    """8-byte stable digest of a member (stable across processes, unlike ``hash``)."""
    return hashlib.blake2b(value.encode(), digest_size=8).digest()


class WindowedCounter:
    """Count and sum of values per key over sliding event-time windows."""

    def __init__(self, state: StateStore, *, namespace: str, windows_s: Sequence[int],
                 resolution_s: int = 1, lateness_s: int = 3600) -> None:
        self._state = state
        self._ns = f"W.{namespace}|"
        self.windows_s = tuple(int(w) for w in windows_s)
        self._res = resolution_s
        self._ttl = max(self.windows_s) + lateness_s

    def _run(self, events: Sequence[tuple[str, float, float]], record: bool) -> list[list[tuple[int, float]]]:
        keys = [self._ns + k for k, _, _ in events]

        def fn(view: StateView) -> list[list[tuple[int, float]]]:
            out = []
            for key, (_, t, value) in zip(keys, events, strict=True):
                view.advance(t)
                s = view.bundle(key, ttl_s=self._ttl).series("s", self._res)
                if record:
                    s.add(t, value)
                    s.prune(t - self._ttl - 86400)
                out.append([(c, v) for c, v, _ in s.windows(t, self.windows_s)])
            return out

        return self._state.transact(keys, fn)

    def observe(self, events: Sequence[tuple[str, float, float]]) -> list[list[tuple[int, float]]]:
        """Record each ``(key, t, value)`` and return (count, sum) per window, including it."""
        return self._run(events, True)

    def query(self, events: Sequence[tuple[str, float, float]]) -> list[list[tuple[int, float]]]:
        """The same answer without recording (the value is ignored)."""
        return self._run(events, False)


class DistinctCounter:
    """Distinct members per key over sliding event-time windows (saturates at ``cap``)."""

    def __init__(self, state: StateStore, *, namespace: str, windows_s: Sequence[int],
                 cap: int = 256, lateness_s: int = 3600) -> None:
        self._state = state
        self._ns = f"X.{namespace}|"
        self.windows_s = tuple(int(w) for w in windows_s)
        self._cap = cap
        self._ttl = max(self.windows_s) + lateness_s

    def observe(self, events: Sequence[tuple[str, str, float]]) -> list[list[int]]:
        """Record each ``(key, member, t)``; distinct members per window, including it."""
        keys = [self._ns + k for k, _, _ in events]

        def fn(view: StateView) -> list[list[int]]:
            out = []
            for key, (_, member, t) in zip(keys, events, strict=True):
                view.advance(t)
                d = view.bundle(key, ttl_s=self._ttl).distinct("d", self._cap)
                m = member_digest(member)
                out.append(d.counts(t, self.windows_s, extra=m))
                d.add(m, t)
                d.prune(t - self._ttl - 86400)
            return out

        return self._state.transact(keys, fn)
