"""The worker against the real embedded broker: counts, dead letters, SIGTERM and SIGKILL."""

from __future__ import annotations

import json
import signal
import time
import uuid

import pytest

from contracts import Order
from streams.generator import GeneratorConfig, TrafficGenerator
from streams.serde import encode
from streams.traffic import MALFORMED_SAMPLES
from tests.support import consume, engine_settings, produce, start_worker, unique_topics, worker_env

pytestmark = pytest.mark.integration


def _orders(n: int, seed: int) -> list[Order]:
    gen = TrafficGenerator(GeneratorConfig(seed=seed, customers=300))
    out: list[Order] = []
    for ev in gen.events(n):
        if isinstance(ev.event, Order):
            out.append(ev.event)
    return out[:n]


def _settings(trained_data_dir, tmp_path, **state):
    from detector.settings import ModelSettings, StateSettings

    return engine_settings(
        tmp_path,
        models=ModelSettings(registry_dir=trained_data_dir / "models"),
        kafka=unique_topics(max_poll_records=200),
        state=StateSettings(**state) if state else StateSettings(),
    )


def _decisions(records, topic):
    return [json.loads(r.value) for r in records if r.topic == topic]


def test_n_valid_and_m_malformed_give_n_decisions_and_m_dead_letters(broker, trained_data_dir, tmp_path):
    settings = _settings(trained_data_dir, tmp_path)
    k = settings.kafka
    orders = _orders(300, seed=11)
    records = [(k.orders_topic, o.order_id.encode(), encode(o)) for o in orders]
    bad = [(k.orders_topic, b"bad", value) for value in MALFORMED_SAMPLES]
    # Interleave the malformed records with the valid ones.
    mixed = records[:100] + bad[:4] + records[100:200] + bad[4:] + records[200:]
    produce(broker, mixed)

    proc = start_worker(worker_env(settings, broker), tmp_path / "worker.log")
    try:
        out = consume(
            broker, [k.decisions_topic, k.dlq_topic],
            until=lambda rs: len(rs) >= len(orders) + len(bad), timeout=120, settle=3,
        )
        assert proc.poll() is None, "the worker died on bad input"
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=30)
    decisions = _decisions(out, k.decisions_topic)
    dead = [r for r in out if r.topic == k.dlq_topic]
    assert len(decisions) == len(orders)
    assert {d["order_id"] for d in decisions} == {o.order_id for o in orders}
    assert len(dead) == len(bad)
    assert sorted(r.value for r in dead) == sorted(v for _, _, v in bad)
    headers = dict(dead[0].headers)
    assert headers["riskwire.source.topic"].decode() == k.orders_topic
    assert int(headers["riskwire.source.offset"]) >= 0
    assert headers["riskwire.error"].decode().startswith("Order invalid")
    assert all(0 <= d["score"] <= 100 and d["action"] in {"approve", "review", "decline"} for d in decisions)
    assert code == 0


def test_sigterm_drains_commits_and_exits_zero(broker, trained_data_dir, tmp_path):
    from kafka import KafkaConsumer, TopicPartition

    settings = _settings(trained_data_dir, tmp_path)
    k = settings.kafka
    orders = _orders(400, seed=12)
    produce(broker, [(k.orders_topic, o.order_id.encode(), encode(o)) for o in orders])
    proc = start_worker(worker_env(settings, broker), tmp_path / "worker.log")
    consume(broker, [k.decisions_topic], until=lambda rs: len(rs) >= len(orders), timeout=120, settle=0.5)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0

    # Every consumed offset was committed. (end_offsets()/seek_to_end are wrong on Tansu,
    # stack.md; offsets start at 0 and each record takes one, so the committed offsets
    # of all partitions add up to the number of records produced.)
    probe = KafkaConsumer(bootstrap_servers=broker, group_id=k.group_id, enable_auto_commit=False)
    try:
        parts = sorted(probe.partitions_for_topic(k.orders_topic) or set())
        committed = [probe.committed(TopicPartition(k.orders_topic, p)) or 0 for p in parts]
    finally:
        probe.close()
    assert len(parts) == k.topic_partitions
    assert sum(committed) == len(orders)


def test_sigkill_mid_stream_loses_nothing_and_duplicates_agree(broker, trained_data_dir, tmp_path, redis_url):
    # Shared Redis state, as a consumer group runs in production: a restarted worker
    # re-scores replayed orders against the same state and must give the same answer.
    settings = _settings(trained_data_dir, tmp_path, backend="redis", redis_url=redis_url,
                         key_prefix=f"rwtest-{uuid.uuid4().hex[:8]}")
    k = settings.kafka
    orders = _orders(1500, seed=13)
    produce(broker, [(k.orders_topic, o.order_id.encode(), encode(o)) for o in orders])
    env = worker_env(settings, broker)

    first = start_worker(env, tmp_path / "worker1.log")
    consume(broker, [k.decisions_topic], until=lambda rs: len(rs) >= 400, timeout=120, settle=0)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    # A kill rarely lands between produce and commit, so also lose some commits on
    # purpose: rewind the group by up to 25 records per partition (within the
    # featuriser's dedup window). The restarted
    # worker then re-decides orders that already have decisions, which must agree.
    time.sleep(3.5)  # past the session timeout, so the group is empty
    rewound = _rewind_group(broker, k.group_id, k.orders_topic, by=25)

    second = start_worker(env, tmp_path / "worker2.log")
    try:
        out = consume(
            broker, [k.decisions_topic],
            until=lambda rs: len({json.loads(r.value)["order_id"] for r in rs}) >= len(orders),
            timeout=180, settle=2,
        )
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(timeout=30)

    decisions = _decisions(out, k.decisions_topic)
    by_order: dict[str, list[dict]] = {}
    for d in decisions:
        by_order.setdefault(d["order_id"], []).append(d)
    assert set(by_order) == {o.order_id for o in orders}, "an order was lost"
    duplicated = {oid: ds for oid, ds in by_order.items() if len(ds) > 1}
    assert len(duplicated) >= min(rewound, 50), "the rewind should have produced duplicates"
    for ds in duplicated.values():
        first_d = ds[0]
        for other in ds[1:]:
            assert other["decision_id"] == first_d["decision_id"]
            assert (other["score"], other["action"]) == (first_d["score"], first_d["action"])
            assert [r["code"] for r in other["reasons"]] == [r["code"] for r in first_d["reasons"]]
            assert other["signals"] == first_d["signals"]


def _rewind_group(bootstrap: str, group: str, topic: str, *, by: int) -> int:
    """Join the group as a member and commit offsets ``by`` records back per partition."""
    from kafka import KafkaConsumer, TopicPartition
    from kafka.structs import OffsetAndMetadata

    c = KafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False,
        session_timeout_ms=3000, heartbeat_interval_ms=500, max_poll_records=1,
    )
    try:
        deadline = time.monotonic() + 30
        while not c.assignment() and time.monotonic() < deadline:
            c.poll(timeout_ms=200)
        tps = sorted(c.assignment(), key=lambda tp: tp.partition)
        assert tps, "could not join the group"
        new = {}
        total = 0
        for tp in tps:
            committed = c.committed(TopicPartition(tp.topic, tp.partition)) or 0
            target = max(0, committed - by)
            total += committed - target
            new[tp] = OffsetAndMetadata(target, None, -1)
        c.commit(new)
        return total
    finally:
        c.close(autocommit=False)
