"""The decision sink that fills the review queue, the label sink that closes cases, and the
verdict helper that turns an analyst's verdict into a published Label.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

from contracts import Decision, Label, Order
from detector.review.store import CaseStore, QueueFilter

if TYPE_CHECKING:
    from detector.metrics import Metrics

__all__ = ["CaseSink", "LabelSink", "apply_bulk_verdict", "apply_verdict", "publish_labels"]

log = logging.getLogger(__name__)

Publisher = Callable[[Label], None]


class CaseSink:
    """``sink(decisions, orders)``: index every decision, open or update a case per review.

    Wire it into ``Services.decision_sinks``; pass the batch's orders (by order id) so
    cases hold the order and linked evidence gets its entity keys.

    With ``background=True`` a call only enqueues; one daemon thread writes the queued
    batches together. Use it on the checkout path, where a database write must not
    sit inside the request's latency budget. When the queue is full the caller writes
    itself (back-pressure, never a dropped case). ``flush()`` waits for the queue.
    """

    def __init__(
        self,
        store: CaseStore,
        *,
        metrics: Metrics | None = None,
        metrics_interval_s: float = 1.0,
        background: bool = False,
        max_queue: int = 10_000,
    ) -> None:
        self.store = store
        self.metrics = metrics
        self.metrics_interval_s = metrics_interval_s
        self._queue: queue.Queue[tuple[list[Decision], dict[str, Order]]] | None = None
        if background:
            self._queue = queue.Queue(maxsize=max_queue)
            threading.Thread(target=self._drain, name="riskwire-case-sink", daemon=True).start()

    def __call__(self, decisions: list[Decision], orders: Mapping[str, Order] | None = None) -> None:
        if not decisions:
            return
        if self._queue is not None:
            try:
                self._queue.put_nowait((list(decisions), dict(orders or {})))
                return
            except queue.Full:
                log.warning("case sink queue is full: writing in the caller")
        self._write(decisions, orders)

    def _write(self, decisions: Sequence[Decision], orders: Mapping[str, Order] | None) -> None:
        counts = self.store.record_decisions(decisions, orders)
        if counts["opened"] or counts["updated"]:
            log.info("review cases: %d opened, %d updated from %d decisions",
                     counts["opened"], counts["updated"], len(decisions))
        if self.metrics is not None:
            self.store.refresh_metrics(self.metrics, min_interval_s=self.metrics_interval_s)

    def _drain(self) -> None:
        q = self._queue
        if q is None:
            return
        while True:
            items = [q.get()]
            # Merge whatever else is waiting: one transaction for many checkout decisions.
            while len(items) < 500:
                try:
                    items.append(q.get_nowait())
                except queue.Empty:
                    break
            decisions = [d for ds, _ in items for d in ds]
            orders = {k: v for _, os in items for k, v in os.items()}
            try:
                self._write(decisions, orders)
            except Exception:
                # The loop must survive a database outage; these cases are lost, and said so.
                log.exception("case sink failed for %d decisions", len(decisions))
            finally:
                for _ in items:
                    q.task_done()

    def flush(self) -> None:
        """Block until every queued decision is written (background mode)."""
        if self._queue is not None:
            self._queue.join()


class LabelSink:
    """Consumed labels (chargeback, refund) are stored and close the cases they settle."""

    def __init__(self, store: CaseStore, *, metrics: Metrics | None = None) -> None:
        self.store = store
        self.metrics = metrics

    def close_cases(self, labels: Sequence[Label]) -> int:
        closed = self.store.record_labels(labels)
        if closed:
            log.info("%d review cases closed by outside labels", closed)
        if self.metrics is not None and closed:
            self.store.refresh_metrics(self.metrics)
        return closed

    __call__ = close_cases


def publish_labels(store: CaseStore, labels: Sequence[Label], publish: Publisher | None) -> bool:
    """Send labels to the topic when a publisher is wired; they are stored either way."""
    if publish is None or not labels:
        return False
    for label in labels:
        publish(label)
    store.mark_published(labels)
    return True


def apply_verdict(
    store: CaseStore,
    case_id: int,
    *,
    actor: str,
    role: str,
    verdict: str,
    note: str = "",
    publish: Publisher | None = None,
    metrics: Metrics | None = None,
) -> tuple[Label, bool]:
    """Record the verdict, publish its Label, update metrics; returns (label, published)."""
    label = store.verdict(case_id, actor=actor, role=role, verdict=verdict, note=note)
    published = False
    try:
        published = publish_labels(store, [label], publish)
    except Exception:
        # The verdict is committed and the label stored; it can be re-exported later.
        log.exception("publishing an analyst label failed (case %s)", case_id)
    if metrics is not None:
        metrics.verdicts.labels(verdict=verdict).inc()
        store.refresh_metrics(metrics)
    return label, published


def apply_bulk_verdict(
    store: CaseStore,
    *,
    actor: str,
    role: str,
    filters: QueueFilter,
    verdict: str,
    note: str = "",
    publish: Publisher | None = None,
    metrics: Metrics | None = None,
) -> list[Label]:
    labels = store.bulk_verdict(actor=actor, role=role, filters=filters, verdict=verdict, note=note)
    try:
        publish_labels(store, labels, publish)
    except Exception:
        log.exception("publishing bulk analyst labels failed")
    if metrics is not None:
        if labels:
            metrics.verdicts.labels(verdict=verdict).inc(len(labels))
        store.refresh_metrics(metrics)
    return labels
