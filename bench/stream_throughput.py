"""Stream throughput: riskwire's worker vs a bare consume->produce->commit loop.

Both run on the same embedded broker in the same run, over the same generated orders
(1 KB-ish JSON), one consumer, micro-batches of 500. Prints orders/s for each and the
ratio (target: the engine at least half of the bare loop).

    .venv/bin/python bench/stream_throughput.py [--orders 20000]
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
import uuid
from pathlib import Path

from _common import bench_settings, generated_orders, train_registry
from kafka import KafkaConsumer, KafkaProducer
from kafka.structs import OffsetAndMetadata, TopicPartition


def produce_all(servers: str, topic: str, payloads: list[tuple[bytes, bytes]]) -> None:
    p = KafkaProducer(bootstrap_servers=servers, acks="all", linger_ms=20)
    for key, value in payloads:
        p.send(topic, key=key, value=value)
    p.flush(60)
    p.close()


def bare_loop(servers: str, topic: str, out_topic: str, n: int) -> float:
    consumer = KafkaConsumer(
        topic, bootstrap_servers=servers, group_id=f"bare-{uuid.uuid4().hex[:6]}", enable_auto_commit=False,
        auto_offset_reset="earliest", max_poll_records=500, session_timeout_ms=3000, heartbeat_interval_ms=500,
    )
    producer = KafkaProducer(bootstrap_servers=servers, acks="all", linger_ms=5)
    done, started = 0, None
    while done < n:
        polled = consumer.poll(timeout_ms=200, max_records=500)
        if not polled:
            continue
        if started is None:
            started = time.perf_counter()
        offsets = {}
        futures = []
        for tp, records in polled.items():
            for r in records:
                futures.append(producer.send(out_topic, key=r.key, value=r.value))
            offsets[TopicPartition(tp.topic, tp.partition)] = OffsetAndMetadata(records[-1].offset + 1, None, -1)
            done += len(records)
        producer.flush()
        for f in futures:
            f.get(timeout=30)
        consumer.commit(offsets)
    elapsed = time.perf_counter() - started
    consumer.close(autocommit=False)
    producer.close()
    return n / elapsed


def engine_loop(servers: str, settings, n: int) -> tuple[float, float]:
    from detector.wiring import build_services
    from streams.processing import BatchProcessor
    from streams.worker import run_worker

    services = build_services(settings)
    processor = BatchProcessor(services=services, topics=settings.kafka, metrics=services.metrics)
    stop = threading.Event()
    counter = services.metrics.messages_decided.labels(topic=settings.kafka.orders_topic)
    first: list[float] = []

    def watch() -> None:
        while not stop.is_set():
            v = counter._value.get()
            if v > 0 and not first:
                first.append(time.perf_counter())
            if v >= n:
                first.append(time.perf_counter())
                stop.set()
            time.sleep(0.01)

    t = threading.Thread(target=watch, daemon=True)
    t.start()
    run_worker(processor=processor, settings=settings.kafka, bootstrap_servers=servers,
               metrics=services.metrics, stop=stop)
    t.join()
    # The first batch's own time is not in (first decision -> last), so add one batch back.
    elapsed = first[-1] - first[0]
    return (n - settings.kafka.max_poll_records) / elapsed, elapsed


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--orders", type=int, default=20_000)
    args = ap.parse_args()
    from detector.broker import EmbeddedBroker
    from detector.settings import KafkaSettings
    from streams.serde import encode

    with tempfile.TemporaryDirectory() as tmp, EmbeddedBroker() as broker:
        tag = uuid.uuid4().hex[:6]
        kafka = KafkaSettings(orders_topic=f"orders-{tag}", decisions_topic=f"dec-{tag}", dlq_topic=f"dlq-{tag}",
                              labels_topic=f"labels-{tag}", group_id=f"rw-{tag}", max_poll_records=500)
        settings = bench_settings(Path(tmp)).model_copy(update={"kafka": kafka})
        train_registry(settings)
        orders = generated_orders(args.orders)
        payloads = [(o.order_id.encode(), encode(o)) for o in orders]
        size = sum(len(v) for _, v in payloads) / len(payloads)
        produce_all(broker.bootstrap_servers, kafka.orders_topic, payloads)
        produce_all(broker.bootstrap_servers, f"bare-in-{tag}", payloads)

        bare = bare_loop(broker.bootstrap_servers, f"bare-in-{tag}", f"bare-out-{tag}", len(payloads))
        engine, elapsed = engine_loop(broker.bootstrap_servers, settings, len(payloads))
        print(f"orders: {len(payloads)} (generated, mean {size:.0f} bytes), broker: embedded Tansu, 1 consumer")
        print(f"bare consume->produce->commit: {bare:10.0f} orders/s")
        print(f"riskwire worker (full engine): {engine:10.0f} orders/s  ({elapsed:.1f} s)")
        print(f"ratio engine/bare:             {engine / bare:10.2f}   (target >= 0.50)")


if __name__ == "__main__":
    main()
