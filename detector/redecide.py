"""Late LLM verdicts re-decide their orders: a new Decision revision, through the sinks.

On the stream path the LLM gets a per-order budget. A call that misses it keeps
running and its verdict lands in the LLM cache. The text stage tells this component
which orders are waiting (:meth:`LateVerdicts.track`); the decision sinks tell it what
was decided (:meth:`LateVerdicts.observe`); the worker asks, once per loop iteration,
for the orders whose verdict has arrived (:meth:`LateVerdicts.poll_late`) and produces
what comes back to the decisions topic and to the decision sinks, exactly like a batch's
decisions (so the review queue opens a case if the new revision escalates).

A re-decision runs the engine again on path ``"late"`` (LLM budget 0: the cache only,
where the verdict now is; the featuriser returns the features the order got the first
time). The new Decision keeps the order id, takes ``revision + 1`` and
``decision_id_for(order_id, revision + 1)``, and never scores lower or acts more
leniently than the first (a late signal only adds evidence), except that an analyst's
``allow`` rule still approves. If the verdict changes nothing (same labels, score and
action), no revision is emitted.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from contracts import Decision, Order
from detector.engine import decision_id_for

__all__ = ["LateVerdicts", "VerdictSource", "merge_revision"]

log = logging.getLogger(__name__)

_SEVERITY = {"approve": 0, "review": 1, "decline": 2}


class VerdictSource(Protocol):
    """What the LLM classifier offers for late verdicts (``models.text.llm.LlmClassifier``)."""

    def lookup(self, text: str) -> dict[str, float] | None: ...

    def in_flight(self, text: str) -> bool: ...


class _Decider(Protocol):
    def decide_batch(self, orders: Sequence[Order], *, path: str = ...) -> list[Decision]: ...


@dataclass
class _Pending:
    order: Order
    texts: tuple[str, ...]
    since: float
    first: Decision | None = None
    extra: list[str] = field(default_factory=list)


class LateVerdicts:
    """Tracks orders waiting for an LLM verdict and re-decides them when it lands.

    Parameters
    ----------
    engine : Engine
        Re-decides an order (``decide_batch(orders, path="late")``).
    llm : VerdictSource
        The LLM classifier whose cache receives late verdicts.
    window_s : float
        Orders still waiting after this long are dropped (their first decision stands,
        with its ``degraded`` entry).
    max_tracked : int
        Bound on waiting orders; the oldest is dropped beyond it.
    clock : callable
        Monotonic seconds (injectable for tests).
    """

    def __init__(
        self,
        *,
        engine: _Decider,
        llm: VerdictSource,
        window_s: float = 120.0,
        max_tracked: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._engine = engine
        self._llm = llm
        self.window_s = window_s
        self.max_tracked = max_tracked
        self._clock = clock
        self._lock = threading.Lock()
        self._pending: OrderedDict[str, _Pending] = OrderedDict()
        #: Counters for the benchmark and logs: emitted, unchanged, expired, failed, dropped.
        self.stats: dict[str, int] = dict.fromkeys(("tracked", "emitted", "unchanged", "expired", "failed", "dropped"), 0)

    def __len__(self) -> int:
        return len(self._pending)

    def track(self, order: Order, texts: Sequence[str]) -> None:
        """The text stage left ``texts`` of ``order`` waiting for the LLM."""
        texts = tuple(t for t in texts if t)
        if not texts:
            return
        with self._lock:
            if order.order_id in self._pending:
                return
            self._pending[order.order_id] = _Pending(order=order, texts=texts, since=self._clock())
            self.stats["tracked"] += 1
            while len(self._pending) > self.max_tracked:
                self._pending.popitem(last=False)
                self.stats["dropped"] += 1

    def observe(self, decisions: list[Decision], orders: Mapping[str, Order] | None = None) -> None:
        """A decision sink (``Services.decision_sinks``: ``sink(decisions, orders)``):
        remembers the decision each waiting order got."""
        with self._lock:
            for d in decisions:
                if d.subject != "order":
                    continue
                entry = self._pending.get(d.order_id)
                if entry is not None and (entry.first is None or d.revision > entry.first.revision):
                    entry.first = d

    def poll_late(self, now: float | None = None) -> list[Decision]:
        """New Decision revisions for orders whose LLM verdict has arrived since the last poll.

        Cheap when nothing is waiting; the worker calls it once per loop iteration and
        produces the result to the decisions topic and the decision sinks.
        """
        if not self._pending:
            return []
        now = self._clock() if now is None else now
        ready: list[_Pending] = []
        with self._lock:
            for order_id, entry in list(self._pending.items()):
                waiting = any(self._llm.in_flight(t) for t in entry.texts)
                expired = now - entry.since >= self.window_s
                if waiting or entry.first is None:
                    if expired:
                        del self._pending[order_id]
                        self.stats["expired"] += 1
                    continue
                del self._pending[order_id]
                if all(self._llm.lookup(t) is None for t in entry.texts):
                    self.stats["failed"] += 1  # the call failed: the first decision stands
                    continue
                ready.append(entry)
        if not ready:
            return []
        try:
            fresh = self._engine.decide_batch([e.order for e in ready], path="late")
        except Exception:  # called from the worker loop, which must not die
            # The first decisions stand; a bug here must not stop the stream.
            log.exception("late re-decision of %d orders failed", len(ready))
            self.stats["failed"] += len(ready)
            return []
        out: list[Decision] = []
        for entry, new in zip(ready, fresh, strict=True):
            if entry.first is None:  # filtered above; keeps the type checker honest
                continue
            decision = merge_revision(entry.first, new)
            if decision is None:
                self.stats["unchanged"] += 1
                continue
            self.stats["emitted"] += 1
            out.append(decision)
        if out:
            log.info("late LLM verdicts re-decided %d orders", len(out))
        return out


def merge_revision(first: Decision, new: Decision) -> Decision | None:
    """The next revision of ``first`` given the re-run ``new``; None if nothing changed."""
    allowed = any(h.action == "allow" and not h.shadow for h in new.rule_hits)
    score = max(first.score, new.score)
    action = new.action
    if not allowed and _SEVERITY[action] < _SEVERITY[first.action]:
        action = first.action
    labels = dict(first.text_labels)
    for label, conf in new.text_labels.items():
        labels[label] = max(conf, labels.get(label, 0.0))
    if labels == first.text_labels and score == first.score and action == first.action:
        return None
    revision = first.revision + 1
    return new.model_copy(
        update={
            "decision_id": decision_id_for(first.order_id, revision),
            "revision": revision,
            "score": score,
            "action": action,
            "text_labels": labels,
            "event_time": first.event_time,
            "degraded": [d for d in new.degraded if d.signal != "text_llm"],
        }
    )
