"""In-process and Redis state give identical features for the same event sequence."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from contracts import Label, Order
from features import OrderFeaturizer, build_state
from features.state import MemoryState, WindowedCounter

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def _order(i: int, minute: int, cust: int, card: int, dev: int, ip: int, merchant: int, sku: int, qty: int, amount: int) -> Order:
    return Order.model_validate({
        "order_id": f"o-{i}",
        "created_at": (T0 + timedelta(minutes=minute)).isoformat(),
        "customer": {"customer_id": f"c-{cust}", "email": f"user{cust}@example.com", "name": "Ann Lee"},
        "payment": {"card_fingerprint": f"fp-{card}", "amount": str(amount), "currency": ["EUR", "PLN"][card % 2]},
        "shipping_address": {"line1": f"{dev} Main St", "postal_code": "10001", "country": ["US", "PL", "DE"][ip % 3]},
        "billing_address": {"line1": "1 Main St", "postal_code": "10001", "country": "US"},
        "ip_address": f"100.{64 + ip}.0.{ip + 1}", "device_id": f"d-{dev}", "merchant_id": f"m-{merchant}",
        "items": [{"sku": f"S{sku}", "quantity": qty, "unit_price": str(amount)}],
    })


event = st.tuples(
    st.integers(-90, 3000),  # minute offset: out of order within lateness, across days
    *(st.integers(0, 3) for _ in range(6)), st.integers(1, 9), st.integers(1, 900),
    st.sampled_from(["order", "order", "order", "fraud", "legit", "dup"]),
)


def run(featurizer: OrderFeaturizer, events: list[tuple], batch: int) -> list[dict]:
    """Replay: orders in micro-batches; labels/re-deliveries flush the batch first."""
    out: list[dict] = []
    pending: list[Order] = []
    seen: list[Order] = []
    clock = 0

    def flush() -> None:
        if pending:
            out.extend(featurizer.featurize(pending))
            pending.clear()

    for i, (minute, *ids, qty, amount, kind) in enumerate(events):
        clock = max(clock, minute)
        if kind in ("fraud", "legit") and seen:
            flush()
            target = seen[(minute * 7) % len(seen)]
            featurizer.apply_labels([Label(order_id=target.order_id, label=kind, source="analyst", created_at=T0)])
        elif kind == "dup" and seen:
            pending.append(seen[(minute * 5) % len(seen)])
        else:
            o = _order(i, min(minute, clock), *ids, qty, amount)
            seen.append(o)
            pending.append(o)
        if len(pending) >= batch:
            flush()
    flush()
    return out


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(events=st.lists(event, min_size=1, max_size=30), batch=st.integers(1, 7))
def test_memory_batching_does_not_change_features(events, batch):
    one = run(OrderFeaturizer(label_delay_s=3600), events, 1)
    many = run(OrderFeaturizer(label_delay_s=3600), events, batch)
    assert many == one


@pytest.mark.integration
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(events=st.lists(event, min_size=1, max_size=30), batch=st.integers(1, 7))
def test_memory_and_redis_give_identical_features(redis_url, events, batch):
    store = build_state("redis", redis_url=redis_url, key_prefix=f"rwtest-{uuid.uuid4().hex[:10]}")
    try:
        # Re-delivery caches expire by event time in-process and by wall clock in Redis
        # (documented); a TTL longer than the sequence keeps this about the features.
        mem = run(OrderFeaturizer(label_delay_s=3600, dedup_ttl_s=10 * 86400), events, batch)
        red = run(OrderFeaturizer(state=store, label_delay_s=3600, dedup_ttl_s=10 * 86400), events, batch)
        assert red == mem
    finally:
        store.clear()
        store.close()


@pytest.mark.integration
def test_redis_concurrent_writer_is_not_lost(redis_url):
    prefix = f"rwtest-{uuid.uuid4().hex[:10]}"
    a = build_state("redis", redis_url=redis_url, key_prefix=prefix)
    b = build_state("redis", redis_url=redis_url, key_prefix=prefix)
    try:
        calls = []

        def fn(view):
            calls.append(1)
            if len(calls) == 1:  # another worker records an event after our read
                WindowedCounter(b, namespace="n", windows_s=(3600,)).observe([("k", 10.0, 1.0)])
            s = view.bundle("W.n|k", ttl_s=7200).series("s")
            s.add(20.0, 2.0)
            return s.window(0, 100)[:2]

        assert a.transact(["W.n|k"], fn) == (2, 3.0)  # recomputed on fresh state
        assert len(calls) == 2 and a.conflicts == 1
        assert WindowedCounter(a, namespace="n", windows_s=(3600,)).query([("k", 100.0, 0.0)]) == [[(2, 3.0)]]
    finally:
        a.clear()
        a.close()
        b.close()


@pytest.mark.integration
def test_redis_keys_carry_no_personal_data(redis_url, order_factory):
    import redis

    prefix = f"rwtest-{uuid.uuid4().hex[:10]}"
    store = build_state("redis", redis_url=redis_url, key_prefix=prefix)
    try:
        OrderFeaturizer(state=store).featurize([order_factory()])
        names = [k.decode() for k in redis.Redis.from_url(redis_url).scan_iter(match=f"{prefix}:*")]
        assert names and not any("anna" in n or "example.com" in n or "fp-1" in n for n in names)
    finally:
        store.clear()
        store.close()


def test_build_state_rejects_unknown_backend():
    from contracts import ConfigError

    assert isinstance(build_state("memory"), MemoryState)
    with pytest.raises(ConfigError):
        build_state("cassandra")
    with pytest.raises(ConfigError):
        build_state("redis", redis_url="http://nope")


@pytest.mark.integration
def test_customer_spend_reads_the_same_on_both_backends(redis_url):
    store = build_state("redis", redis_url=redis_url, key_prefix=f"rwtest-{uuid.uuid4().hex[:10]}")
    try:
        mem, red = OrderFeaturizer(), OrderFeaturizer(state=store)
        orders = [_order(i, 60 * i, i % 3, 0, 0, 0, 0, 0, 1, 100 + i) for i in range(12)]
        for f in (mem, red):
            f.featurize(orders[:6])
            f.featurize(orders[6:])
        asks = [("c-0", (T0 + timedelta(hours=h)).timestamp()) for h in (0, 3, 12, 24 * 40)] + [("c-9", T0.timestamp())]
        spent = mem.customer_spend(asks)
        assert red.customer_spend(asks) == spent
        # c-0 ordered at minutes 0, 180, 360, 540 (amounts 100, 103, 106, 109; EUR).
        assert spent == [100.0, 203.0, 418.0, 0.0, 0.0]
    finally:
        store.clear()
        store.close()


@pytest.mark.integration
def test_redis_redelivery_after_restart_gets_the_cached_row(redis_url):
    """A batch spanning more event time than the re-delivery cache keeps: its first rows are
    still cached (Redis TTL in wall clock) for a restarted worker whose watermark moved on."""
    import time

    prefix = f"rwtest-{uuid.uuid4().hex[:10]}"
    first = build_state("redis", redis_url=redis_url, key_prefix=prefix)
    again = build_state("redis", redis_url=redis_url, key_prefix=prefix)
    try:
        orders = [_order(i, 30 * i, i % 2, i % 2, 0, 0, 0, 0, 1, 50 + i) for i in range(8)]  # 3.5 h
        rows = OrderFeaturizer(state=first, dedup_ttl_s=3600).featurize(orders).rows()
        time.sleep(1.2)  # longer than the shortest TTL Redis may hold
        restarted = OrderFeaturizer(state=again, dedup_ttl_s=3600)
        assert restarted.featurize([orders[-1], orders[0]]).rows() == [rows[-1], rows[0]]
    finally:
        first.clear()
        first.close()
        again.close()


@pytest.mark.integration
def test_two_redis_featurizers_racing_on_the_same_entities_lose_nothing(redis_url):
    """A batch whose keys another worker writes between its read and its write is re-run on
    the fresh state: the result is what one featuriser gives for the other's batch first."""
    prefix = f"rwtest-{uuid.uuid4().hex[:10]}"
    a_store = build_state("redis", redis_url=redis_url, key_prefix=prefix)
    b_store = build_state("redis", redis_url=redis_url, key_prefix=prefix)
    a, b = OrderFeaturizer(state=a_store), OrderFeaturizer(state=b_store)
    ours = [_order(i, i, i % 2, i % 3, 0, 1, 0, 1, 1, 10 + i) for i in range(6)]
    theirs = [_order(100 + i, i, i % 2, i % 3, 0, 1, 0, 1, 2, 50 + i) for i in range(4)]
    try:
        real = a_store.mget_raw
        reads = []

        def racing_read(keys):
            got = real(keys)
            if not reads:  # the other worker commits after our first read
                b.featurize(theirs)
            reads.append(len(keys))
            return got

        a_store.mget_raw = racing_read
        rows = a.featurize(ours).rows()
        assert a_store.conflicts == 1
        mem = OrderFeaturizer()
        mem.featurize(theirs)
        assert rows == mem.featurize(ours).rows()
        assert rows[-1]["customer_tx_count_1h"] == 3 + 2  # ours so far plus theirs
    finally:
        a_store.clear()
        a_store.close()
        b_store.close()


@pytest.mark.integration
def test_labels_first_in_a_fresh_redis_worker_keep_the_entities_event_time_life(redis_url):
    """A worker whose first batch after a start is labels writes risk entities with their
    event-time TTL (days), not the one-second floor of an unknown watermark."""
    import redis

    prefix = f"rwtest-{uuid.uuid4().hex[:10]}"
    store = build_state("redis", redis_url=redis_url, key_prefix=prefix)
    fresh = build_state("redis", redis_url=redis_url, key_prefix=prefix)
    try:
        OrderFeaturizer(state=store).featurize([_order(i, i, 0, 0, 0, 0, 0, 1, 1, 10) for i in range(3)])
        label = Label(order_id="o-1", label="fraud", source="chargeback", created_at=T0 + timedelta(days=1))
        assert OrderFeaturizer(state=fresh).apply_labels([label]) == 1
        client = redis.Redis.from_url(redis_url)
        ttls = [client.pttl(name) for name in client.scan_iter(match=f"{prefix}:*")]
        assert ttls and min(ttls) > 600_000, sorted(ttls)[:5]
    finally:
        store.clear()
        store.close()
        fresh.close()
