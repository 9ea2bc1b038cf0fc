"""One micro-batch of records in, decisions and dead letters out, with no Kafka in sight.

The worker wraps this in poll/produce/commit; tests drive it with plain lists
(records in, records out), like Bytewax's TestingSource.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from contracts import Decision, InvalidEvent, Label, Order, ReturnRequest
from detector.metrics import Metrics
from detector.settings import KafkaSettings
from detector.wiring import Services
from streams.deadletter import DeadLetterRecord, make_dead_letter
from streams.serde import decode_label, decode_order, decode_return, encode

__all__ = ["BatchOutcome", "BatchProcessor", "InRecord", "OutRecord"]

log = logging.getLogger(__name__)

#: Decides a batch of return requests; supplied by the text/returns stage when wired.
ReturnsHandler = Callable[[Sequence[ReturnRequest]], list[Decision]]


@dataclass(frozen=True, slots=True)
class InRecord:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    #: Broker timestamp (ms since epoch), for end-to-end latency; 0 when unknown.
    timestamp_ms: int = 0


@dataclass(frozen=True, slots=True)
class OutRecord:
    topic: str
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]] = field(default_factory=list)


@dataclass
class BatchOutcome:
    out: list[OutRecord] = field(default_factory=list)
    decisions: list[Decision] = field(default_factory=list)
    labels: list[Label] = field(default_factory=list)
    #: The decided orders by id, for sinks that keep the order with its decision.
    orders: dict[str, Order] = field(default_factory=dict)
    dead_letters: int = 0


class BatchProcessor:
    """Decode, decide and encode one batch; never raises on bad input."""

    def __init__(
        self,
        *,
        services: Services,
        topics: KafkaSettings,
        metrics: Metrics,
        returns_handler: ReturnsHandler | None = None,
    ) -> None:
        self._services = services
        self._topics = topics
        self._metrics = metrics
        self._returns = returns_handler

    @property
    def input_topics(self) -> list[str]:
        names = [self._topics.labels_topic, self._topics.orders_topic]
        if self._returns is not None:
            names.append(self._topics.returns_topic)
        return names

    def process(self, records: Sequence[InRecord]) -> BatchOutcome:
        outcome = BatchOutcome()
        orders: list[tuple[InRecord, Order]] = []
        returns: list[tuple[InRecord, ReturnRequest]] = []
        labels: list[Label] = []
        t = self._topics
        with self._metrics.stage_timer("parse"):
            for rec in records:
                self._metrics.messages_in.labels(topic=rec.topic).inc()
                try:
                    if rec.topic == t.orders_topic:
                        orders.append((rec, decode_order(rec.value)))
                    elif rec.topic == t.labels_topic:
                        labels.append(decode_label(rec.value))
                    elif rec.topic == t.returns_topic and self._returns is not None:
                        returns.append((rec, decode_return(rec.value)))
                    else:
                        self._dead(outcome, rec, f"unexpected topic {rec.topic!r}", "unexpected_topic")
                except InvalidEvent as exc:
                    self._dead(outcome, rec, str(exc), "invalid")

        # Labels first: they are older news than the orders polled with them.
        if labels:
            self._services.engine.apply_labels(labels)
            outcome.labels.extend(labels)
            after = getattr(self._services, "after_labels", None)
            if after is not None:
                try:
                    after(labels)
                except Exception:
                    # Closing cases is bookkeeping; the labels are already in the state.
                    log.exception("label sink failed for %d labels", len(labels))
            self._metrics.messages_decided.labels(topic=t.labels_topic).inc(len(labels))

        if orders:
            outcome.orders = {o.order_id: o for _, o in orders}
            for rec, decision in self._decide(orders, outcome):
                outcome.decisions.append(decision)
                outcome.out.append(
                    OutRecord(topic=t.decisions_topic, key=decision.order_id.encode(), value=encode(decision))
                )
                self._metrics.messages_decided.labels(topic=rec.topic).inc()
        if returns and self._returns is not None:
            for (rec, _ret), decision in zip(returns, self._returns([r for _, r in returns]), strict=True):
                outcome.decisions.append(decision)
                outcome.out.append(
                    OutRecord(topic=t.decisions_topic, key=decision.order_id.encode(), value=encode(decision))
                )
                self._metrics.messages_decided.labels(topic=rec.topic).inc()
        return outcome

    def _decide(
        self, orders: list[tuple[InRecord, Order]], outcome: BatchOutcome
    ) -> list[tuple[InRecord, Decision]]:
        engine = self._services.engine
        try:
            decided = engine.decide_batch([o for _, o in orders], path="stream")
            return list(zip([r for r, _ in orders], decided, strict=True))
        except Exception:
            # A bug, not bad input: isolate the order that triggers it so the rest of
            # the batch is still decided and the poison record goes to the DLQ.
            log.exception("batch of %d orders failed; retrying one by one", len(orders))
        pairs: list[tuple[InRecord, Decision]] = []
        for rec, order in orders:
            try:
                pairs.append((rec, engine.decide(order, path="stream")))
            except Exception as exc:
                self._dead(outcome, rec, f"engine error: {type(exc).__name__}: {str(exc)[:300]}", "engine_error")
        return pairs

    def _dead(self, outcome: BatchOutcome, rec: InRecord, error: str, kind: str) -> None:
        dl: DeadLetterRecord = make_dead_letter(
            key=rec.key, value=rec.value, error=error, kind=kind,
            topic=rec.topic, partition=rec.partition, offset=rec.offset,
        )
        outcome.out.append(OutRecord(topic=self._topics.dlq_topic, key=dl.key, value=dl.value, headers=dl.headers))
        outcome.dead_letters += 1
        self._metrics.dead_letters.labels(topic=rec.topic, error=kind).inc()
        # Topic, partition and offset identify the record; the error text never echoes input.
        log.warning("dead-lettered %s[%d]@%d: %s", rec.topic, rec.partition, rec.offset, error[:300])
