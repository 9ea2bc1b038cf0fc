"""The compiled entity state: arenas, growth, expiry, bytes, and parity with the Python parts."""

from __future__ import annotations

from copy import deepcopy
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contracts import Label, Order
from features import OrderFeaturizer
from features.featurizer import _members_of
from features.state import DistinctSet, WindowSeries
from features.state import kernels as k
from features.state.entities import EntityTables
from features.state.records import ExpiringMap

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def _orders(n: int, *, step_s: int = 60, start: datetime = T0, prefix: str = "o", pool: int = 7) -> list[Order]:
    return [
        Order.model_validate({
            "order_id": f"{prefix}-{i}", "created_at": (start + timedelta(seconds=step_s * i)).isoformat(),
            "customer": {"customer_id": f"c-{i % pool}", "email": f"u{i % pool}@example.com"},
            "payment": {"card_fingerprint": f"fp-{i % (pool + 2)}", "amount": f"{10 + i % 13}.50", "currency": "EUR"},
            "shipping_address": {"line1": f"{i % 5} Main St", "postal_code": "10001", "country": ["US", "DE"][i % 2]},
            "ip_address": f"198.51.100.{i % 11}", "device_id": f"d-{i % 3}", "merchant_id": f"m-{i % 2}",
            "items": [{"sku": f"S{i % 4}", "quantity": 1 + i % 3, "unit_price": f"{5 + i % 7}"}],
        })
        for i in range(n)
    ]


class _Tiny(OrderFeaturizer):
    """Entity tables that start with room for one entity: every batch grows them."""

    def _new_tables(self) -> EntityTables:
        return EntityTables(self._fam_ttl, self._fam_res, _members_of, capacity=1, fam_width=self._fam_width)


def test_arenas_grow_mid_batch_without_changing_a_feature():
    orders = _orders(400)
    big = OrderFeaturizer().featurize(orders).rows()
    tiny = _Tiny()
    small = tiny.featurize(orders[:150]).rows() + tiny.featurize(orders[150:]).rows()
    assert small == big
    tables = tiny._orders.tables
    assert tables.AT.shape[0] > 64 and len(tables) > 50  # it did grow, many times over


def test_compaction_keeps_every_value():
    orders = _orders(300)
    plain = OrderFeaturizer()
    compacted = OrderFeaturizer()
    for i in range(0, 300, 50):
        assert compacted.featurize(orders[i : i + 50]).rows() == plain.featurize(orders[i : i + 50]).rows()
        compacted._orders.tables.grow()  # move every live part to a fresh arena


def test_expired_entities_are_dropped_and_come_back_empty():
    f = OrderFeaturizer(allowed_lateness_s=0)
    first = f.featurize(_orders(20, prefix="a"))
    tables = f._orders.tables
    assert len(tables) > 20
    # 40 days later: everything expired (the longest look-back is 30 days + 1 day slack).
    later = _orders(1, start=T0 + timedelta(days=40), prefix="b")
    row = f.featurize(later)[0]
    assert row["customer_tx_count_30d"] == 1 and row["customer_first_order"] is True
    f._orders.sweep()
    assert len(tables) < 20  # only what the late order touched is left
    assert first[-1]["customer_tx_count_1d"] > 1


def test_entity_bytes_round_trip_gives_the_same_next_features():
    orders = _orders(120)
    f = OrderFeaturizer()
    f.featurize(orders[:100])
    src = f._orders.tables
    n = len(src.keys)
    src.DIRTY[:n] = 1
    keys, blobs, deadlines = src.dump_dirty()
    assert len(keys) == len(blobs) == len(deadlines) == n
    copy = f._new_tables()
    copy.load(keys, [int(src.EFAM[src.ids[key]]) for key in keys], blobs)
    assert copy.dump_dirty()[0] == []  # loaded, not changed
    for key, blob, deadline in zip(keys, blobs, deadlines, strict=True):
        assert copy.ED[copy.ids[key]] == deadline
        assert _one(copy, key) == blob
    g = OrderFeaturizer()
    g._orders.tables = copy
    g._orders.records = deepcopy(f._orders.records)
    assert g.featurize(orders[100:]).rows() == f.featurize(orders[100:]).rows()


class _AllColumns(OrderFeaturizer):
    """Every series keeps start, count, sum and square, whatever its family reads."""

    def _new_tables(self) -> EntityTables:
        return EntityTables(self._fam_ttl, self._fam_res, _members_of, fam_width=np.full(len(self._fam_width), 4))


def test_series_widths_drop_only_columns_no_feature_reads():
    orders = _orders(300, pool=5)
    labels = [Label(order_id=f"o-{i}", label="fraud", source="chargeback", created_at=T0) for i in range(0, 200, 7)]
    lean, full = OrderFeaturizer(label_delay_s=600), _AllColumns(label_delay_s=600)
    assert set(lean._fam_width.tolist()) == {2, 3, 4}  # some series do keep fewer columns
    for f in (lean, full):
        f.featurize(orders[:200])
        f.apply_labels(labels)
    assert lean.featurize(orders[200:]).rows() == full.featurize(orders[200:]).rows()
    assert lean.customer_spend([("c-1", orders[-1].created_at.timestamp())]) == \
        full.customer_spend([("c-1", orders[-1].created_at.timestamp())])


def _as_first_format(blob: bytes, width: int) -> bytes:
    """The same entity in the bytes written before series widths: no marker, and all four
    columns of both series (the ones not kept as zeros)."""
    w = np.frombuffer(blob, dtype=np.float64)
    iw = w.view(np.int64)
    assert iw[0] == k.BYTES_V2
    out, at = [w[1:2]], 3  # the deadline; the member digest was not stored then
    for cols in (width, 2):
        n = int(iw[at])
        out.append(w[at : at + 4])
        at += 4
        for c in range(4):
            out.append(w[at : at + n] if c < cols else np.zeros(n))
            at += n if c < cols else 0
    out.append(w[at:])
    return np.concatenate(out).tobytes()


def _labelled_tables() -> tuple[OrderFeaturizer, list[Order]]:
    orders = _orders(120)
    f = OrderFeaturizer(label_delay_s=600)
    f.featurize(orders[:100])
    f.apply_labels([Label(order_id=f"o-{i}", label="fraud", source="chargeback", created_at=T0) for i in range(0, 100, 9)])
    return f, orders


@pytest.mark.parametrize("earlier", ["v2", "first"])
def test_bytes_of_earlier_formats_still_load(earlier: str):
    f, orders = _labelled_tables()
    src = f._orders.tables
    n = len(src.keys)
    src.DIRTY[:n] = 1
    keys, blobs, _ = src.dump_dirty()
    assert all(np.frombuffer(b[:8], dtype=np.int64)[0] == k.BYTES_V3 for b in blobs)
    old = _blobs(src, keys, compact=False)  # what the release before the compact format wrote
    if earlier == "first":
        widths = [int(src._fam_width[src.EFAM[src.ids[key]]]) for key in keys]
        old = [_as_first_format(b, w) for b, w in zip(old, widths, strict=True)]
    assert sum(map(len, old)) > sum(map(len, blobs))  # the current format is smaller
    copy = f._new_tables()
    copy.load(keys, [int(src.EFAM[src.ids[key]]) for key in keys], old)
    for key, blob in zip(keys, blobs, strict=True):
        assert _one(copy, key) == blob  # read back in the current format: the same entity
    g = OrderFeaturizer(label_delay_s=600)
    g._orders.tables = copy
    g._orders.records = deepcopy(f._orders.records)
    assert g.featurize(orders[100:]).rows() == f.featurize(orders[100:]).rows()


def test_compact_bytes_halve_a_counts_only_series():
    f, _ = _labelled_tables()
    src = f._orders.tables
    merchant = next(key for key in src.ids if key.startswith("E.merchant|"))
    (compact,), (full,) = _blobs(src, [merchant]), _blobs(src, [merchant], compact=False)
    n = int(src.SN[2 * src.ids[merchant]])
    assert n > 20 and len(full) - len(compact) >= 8 * (n - 2)  # 16 -> 8 bytes per bucket


def test_values_the_compact_format_cannot_hold_are_written_in_full():
    """Times far apart in one distinct set, or a count that is not a whole number, do not
    fit int32 increments: those entities keep the full format and still round-trip."""
    f, _ = _labelled_tables()
    src = f._orders.tables
    keys = [next(key for key in src.ids if key.startswith(p)) for p in ("E.card|", "E.merchant|")]
    card, merchant = (src.ids[key] for key in keys)
    src.DT[src.DO[4 * card]] -= 2**33  # a member seen 272 years earlier
    o = src.SO[2 * merchant]
    src.AC[o : o + src.SN[2 * merchant]] += 0.5
    blobs = _blobs(src, keys)
    assert [np.frombuffer(b[:8], dtype=np.int64)[0] for b in blobs] == [k.BYTES_V2, k.BYTES_V2]
    copy = f._new_tables()
    copy.load(keys, [int(src.EFAM[i]) for i in (card, merchant)], blobs)
    assert [_one(copy, key) for key in keys] == blobs


def _blobs(tables: EntityTables, keys: list[str], *, compact: bool = True) -> list[bytes]:
    data, ends = k.encode_entities(tables.st, np.array([tables.ids[key] for key in keys], dtype=np.int64), compact)
    raw = data.tobytes()
    return [raw[a:b] for a, b in zip([0, *ends[:-1].tolist()], ends.tolist(), strict=True)]


def _one(tables: EntityTables, key: str) -> bytes:
    data, ends = k.encode_entities(tables.st, np.array([tables.ids[key]], dtype=np.int64))
    return data.tobytes()[: ends[0]]


def test_labels_after_growth_and_re_delivery_are_exact():
    orders = _orders(200)
    tiny, plain = _Tiny(label_delay_s=600), OrderFeaturizer(label_delay_s=600)
    labels = [Label(order_id=f"o-{i}", label="fraud", source="chargeback", created_at=T0) for i in range(0, 200, 9)]
    for f in (tiny, plain):
        f.featurize(orders[:120])
        f.apply_labels(labels)
    assert tiny.featurize(orders[100:]).rows() == plain.featurize(orders[100:]).rows()  # 20 re-deliveries, 80 new


events = st.lists(st.tuples(st.integers(0, 4000), st.floats(-1e4, 1e4, allow_nan=False, allow_infinity=False)),
                  min_size=1, max_size=60)


@settings(max_examples=100, deadline=None)
@given(events=events, hi=st.integers(0, 4000), span=st.integers(1, 5000), cut=st.integers(-1, 2000),
       res=st.sampled_from([1, 60, 3600]))
def test_kernel_series_is_bit_identical_to_window_series(events, hi, span, cut, res):
    tables = EntityTables(np.array([1e12]), np.array([res]), lambda keys, _fams: [0] * len(keys), capacity=1)
    (eid,) = tables.resolve(["x"], [0])
    ref = WindowSeries(res)
    for j, (t, v) in enumerate(events):  # arbitrary arrival order; the last add may prune
        prune = cut >= 0 and j == len(events) - 1
        ref.add(t, v)
        if prune:
            ref.prune(cut)
        while tables.TOP[0] + 4 * (tables.SN[2 * eid] + 1) + 8 > tables.AT.shape[0]:
            tables.grow()
        s = tables.st
        k._series_adds(*s[:9], s[22], s[19], s[18], s[23], np.array([2 * eid]), np.array([float(t)]), np.array([v]),
                       np.ones(1, dtype=np.int64), np.array([np.inf if prune else -np.inf]),
                       np.array([float(cut)]), 1)
    top = k._top(tables.st, 2 * eid, float(hi))
    assert k._win(tables.st, 2 * eid, top, float(hi - span)) == tuple(float(x) for x in ref.window(hi - span, hi))


@settings(max_examples=60, deadline=None)
@given(adds=st.lists(st.tuples(st.integers(0, 40), st.integers(0, 3000)), max_size=200),
       hi=st.integers(0, 3000), extra=st.integers(0, 45))
def test_kernel_distinct_sets_match_distinct_set(adds, hi, extra):
    cap = 8
    tables = EntityTables(np.array([1e12]), np.array([1]), lambda keys, _fams: [0] * len(keys), capacity=1)
    (eid,) = tables.resolve(["x"], [0])
    ref = DistinctSet(cap)
    did = 4 * eid
    for m, t in adds:
        ref.add(_digest(m), t)
        while tables.TOP[1] + 2 * cap + 4 > tables.DM.shape[0]:
            tables.grow()
        s = tables.st
        k._distinct_adds(s[9], s[10], s[11], s[12], s[13], s[22], s[19], np.array([did]), np.array([m]), 1, t, cap)
    spans = (60, 3600)
    mine = [k._distinct_counts(tables.st, did, float(hi), float(w), extra, True) for w in spans]
    # Members as bytes that sort like the integers (the featuriser's member ids do too).
    assert mine == ref.counts(hi, spans, extra=_digest(extra))


def _digest(m: int) -> bytes:
    return m.to_bytes(8, "big")


def test_expiring_map_is_event_time_and_untracked_in_process():
    f = OrderFeaturizer()
    f.featurize(_orders(5))
    assert len(f._orders.records.orders.dirty) == len(f._orders.records.cache.dirty) == 0  # in-process
    em = ExpiringMap()
    em.put("a", (1, 0, ()), 100.0)
    assert em.get("a", 50.0, extend_to=200.0) == (1, 0, ())
    assert em.get("a", 150.0) is not None  # extended
    assert em.get("a", 250.0) is None and len(em) == 0
    em.put("b", b"x", 10.0)
    em.put("c", b"y", 10_000.0)
    assert em.sweep(7200.0) == 1 and len(em) == 1
    tracked = ExpiringMap()
    tracked.put("d", b"z", 1.0)
    assert tracked.dirty == {"d"}
