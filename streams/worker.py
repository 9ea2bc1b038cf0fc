"""The stream worker: poll -> deserialise -> decide -> produce -> commit, in micro-batches.

Offsets are committed only after every record the batch produced (decisions and dead
letters) is acknowledged by the broker, so a crash replays the batch: at-least-once,
and duplicates carry the same decision id. SIGTERM sets a stop flag; the loop finishes
its batch, commits and exits 0.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from typing import Any

from kafka import ConsumerRebalanceListener, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata

from contracts import Decision, Order, RiskwireError
from detector.metrics import Metrics
from detector.settings import KafkaSettings
from streams.processing import BatchOutcome, BatchProcessor, InRecord, OutRecord
from streams.serde import encode

__all__ = ["ProduceFailed", "Worker", "install_stop_signals", "make_consumer", "make_producer"]

log = logging.getLogger(__name__)


class ProduceFailed(RiskwireError):
    """The broker did not acknowledge a batch's output; the batch will be replayed."""


def make_consumer(settings: KafkaSettings, bootstrap_servers: str) -> KafkaConsumer:
    return KafkaConsumer(
        bootstrap_servers=bootstrap_servers,
        group_id=settings.group_id,
        client_id="riskwire-worker",
        enable_auto_commit=False,
        auto_offset_reset=settings.auto_offset_reset,
        max_poll_records=settings.max_poll_records,
        session_timeout_ms=settings.session_timeout_ms,
        heartbeat_interval_ms=settings.heartbeat_interval_ms,
    )


def make_producer(bootstrap_servers: str, *, linger_ms: int = 5) -> KafkaProducer:
    return KafkaProducer(
        bootstrap_servers=bootstrap_servers,
        client_id="riskwire-worker",
        acks="all",
        linger_ms=linger_ms,
        retries=5,
        max_in_flight_requests_per_connection=1,
    )


class _Rebalances(ConsumerRebalanceListener):
    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def on_partitions_revoked(self, revoked: Any) -> None:
        self._metrics.rebalances.labels(kind="revoked").inc()
        log.info("partitions revoked: %s", sorted((tp.topic, tp.partition) for tp in revoked))

    def on_partitions_assigned(self, assigned: Any) -> None:
        self._metrics.rebalances.labels(kind="assigned").inc()
        log.info("partitions assigned: %s", sorted((tp.topic, tp.partition) for tp in assigned))


class Worker:
    """Owns one consumer and one producer; ``run`` returns when ``stop`` is set."""

    def __init__(
        self,
        *,
        consumer: KafkaConsumer,
        producer: KafkaProducer,
        processor: BatchProcessor,
        settings: KafkaSettings,
        metrics: Metrics,
        on_decisions: Callable[[list[Decision], Mapping[str, Order]], None] | None = None,
        late: Callable[[], list[Decision]] | None = None,
    ) -> None:
        self._late = late
        self._consumer = consumer
        self._producer = producer
        self._processor = processor
        self._settings = settings
        self._metrics = metrics
        self._on_decisions = on_decisions
        self.batches = 0

    def run(self, stop: threading.Event) -> None:
        self._consumer.subscribe(self._processor.input_topics, listener=_Rebalances(self._metrics))
        while not stop.is_set():
            polled = self._consumer.poll(
                timeout_ms=self._settings.poll_timeout_ms, max_records=self._settings.max_poll_records
            )
            self._emit_late()
            if not polled:
                self._update_lag()
                continue
            records = [
                InRecord(topic=r.topic, partition=r.partition, offset=r.offset, key=r.key, value=r.value,
                         timestamp_ms=r.timestamp or 0)
                for tp in sorted(polled, key=lambda tp: (tp.topic, tp.partition))
                for r in polled[tp]
            ]
            try:
                self.handle(records)
            except (ProduceFailed, KafkaError) as exc:
                # Nothing committed: rewind to the batch start and try again after a pause.
                log.error("batch not acknowledged (%s); rewinding %d records", exc, len(records))
                self._rewind(records)
                stop.wait(1.0)
            self._update_lag()
        log.info("stop requested: last batch committed, closing")

    def handle(self, records: Sequence[InRecord]) -> BatchOutcome:
        outcome = self._processor.process(records)
        with self._metrics.stage_timer("produce"):
            self._produce(outcome.out)
        self._commit(records)
        self.batches += 1
        self._metrics.observe_broker_latency(
            [r.timestamp_ms for r in records if r.topic == self._settings.orders_topic], decided_at=time.time()
        )
        if self._on_decisions is not None and outcome.decisions:
            try:
                self._on_decisions(outcome.decisions, outcome.orders)
            except Exception:
                log.exception("decision sink failed; decisions are on the topic regardless")
        return outcome

    def _emit_late(self) -> None:
        """Re-decisions whose LLM verdict arrived after their batch was committed.

        They have no input offsets of their own: if producing them fails, the first
        decision stands (it is already on the topic) and the loop goes on.
        """
        if self._late is None:
            return
        revisions = self._late()
        if not revisions:
            return
        topic = self._settings.decisions_topic
        try:
            self._produce([OutRecord(topic=topic, key=d.order_id.encode(), value=encode(d)) for d in revisions])
        except (ProduceFailed, KafkaError) as exc:
            log.error("%d late re-decisions not produced: %s", len(revisions), exc)
            return
        self._metrics.messages_decided.labels(topic="late").inc(len(revisions))
        if self._on_decisions is not None:
            try:
                self._on_decisions(revisions, {})
            except Exception:
                log.exception("decision sink failed for late re-decisions")

    def _produce(self, out: Sequence[OutRecord]) -> None:
        futures = [
            self._producer.send(r.topic, key=r.key, value=r.value, headers=r.headers or None) for r in out
        ]
        self._producer.flush(timeout=self._settings.produce_timeout_s)
        for f in futures:
            try:
                f.get(timeout=self._settings.produce_timeout_s)
            except KafkaError as exc:
                raise ProduceFailed(str(exc)) from exc

    def _commit(self, records: Sequence[InRecord]) -> None:
        last: dict[TopicPartition, int] = {}
        for r in records:
            tp = TopicPartition(r.topic, r.partition)
            last[tp] = max(last.get(tp, -1), r.offset)
        self._consumer.commit({tp: OffsetAndMetadata(off + 1, None, -1) for tp, off in last.items()})

    def _rewind(self, records: Sequence[InRecord]) -> None:
        first: dict[TopicPartition, int] = {}
        for r in records:
            tp = TopicPartition(r.topic, r.partition)
            first[tp] = min(first.get(tp, r.offset), r.offset)
        # After a rebalance some partitions may be gone; their new owner replays them
        # from the last commit anyway.
        assigned = self._consumer.assignment()
        for tp, off in first.items():
            if tp in assigned:
                self._consumer.seek(tp, off)

    def _update_lag(self) -> None:
        # end_offsets() is wrong on Tansu (stack.md): lag comes from the fetch highwater.
        for tp in self._consumer.assignment():
            high = self._consumer.highwater(tp)
            if high is None:
                continue
            try:
                pos = self._consumer.position(tp, timeout_ms=100)
            except KafkaError:
                continue
            if pos is not None:
                self._metrics.consumer_lag.labels(topic=tp.topic, partition=str(tp.partition)).set(max(high - pos, 0))


def install_stop_signals(stop: threading.Event) -> None:
    def _handler(signum: int, _frame: Any) -> None:
        log.info("signal %d: draining", signum)
        stop.set()

    signal.signal(signal.SIGTERM, _handler)
    signal.signal(signal.SIGINT, _handler)


def run_worker(
    *,
    processor: BatchProcessor,
    settings: KafkaSettings,
    bootstrap_servers: str,
    metrics: Metrics,
    stop: threading.Event,
    on_decisions: Callable[[list[Decision], Mapping[str, Order]], None] | None = None,
    late: Callable[[], list[Decision]] | None = None,
) -> None:
    """Build the consumer and producer, run until ``stop``, close everything in order."""
    from streams.admin import ensure_topics

    ensure_topics(
        bootstrap_servers,
        [*processor.input_topics, settings.decisions_topic, settings.dlq_topic],
        partitions=settings.topic_partitions,
    )
    with ExitStack() as stack:
        producer = make_producer(bootstrap_servers)
        stack.callback(producer.close, 10)
        stack.callback(producer.flush, settings.produce_timeout_s)
        consumer = make_consumer(settings, bootstrap_servers)
        # No autocommit on close: every batch was committed explicitly after produce.
        stack.callback(consumer.close, False)
        worker = Worker(
            consumer=consumer, producer=producer, processor=processor,
            settings=settings, metrics=metrics, on_decisions=on_decisions, late=late,
        )
        started = time.monotonic()
        worker.run(stop)
        log.info("worker ran %d batches in %.1fs", worker.batches, time.monotonic() - started)
