"""Every Prometheus metric riskwire exports, declared in one place.

``Metrics.create(registry)`` builds them; nothing else creates a metric, and tests pass a
fresh ``CollectorRegistry()``. Names are ``riskwire_<what>_<unit>``, base units, counters
end in ``_total``, and labels are bounded (action, path, stage, rule id, reason code,
partition): never an order, customer, email or card id.

Several processes (``riskwire serve --workers N``) share one view through
prometheus-client's multiprocess mode: when ``PROMETHEUS_MULTIPROC_DIR`` is set *before*
prometheus-client is first imported, every value lives in per-process files in that
directory and ``Metrics.registry`` becomes an exposition registry holding a
``MultiProcessCollector`` that sums them. The metric objects themselves then sit in a
private registry, so ``generate_latest(metrics.registry)`` is right in both modes.
Gauges declare how processes combine (``livemax``: the largest value among live processes); ``Info`` does not
work across processes, so build info is a gauge ``riskwire_build_info`` set to 1.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
)

if TYPE_CHECKING:
    from contracts import Decision
    from contracts.frame import FeatureFrame

__all__ = [
    "ACTIONS",
    "END_TO_END_BUCKETS",
    "LATENCY_BUCKETS",
    "MULTIPROC_ENV",
    "PATHS",
    "SCORE_BUCKETS",
    "STAGES",
    "VERDICTS",
    "BuildInfo",
    "DecisionObserver",
    "Metrics",
    "multiprocess_enabled",
]

#: Seconds; dense under 10 ms where the checkout budget lives.
LATENCY_BUCKETS = (
    0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
)
#: Seconds from an order's event (or broker) time to its decision: queueing and lag included.
END_TO_END_BUCKETS = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0,
)
SCORE_BUCKETS = tuple(float(x) for x in range(10, 101, 10))

#: Known label values, created at zero so a dashboard shows 0 rather than "No data" and
#: ``rate()`` sees the first increment (Prometheus' advice on missing series).
ACTIONS = ("approve", "review", "decline")
PATHS = ("sync", "stream", "returns")
STAGES = ("parse", "features", "text", "models", "rules", "produce")
LLM_OUTCOMES = ("ok", "error", "timeout", "rejected")
LLM_CACHE_RESULTS = ("hit", "miss")
DEGRADED_SIGNALS = ("model", "text", "llm")
E2E_ORIGINS = ("event", "broker")
VERDICTS = ("fraud", "abuse", "legit")

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

#: Called with every decided batch (and its features when the engine passes them).
DecisionObserver = Callable[[Sequence["Decision"], "FeatureFrame | None"], None]


def multiprocess_enabled() -> bool:
    """True when prometheus-client stores values in ``PROMETHEUS_MULTIPROC_DIR`` files."""
    from prometheus_client import values

    # prometheus-client picks its value class from the environment at import time:
    # the class in use, not today's environment, decides whether files are written.
    return values.ValueClass is not values.MutexValue


class BuildInfo:
    """``riskwire_build_info{version,model,ruleset} 1``; ``info()`` moves the 1 to new versions."""

    LABELS = ("version", "model", "ruleset")

    def __init__(self, gauge: Gauge) -> None:
        self._gauge = gauge
        self._current: tuple[str, str, str] | None = None

    @property
    def current(self) -> dict[str, str] | None:
        return None if self._current is None else dict(zip(self.LABELS, self._current, strict=True))

    def info(self, values: Mapping[str, str]) -> None:
        self.update(*(str(values.get(k, "")) for k in self.LABELS))

    def update(self, version: str, model: str, ruleset: str) -> None:
        key = (version[:64], model[:64], ruleset[:64])
        if key == self._current:
            return
        if self._current is not None:
            # Zero rather than remove: in multiprocess mode a removed child keeps its file value.
            self._gauge.labels(*self._current).set(0)
        self._gauge.labels(*key).set(1)
        self._current = key


class _StageTimer:
    # A plain class, not @contextmanager: this runs several times per checkout request.
    __slots__ = ("_hist", "_started")

    def __init__(self, hist: Any) -> None:
        self._hist = hist
        self._started = 0.0

    def __enter__(self) -> None:
        self._started = time.perf_counter()

    def __exit__(self, *_exc: object) -> None:
        self._hist.observe(time.perf_counter() - self._started)


@dataclass(frozen=True)
class Metrics:
    registry: CollectorRegistry
    decisions: Counter
    score: Histogram
    decision_latency: Histogram
    end_to_end_latency: Histogram
    stage_latency: Histogram
    degraded: Counter
    model_errors: Counter
    shadow_decisions: Counter
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
    drift_samples: Gauge
    build: BuildInfo
    multiprocess: bool = False
    _observers: list[DecisionObserver] = field(default_factory=list, repr=False, compare=False)
    #: Labelled children by (metric, label values): skips labels()' argument handling and lock.
    _children: dict[tuple[int, tuple[str, ...]], Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def create(cls, registry: CollectorRegistry | None = None, *, process: bool | None = None) -> Metrics:
        """Declare every metric.

        ``registry`` is what ``/metrics`` exposes (a new one when None). ``process``
        adds the process, platform and GC collectors; by default only when the registry
        is new (production), so unit tests with a fresh registry see riskwire's own
        series only. In multiprocess mode they are never added (per-process values
        cannot be summed).
        """
        multi = multiprocess_enabled()
        exposed = registry if registry is not None else CollectorRegistry()
        if multi:
            from prometheus_client.multiprocess import MultiProcessCollector

            MultiProcessCollector(exposed)
            # The objects only write files; the collector above reads every process's.
            r: CollectorRegistry | None = None
        else:
            r = exposed
            if process if process is not None else registry is None:
                for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
                    # The default collectors are bound to the default registry already;
                    # their describe/collect are stateless, so registering them again is safe.
                    exposed.register(collector)

        m = cls(
            registry=exposed,
            multiprocess=multi,
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
            end_to_end_latency=Histogram(
                "riskwire_end_to_end_latency_seconds",
                "Decision time minus the order's event time (origin=event) or its broker "
                "timestamp (origin=broker): what the business waits, queueing included.",
                ["path", "origin"], buckets=END_TO_END_BUCKETS, registry=r,
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
            shadow_decisions=Counter(
                "riskwire_shadow_decisions_total",
                "What the shadow challenger model would have done, by action (never acted on).",
                ["action"], registry=r,
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
                multiprocess_mode="livemax",
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
                ["topic", "partition"], registry=r, multiprocess_mode="livemax",
            ),
            rebalances=Counter(
                "riskwire_consumer_rebalances_total", "Partition assignments and revocations.",
                ["kind"], registry=r,
            ),
            review_queue_depth=Gauge(
                "riskwire_review_queue_depth", "Open review cases, by state.", ["state"], registry=r,
                multiprocess_mode="livemax",
            ),
            review_queue_oldest_age=Gauge(
                "riskwire_review_queue_oldest_age_seconds", "Age of the oldest open case.", registry=r,
                multiprocess_mode="livemax",
            ),
            verdicts=Counter(
                "riskwire_review_verdicts_total", "Analyst verdicts, by verdict.", ["verdict"], registry=r,
            ),
            drift_psi=Gauge(
                "riskwire_drift_psi", "Population stability index of recent traffic against the training window.",
                ["feature"], registry=r, multiprocess_mode="livemax",
            ),
            drift_samples=Gauge(
                "riskwire_drift_window_samples", "Decisions in the drift monitor's rolling window.",
                registry=r, multiprocess_mode="livemax",
            ),
            build=BuildInfo(
                Gauge(
                    "riskwire_build_info", "Version of the engine, model and ruleset (value 1).",
                    list(BuildInfo.LABELS), registry=r, multiprocess_mode="livemax",
                )
            ),
        )
        m._init_known_labels()
        return m

    def _init_known_labels(self) -> None:
        for action in ACTIONS:
            for path in PATHS:
                self.decisions.labels(action=action, path=path)
        for path in PATHS:
            self.score.labels(path=path)
            self.decision_latency.labels(path=path)
            for origin in E2E_ORIGINS:
                self.end_to_end_latency.labels(path=path, origin=origin)
        for stage in STAGES:
            self.stage_latency.labels(stage=stage)
        for signal in DEGRADED_SIGNALS:
            self.degraded.labels(signal=signal)
        self.model_errors.labels(model="primary")
        for outcome in LLM_OUTCOMES:
            self.llm_requests.labels(outcome=outcome)
        for result in LLM_CACHE_RESULTS:
            self.llm_cache.labels(result=result)
        self.llm_breaker_open.set(0)
        for verdict in VERDICTS:
            self.verdicts.labels(verdict=verdict)

    def _child(self, metric: Any, *values: str) -> Any:
        key = (id(metric), values)
        found = self._children.get(key)
        if found is None:
            # Two threads may both miss: labels() returns the same child to both, so no harm.
            found = self._children[key] = metric.labels(*values)
        return found

    def add_decision_observer(self, observer: DecisionObserver) -> None:
        """Call ``observer(decisions, frame)`` after every decided batch (the drift monitor)."""
        self._observers.append(observer)

    def stage_timer(self, stage: str) -> AbstractContextManager[None]:
        """``with metrics.stage_timer("models"): ...`` observes the block's wall time, errors included."""
        return _StageTimer(self._child(self.stage_latency, stage))

    def observe_decisions(
        self,
        decisions: Sequence[Decision],
        *,
        path: str,
        seconds: float,
        frame: FeatureFrame | None = None,
    ) -> None:
        """Count a decided batch; ``frame`` (its features) feeds the drift monitor."""
        if not decisions:
            return
        per = seconds / len(decisions)
        child = self._child
        latency = child(self.decision_latency, path)
        score = child(self.score, path)
        e2e = child(self.end_to_end_latency, path, "event")
        for d in decisions:
            child(self.decisions, d.action, path).inc()
            score.observe(d.score)
            latency.observe(per)
            e2e.observe(max((d.decided_at - d.event_time).total_seconds(), 0.0))
            for hit in d.rule_hits:
                child(self.rule_hits, hit.rule_id, hit.action, "true" if hit.shadow else "false").inc()
            for reason in d.reasons:
                child(self.reasons, reason.code).inc()
            for deg in d.degraded:
                child(self.degraded, deg.signal).inc()
        # One model and ruleset per batch (engine contract): the first decision speaks for all,
        # so a hot-reloaded model or ruleset shows in build info with its first decision.
        v = decisions[0].versions
        self.build.update(v.engine, v.model, v.ruleset)
        # Drift is measured on orders; return requests are another population.
        if decisions[0].subject == "order":
            for observer in self._observers:
                observer(decisions, frame)

    def observe_broker_latency(self, timestamps_ms: Sequence[int], *, decided_at: datetime | float) -> None:
        """End-to-end latency from each record's broker timestamp (ms since epoch) to ``decided_at``."""
        now = decided_at.timestamp() if isinstance(decided_at, datetime) else float(decided_at)
        e2e = self.end_to_end_latency.labels(path="stream", origin="broker")
        for ts in timestamps_ms:
            if ts is not None and ts > 0:
                e2e.observe(max(now - ts / 1000.0, 0.0))
