"""Every Prometheus metric riskwire exports, declared in one place.

``Metrics.create(registry)`` builds them; nothing else creates a metric, and tests pass a
fresh ``CollectorRegistry()``. Names are ``riskwire_<what>_<unit>``, base units, counters
end in ``_total``, and labels are bounded (action, path, stage, rule id, reason code,
partition): never an order, customer, email or card id.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

if TYPE_CHECKING:
    from contracts import Decision

__all__ = ["LATENCY_BUCKETS", "Metrics"]

#: Seconds; dense under 10 ms where the checkout budget lives.
LATENCY_BUCKETS = (
    0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
)
SCORE_BUCKETS = tuple(float(x) for x in range(10, 101, 10))


@dataclass(frozen=True)
class Metrics:
    registry: CollectorRegistry
    decisions: Counter
    score: Histogram
    decision_latency: Histogram
    stage_latency: Histogram
    degraded: Counter
    model_errors: Counter
    rule_hits: Counter
    reasons: Counter
    llm_requests: Counter
    llm_cache: Counter
    llm_breaker_open: Gauge
    messages_in: Counter
    messages_decided: Counter
    dead_letters: Counter
    consumer_lag: Gauge
    rebalances: Counter
    review_queue_depth: Gauge
    review_queue_oldest_age: Gauge
    verdicts: Counter
    drift_psi: Gauge
    build: Info

    @classmethod
    def create(cls, registry: CollectorRegistry | None = None) -> Metrics:
        r = registry if registry is not None else CollectorRegistry()
        return cls(
            registry=r,
            decisions=Counter(
                "riskwire_decisions_total", "Decisions made, by action and path.",
                ["action", "path"], registry=r,
            ),
            score=Histogram(
                "riskwire_decision_score", "Risk score (0-100) of each decision.",
                ["path"], buckets=SCORE_BUCKETS, registry=r,
            ),
            decision_latency=Histogram(
                "riskwire_decision_latency_seconds",
                "Engine time per decision (a batch's time divided by its size on the stream path).",
                ["path"], buckets=LATENCY_BUCKETS, registry=r,
            ),
            stage_latency=Histogram(
                "riskwire_stage_latency_seconds", "Time spent in one stage for one call (a batch or an order).",
                ["stage"], buckets=LATENCY_BUCKETS, registry=r,
            ),
            degraded=Counter(
                "riskwire_degraded_decisions_total", "Decisions made without a signal, by signal.",
                ["signal"], registry=r,
            ),
            model_errors=Counter(
                "riskwire_model_errors_total", "Model scoring failures.", ["model"], registry=r,
            ),
            rule_hits=Counter(
                "riskwire_rule_hits_total", "Rule hits by rule id, shadow rules included.",
                ["rule_id", "action", "shadow"], registry=r,
            ),
            reasons=Counter(
                "riskwire_decision_reasons_total", "Reason codes on decisions.", ["code"], registry=r,
            ),
            llm_requests=Counter(
                "riskwire_llm_requests_total", "LLM calls by outcome (ok, error, timeout, rejected).",
                ["outcome"], registry=r,
            ),
            llm_cache=Counter(
                "riskwire_llm_cache_total", "LLM cache lookups by result (hit, miss).", ["result"], registry=r,
            ),
            llm_breaker_open=Gauge(
                "riskwire_llm_breaker_open", "1 while the LLM circuit breaker is open.", registry=r,
            ),
            messages_in=Counter(
                "riskwire_messages_in_total", "Kafka records consumed, by topic.", ["topic"], registry=r,
            ),
            messages_decided=Counter(
                "riskwire_messages_decided_total", "Kafka records decided and produced, by topic.",
                ["topic"], registry=r,
            ),
            dead_letters=Counter(
                "riskwire_dead_letters_total", "Records sent to the dead-letter topic, by source topic and error kind.",
                ["topic", "error"], registry=r,
            ),
            consumer_lag=Gauge(
                "riskwire_consumer_lag_messages", "High watermark minus position, per partition.",
                ["topic", "partition"], registry=r,
            ),
            rebalances=Counter(
                "riskwire_consumer_rebalances_total", "Partition assignments and revocations.",
                ["kind"], registry=r,
            ),
            review_queue_depth=Gauge(
                "riskwire_review_queue_depth", "Open review cases, by state.", ["state"], registry=r,
            ),
            review_queue_oldest_age=Gauge(
                "riskwire_review_queue_oldest_age_seconds", "Age of the oldest open case.", registry=r,
            ),
            verdicts=Counter(
                "riskwire_review_verdicts_total", "Analyst verdicts, by verdict.", ["verdict"], registry=r,
            ),
            drift_psi=Gauge(
                "riskwire_drift_psi", "Population stability index against the training window.",
                ["feature"], registry=r,
            ),
            build=Info("riskwire_build", "Version of the engine, model and ruleset.", registry=r),
        )

    @contextmanager
    def stage_timer(self, stage: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.stage_latency.labels(stage=stage).observe(time.perf_counter() - started)

    def observe_decisions(self, decisions: Sequence[Decision], *, path: str, seconds: float) -> None:
        if not decisions:
            return
        per = seconds / len(decisions)
        latency = self.decision_latency.labels(path=path)
        score = self.score.labels(path=path)
        for d in decisions:
            self.decisions.labels(action=d.action, path=path).inc()
            score.observe(d.score)
            latency.observe(per)
            for hit in d.rule_hits:
                self.rule_hits.labels(rule_id=hit.rule_id, action=hit.action, shadow=str(hit.shadow).lower()).inc()
            for reason in d.reasons:
                self.reasons.labels(code=reason.code).inc()
            for deg in d.degraded:
                self.degraded.labels(signal=deg.signal).inc()
