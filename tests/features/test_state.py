"""State parts and backends: exact windows, out-of-order events, expiry, encoding."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from features.state import (
    Bundle,
    DistinctCounter,
    DistinctSet,
    MemoryState,
    Record,
    WindowedCounter,
    WindowSeries,
    member_digest,
)

events_st = st.lists(
    st.tuples(st.integers(0, 5000), st.floats(-1e4, 1e4, allow_nan=False, allow_infinity=False)), max_size=60
)


def brute(events: list[tuple[int, float]], lo: float, hi: float) -> tuple[int, float]:
    inside = [v for t, v in events if lo < t <= hi]
    return len(inside), sum(inside)


@settings(max_examples=150, deadline=None)
@given(events=events_st, hi=st.integers(0, 5000), span=st.integers(1, 6000))
def test_window_series_matches_brute_force_in_any_arrival_order(events, hi, span):
    s = WindowSeries(1)
    for t, v in events:  # arbitrary order: out-of-order inserts must keep the sums exact
        s.add(t, v)
    c, total, _ = s.window(hi - span, hi)
    bc, btotal = brute(events, hi - span, hi)
    assert c == bc
    assert abs(total - btotal) < 1e-6 * max(1.0, sum(abs(v) for _, v in events))
    assert s.windows(hi, (span,))[0][:1] == (bc,)


@settings(max_examples=80, deadline=None)
@given(events=events_st, cutoff=st.integers(0, 5000))
def test_prune_forgets_only_old_buckets(events, cutoff):
    s = WindowSeries(1)
    for t, v in sorted(events):
        s.add(t, v)
    s.prune(cutoff)
    assert all(t > cutoff for t in s.ts)
    hi = 6000
    assert s.window(cutoff, hi)[0] == brute(events, cutoff, hi)[0]


def test_resolution_buckets_and_last_at_or_before():
    s = WindowSeries(3600)
    s.add(7300, 1.0)
    s.add(7100, 2.0)  # out of order, in the earlier hour bucket [3600, 7200)
    assert s.ts == [3600, 7200]
    assert s.last_at_or_before(7199) == 3600
    assert s.last_at_or_before(3599) is None
    assert s.window(0, 10_000)[:2] == (2, 3.0)


def test_parts_and_bundles_roundtrip_exactly():
    rng = random.Random(3)
    s = WindowSeries(1)
    for _ in range(200):
        s.add(rng.randrange(10_000), rng.random() * 100)
    s.prune(500)
    d = DistinctSet(cap=16)
    for i in range(40):
        d.add(member_digest(f"m{i}"), i)
    assert len(d) <= 16  # capped, oldest evicted
    b = Bundle()
    b.parts.update({"s": s, "d": d, "r": Record([1, "x", None])})
    b2 = Bundle.from_bytes(b.to_bytes())
    s2, d2, r2 = b2.get("s"), b2.get("d"), b2.get("r")
    assert (s2.ts, s2.cc, s2.cs, s2.cq, s2.base) == (s.ts, s.cc, s.cs, s.cq, s.base)
    assert d2.seen == d.seen and d2.cap == 16
    assert r2.value == [1, "x", None]
    assert Bundle.from_bytes(b2.to_bytes()).to_bytes() == b.to_bytes()  # untouched parts stay as bytes


def test_distinct_counts_windows_and_current_member():
    d = DistinctSet()
    a, b, c = (member_digest(x) for x in "abc")
    d.add(a, 100)
    d.add(b, 1000)
    assert d.counts(1000, (500, 5000)) == [1, 2]
    assert d.counts(1000, (500, 5000), extra=c) == [2, 3]  # the current member counts once
    assert d.counts(1000, (500, 5000), extra=a) == [2, 2]


def test_memory_state_expires_by_event_time():
    state = MemoryState(sweep_every_s=60)
    counter = WindowedCounter(state, namespace="t", windows_s=(3600,), lateness_s=0)
    counter.observe([("k1", 0.0, 1.0)])
    assert len(state) == 1
    # ttl = 1 h: far later event time sweeps k1 away, k2 stays.
    counter.observe([("k2", 10 * 3600.0, 1.0), ("k2", 20 * 3600.0, 1.0)])
    state.sweep()
    assert len(state) == 1  # k1 expired (1 h ttl), k2 kept


def test_windowed_and_distinct_counters():
    state = MemoryState()
    wc = WindowedCounter(state, namespace="ret", windows_s=(60, 3600))
    out = wc.observe([("c", 0.0, 10.0), ("c", 30.0, 5.0), ("c", 100.0, 1.0), ("other", 100.0, 7.0)])
    assert out[1] == [(2, 15.0), (2, 15.0)]
    assert out[2] == [(1, 1.0), (3, 16.0)]
    assert out[3] == [(1, 7.0), (1, 7.0)]
    assert wc.query([("c", 100.0, 0.0)]) == [[(1, 1.0), (3, 16.0)]]
    dc = DistinctCounter(state, namespace="acc", windows_s=(60, 3600))
    got = dc.observe([("k", "a", 0.0), ("k", "b", 10.0), ("k", "a", 20.0), ("k", "c", 200.0)])
    assert got == [[1, 1], [2, 2], [2, 2], [1, 3]]


@settings(max_examples=150, deadline=None)
@given(adds=st.lists(st.tuples(st.integers(0, 4), st.integers(0, 1000)), max_size=12),
       hi=st.integers(0, 1200), extra=st.one_of(st.none(), st.integers(0, 5)), cutoff=st.integers(-1, 1000))
def test_distinct_set_matches_brute_force(adds, hi, extra, cutoff):
    d = DistinctSet(cap=1000)
    last: dict[int, int] = {}
    for m, t in adds:
        d.add(member_digest(str(m)), t)
        last[m] = max(t, last.get(m, t))
    spans = (100, 600)
    x = None if extra is None else member_digest(str(extra))
    expected = [len({m for m, t in last.items() if t > hi - s} | ({extra} if extra is not None else set())) for s in spans]
    assert d.counts(hi, spans, extra=x) == expected
    assert len(d) == len(last)
    again = DistinctSet.from_bytes(d.to_bytes())
    assert again.seen == d.seen and again.counts(hi, spans, extra=x) == expected
    d.prune(cutoff)
    assert sorted(d.seen.values()) == sorted(t for t in last.values() if t > cutoff)
