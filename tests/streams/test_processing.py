"""The stream logic in memory: records in, records out, no broker (Bytewax-style)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime

from contracts import Decision, Label, Order, Versions
from detector.engine import decision_id_for
from detector.metrics import Metrics
from detector.settings import KafkaSettings
from streams.deadletter import from_headers
from streams.processing import BatchProcessor, InRecord
from streams.traffic import MALFORMED_SAMPLES
from tests.conftest import order_payload


class _CountingEngine:
    """Decides by amount; records what it saw. Only the routing around it is under test."""

    def __init__(self, poison: str | None = None) -> None:
        self.poison = poison
        self.labels: list[Label] = []
        self.batches: list[int] = []

    def decide_batch(self, orders: Sequence[Order], *, path: str = "stream") -> list[Decision]:
        if self.poison and any(o.order_id == self.poison for o in orders):
            raise RuntimeError("boom")
        self.batches.append(len(orders))
        return [self._decide(o) for o in orders]

    def decide(self, order: Order, *, path: str = "sync") -> Decision:
        if order.order_id == self.poison:
            raise RuntimeError("boom")
        return self._decide(order)

    def _decide(self, o: Order) -> Decision:
        score = min(100, int(o.payment.amount or 0) // 10)
        return Decision(
            decision_id=decision_id_for(o.order_id, 1), order_id=o.order_id, event_time=o.created_at,
            decided_at=datetime.now(UTC), score=score, action="review" if score >= 70 else "approve",
            versions=Versions(engine="t", features="t", model="t", ruleset="t"),
        )

    def apply_labels(self, labels: Sequence[Label]) -> None:
        self.labels.extend(labels)


class _Services:
    def __init__(self, engine: _CountingEngine) -> None:
        self.engine = engine


def _processor(engine: _CountingEngine) -> BatchProcessor:
    return BatchProcessor(services=_Services(engine), topics=KafkaSettings(), metrics=Metrics.create())  # type: ignore[arg-type]


def _rec(value: bytes | None, offset: int, topic: str = "orders", key: bytes | None = b"k") -> InRecord:
    return InRecord(topic=topic, partition=offset % 2, offset=offset, key=key, value=value)


def test_valid_and_malformed_records_split_into_decisions_and_dead_letters():
    engine = _CountingEngine()
    valid = [json.dumps(order_payload(order_id=f"o-{i}", payment={"amount": str(100 * i)})).encode() for i in range(5)]
    records = [_rec(v, i) for i, v in enumerate(valid)]
    records += [_rec(bad, 100 + j) for j, bad in enumerate(MALFORMED_SAMPLES)]
    outcome = _processor(engine).process(records)

    decisions = [r for r in outcome.out if r.topic == "risk-decisions"]
    dead = [r for r in outcome.out if r.topic == "orders-dlq"]
    assert len(decisions) == 5
    assert len(dead) == len(MALFORMED_SAMPLES) == outcome.dead_letters
    assert engine.batches == [5]  # one vectorised call for the batch
    assert [d.key for d in decisions] == [f"o-{i}".encode() for i in range(5)]
    assert json.loads(decisions[3].value)["score"] == 30

    letter = from_headers(dead[0].key, dead[0].value, dead[0].headers)
    assert letter.value == MALFORMED_SAMPLES[0]  # the raw bytes, untouched
    assert letter.source_topic == "orders" and letter.offset == 100 and letter.partition == 0
    assert letter.error.startswith("Order invalid")


def test_labels_are_applied_before_orders_of_the_same_batch():
    engine = _CountingEngine()
    label = json.dumps({"order_id": "o-1", "label": "fraud", "source": "chargeback",
                        "created_at": "2026-11-22T09:00:00Z"}).encode()
    outcome = _processor(engine).process([_rec(json.dumps(order_payload()).encode(), 0), _rec(label, 1, topic="labels")])
    assert [lb.order_id for lb in engine.labels] == ["o-1"]
    assert len(outcome.decisions) == 1


def test_an_engine_bug_isolates_the_poison_order_and_decides_the_rest():
    engine = _CountingEngine(poison="o-2")
    records = [_rec(json.dumps(order_payload(order_id=f"o-{i}")).encode(), i) for i in range(4)]
    outcome = _processor(engine).process(records)
    assert sorted(d.order_id for d in outcome.decisions) == ["o-0", "o-1", "o-3"]
    dead = [r for r in outcome.out if r.topic == "orders-dlq"]
    assert len(dead) == 1
    assert from_headers(dead[0].key, dead[0].value, dead[0].headers).error.startswith("engine error: RuntimeError")


def test_returns_without_a_handler_are_not_consumed():
    processor = _processor(_CountingEngine())
    assert "returns" not in processor.input_topics
    assert processor.input_topics == ["labels", "orders"]


def test_real_engine_in_memory_records_in_decisions_out(services_factory):
    """The whole stream logic with the real engine and no broker."""
    from streams.generator import GeneratorConfig, TrafficGenerator
    from streams.serde import encode

    services = services_factory()
    processor = BatchProcessor(services=services, topics=KafkaSettings(), metrics=services.metrics)
    events = list(TrafficGenerator(GeneratorConfig(seed=31)).events(300))
    records = [
        _rec(encode(ev.event), i, topic="orders" if ev.topic == "orders" else "labels")
        for i, ev in enumerate(events) if ev.topic in ("orders", "labels")
    ]
    records.insert(50, _rec(b'{"order_id": 7}', 10_000))
    outcome = processor.process(records)

    n_orders = sum(1 for ev in events if ev.topic == "orders")
    decided = [json.loads(r.value) for r in outcome.out if r.topic == "risk-decisions"]
    assert len(decided) == n_orders == len(outcome.orders)
    assert outcome.dead_letters == 1
    assert {d["order_id"] for d in decided} == {ev.key for ev in events if ev.topic == "orders"}
    assert all(d["versions"]["model"] == services.engine.model.version for d in decided)
    counted = services.metrics.decisions.labels(action="approve", path="stream")._value.get()
    assert counted == sum(1 for d in decided if d["action"] == "approve")
