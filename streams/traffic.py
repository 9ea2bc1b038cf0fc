"""Moving generated or historical events: to Kafka, to JSONL files and back."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

from kafka import KafkaProducer

from contracts import Label, Order, ReturnRequest
from detector.settings import KafkaSettings
from streams.generator import GeneratedEvent
from streams.serde import encode

__all__ = ["MALFORMED_SAMPLES", "read_handbook_events", "read_jsonl", "send_events", "write_jsonl"]

_KINDS: dict[str, type[Order] | type[ReturnRequest] | type[Label]] = {
    "orders": Order, "returns": ReturnRequest, "labels": Label,
}

#: Records a real producer gets wrong: broken JSON, wrong types, missing fields, bad bytes.
MALFORMED_SAMPLES: tuple[bytes, ...] = (
    b'{"order_id": "o-bad-1", "created_at": ',
    b'{"schema_version": 1, "created_at": "2026-11-22T09:00:00Z"}',
    b'{"schema_version": 1, "order_id": "o-bad-3", "created_at": "yesterday"}',
    b'{"schema_version": 1, "order_id": "o-bad-4", "created_at": "2026-11-22T09:00:00"}',
    b'{"schema_version": 9, "order_id": "o-bad-5", "created_at": "2026-11-22T09:00:00Z"}',
    b'{"schema_version": 1, "order_id": "o-bad-6", "created_at": "2026-11-22T09:00:00Z", "items": [{"sku": "X", "quantity": -3}]}',
    b"\xff\xfe\x00not json at all",
    b"[]",
    b"",
)


def _topic_for(kind: str, topics: KafkaSettings) -> str:
    return {"orders": topics.orders_topic, "returns": topics.returns_topic, "labels": topics.labels_topic}[kind]


def send_events(
    events: Iterable[GeneratedEvent],
    *,
    bootstrap_servers: str,
    topics: KafkaSettings,
    rate: float = 0.0,
    malformed_share: float = 0.0,
    seed: int = 0,
    stop: Any = None,
) -> dict[str, int]:
    """Produce events (keyed by order id) at ``rate`` orders/s; returns counts per topic."""
    rng = random.Random(seed)
    producer = KafkaProducer(bootstrap_servers=bootstrap_servers, acks="all", linger_ms=20, client_id="riskwire-generator")
    counts: dict[str, int] = {"orders": 0, "returns": 0, "labels": 0, "malformed": 0}
    started = time.monotonic()
    try:
        for ev in events:
            if stop is not None and stop.is_set():
                break
            topic = _topic_for(ev.topic, topics)
            producer.send(topic, key=ev.key.encode(), value=encode(ev.event))
            counts[ev.topic] += 1
            if ev.topic == "orders" and malformed_share and rng.random() < malformed_share:
                bad = MALFORMED_SAMPLES[rng.randrange(len(MALFORMED_SAMPLES))]
                producer.send(topics.orders_topic, key=b"malformed", value=bad)
                counts["malformed"] += 1
            if rate > 0 and ev.topic == "orders":
                ahead = counts["orders"] / rate - (time.monotonic() - started)
                if ahead > 0:
                    time.sleep(ahead)
        producer.flush(timeout=60)
    finally:
        producer.close(timeout=10)
    return counts


def write_jsonl(events: Iterable[GeneratedEvent], path: Path) -> int:
    n = 0
    with path.open("w", encoding="utf-8") as fh:
        for ev in events:
            fh.write(json.dumps({"topic": ev.topic, "key": ev.key, "value": ev.event.model_dump(mode="json", exclude_none=True)}, ensure_ascii=False))
            fh.write("\n")
            n += 1
    return n


def read_jsonl(path: Path, *, limit: int = 0) -> Iterator[GeneratedEvent]:
    """Events from a file written by ``write_jsonl`` (or plain Order JSON lines)."""
    orders = 0
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if not line.strip():
                continue
            raw = json.loads(line)
            kind = raw.get("topic", "orders") if "value" in raw else "orders"
            value = raw.get("value", raw)
            event = _KINDS[kind].model_validate(value)
            yield GeneratedEvent(kind, event.order_id, event, event.created_at)
            if kind == "orders":
                orders += 1
                if limit and orders >= limit:
                    return


def read_handbook_events(path: Path, *, label_delay_s: int, limit: int = 0) -> Iterator[GeneratedEvent]:
    """Handbook transactions as Orders in event-time order, TX_FRAUD as Labels after the delay."""
    from features.handbook import handbook_events, read_handbook

    df = read_handbook(path, nrows=limit or None)
    orders, labels, _n = handbook_events(df, label_delay_s=label_delay_s)
    li = 0
    for order in orders:
        while li < len(labels) and labels[li].created_at <= order.created_at:
            yield GeneratedEvent("labels", labels[li].order_id, labels[li], labels[li].created_at)
            li += 1
        # The converter builds trusted Orders without validation (float amounts); the
        # wire wants the Decimal the schema declares.
        payment = order.payment.model_copy(update={"amount": Decimal(str(order.payment.amount))})
        order = order.model_copy(update={"payment": payment})
        yield GeneratedEvent("orders", order.order_id, order, order.created_at)
