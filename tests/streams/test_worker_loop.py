"""The worker loop's own logic around Kafka, with stand-in clients (the broker tests are
in test_worker_integration.py)."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from typing import ClassVar

from contracts import Decision, Versions
from detector.engine import decision_id_for
from detector.metrics import Metrics
from detector.settings import KafkaSettings
from streams.worker import Worker


class _Future:
    def get(self, timeout=None):
        return None


class _Producer:
    def __init__(self):
        self.sent = []

    def send(self, topic, key=None, value=None, headers=None):
        self.sent.append((topic, key, value))
        return _Future()

    def flush(self, timeout=None):
        pass


class _Consumer:
    def __init__(self, stop, polls):
        self.stop, self.polls = stop, polls

    def subscribe(self, topics, listener=None):
        self.topics = topics

    def poll(self, timeout_ms=0, max_records=None):
        self.polls -= 1
        if self.polls <= 0:
            self.stop.set()
        return {}

    def assignment(self):
        return set()


class _Processor:
    input_topics: ClassVar[list[str]] = ["labels", "orders"]


def _revision(order_id: str) -> Decision:
    return Decision(
        decision_id=decision_id_for(order_id, 2), order_id=order_id, revision=2,
        event_time=datetime(2026, 11, 22, tzinfo=UTC), decided_at=datetime.now(UTC), score=88, action="review",
        versions=Versions(engine="t", features="t", model="t", ruleset="t", prompt="p"),
    )


def test_late_re_decisions_are_produced_and_sunk_even_when_polls_are_empty():
    stop = threading.Event()
    producer = _Producer()
    pending = [[_revision("o-1"), _revision("o-2")], []]
    sunk: list[Decision] = []
    worker = Worker(
        consumer=_Consumer(stop, polls=2), producer=producer, processor=_Processor(),  # type: ignore[arg-type]
        settings=KafkaSettings(), metrics=Metrics.create(),
        on_decisions=lambda ds, orders: sunk.extend(ds), late=lambda: pending.pop(0) if pending else [],
    )
    worker.run(stop)
    assert [(t, k) for t, k, _ in producer.sent] == [("risk-decisions", b"o-1"), ("risk-decisions", b"o-2")]
    assert json.loads(producer.sent[0][2])["revision"] == 2
    assert [d.order_id for d in sunk] == ["o-1", "o-2"]
