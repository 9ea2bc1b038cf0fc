"""Metric unit tests: every test declares the metrics in a fresh ``CollectorRegistry``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from contracts import Decision
from contracts.events import Degradation, Reason, RuleHit, Versions
from contracts.frame import FeatureFrame
from detector.metrics import ACTIONS, PATHS, STAGES, Metrics

T0 = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)


def decision(i: int = 0, *, action: str = "approve", score: int = 10, model: str = "m1",
             ruleset: str = "r1", hits: tuple[RuleHit, ...] = (), reasons: tuple[str, ...] = (),
             degraded: tuple[str, ...] = (), lag_s: float = 2.0) -> Decision:
    return Decision(
        decision_id=f"d-{i}", order_id=f"o-{i}", event_time=T0, decided_at=T0 + timedelta(seconds=lag_s),
        score=score, action=action,  # type: ignore[arg-type]
        reasons=[Reason(code=c, detail="x") for c in reasons],
        rule_hits=list(hits), degraded=[Degradation(signal=s, reason="down") for s in degraded],
        versions=Versions(engine="0.1.0", features="f1", model=model, ruleset=ruleset),
    )


@pytest.fixture
def metrics() -> Metrics:
    return Metrics.create(CollectorRegistry())


def value(m: Metrics, name: str, **labels: str) -> float | None:
    return m.registry.get_sample_value(name, labels)


def test_names_follow_the_convention(metrics: Metrics) -> None:
    names = {mf.name for mf in metrics.registry.collect()}
    assert names, "no metric declared"
    for mf in metrics.registry.collect():
        assert mf.name.startswith("riskwire_"), mf.name
        if mf.type == "counter":
            # prometheus-client strips _total from the family name and adds it to the sample.
            assert all(s.name.endswith(("_total", "_created")) for s in mf.samples), mf.name
        if mf.type == "histogram":
            assert mf.name.endswith(("_seconds", "_score")), mf.name
    # A fresh registry holds riskwire's own series only (no process collector).
    assert not any(n.startswith("process_") for n in names)


def test_default_registry_adds_process_metrics() -> None:
    m = Metrics.create()
    text = generate_latest(m.registry).decode()
    assert "process_cpu_seconds_total" in text or "python_info" in text
    assert "riskwire_decisions_total" in text


def test_known_labels_start_at_zero(metrics: Metrics) -> None:
    for action in ACTIONS:
        for path in PATHS:
            assert value(metrics, "riskwire_decisions_total", action=action, path=path) == 0.0
    for stage in STAGES:
        assert value(metrics, "riskwire_stage_latency_seconds_count", stage=stage) == 0.0
    assert value(metrics, "riskwire_model_errors_total", model="primary") == 0.0
    assert value(metrics, "riskwire_llm_requests_total", outcome="timeout") == 0.0
    assert value(metrics, "riskwire_llm_breaker_open") == 0.0


def test_observe_decisions_counts_everything(metrics: Metrics) -> None:
    hit = RuleHit(rule_id="big_amount", action="review", reason_code="AMOUNT", shadow=False)
    shadow = RuleHit(rule_id="new_rule", action="decline", reason_code="NEW", shadow=True)
    batch = [
        decision(0, action="approve", score=5),
        decision(1, action="review", score=75, hits=(hit,), reasons=("AMOUNT",)),
        decision(2, action="decline", score=97, hits=(hit, shadow), reasons=("AMOUNT", "MODEL"),
                 degraded=("llm",)),
    ]
    metrics.observe_decisions(batch, path="stream", seconds=0.003)
    assert value(metrics, "riskwire_decisions_total", action="review", path="stream") == 1.0
    assert value(metrics, "riskwire_decisions_total", action="approve", path="sync") == 0.0
    assert value(metrics, "riskwire_decision_score_count", path="stream") == 3.0
    assert value(metrics, "riskwire_decision_score_sum", path="stream") == 5 + 75 + 97
    assert value(metrics, "riskwire_decision_score_bucket", path="stream", le="10.0") == 1.0
    # Per-decision latency is the batch time split over its size.
    assert value(metrics, "riskwire_decision_latency_seconds_sum", path="stream") == pytest.approx(0.003)
    assert value(metrics, "riskwire_decision_latency_seconds_bucket", path="stream", le="0.001") == 3.0
    assert value(metrics, "riskwire_rule_hits_total", rule_id="big_amount", action="review", shadow="false") == 2.0
    assert value(metrics, "riskwire_rule_hits_total", rule_id="new_rule", action="decline", shadow="true") == 1.0
    assert value(metrics, "riskwire_decision_reasons_total", code="AMOUNT") == 2.0
    assert value(metrics, "riskwire_degraded_decisions_total", signal="llm") == 1.0
    assert value(metrics, "riskwire_end_to_end_latency_seconds_sum", path="stream", origin="event") == 6.0
    assert value(metrics, "riskwire_build_info", version="0.1.0", model="m1", ruleset="r1") == 1.0


def test_empty_batch_changes_nothing(metrics: Metrics) -> None:
    metrics.observe_decisions([], path="sync", seconds=1.0)
    assert value(metrics, "riskwire_decision_latency_seconds_count", path="sync") == 0.0


def test_build_info_follows_a_hot_reload(metrics: Metrics) -> None:
    metrics.build.info({"version": "0.1.0", "model": "m1", "ruleset": "r1"})
    metrics.observe_decisions([decision(0, model="m2", ruleset="r7")], path="sync", seconds=0.001)
    assert value(metrics, "riskwire_build_info", version="0.1.0", model="m2", ruleset="r7") == 1.0
    assert value(metrics, "riskwire_build_info", version="0.1.0", model="m1", ruleset="r1") == 0.0
    assert metrics.build.current == {"version": "0.1.0", "model": "m2", "ruleset": "r7"}


def test_negative_event_lag_is_clamped(metrics: Metrics) -> None:
    # An order stamped in the future (a skewed shop clock) counts as zero wait, not a negative.
    metrics.observe_decisions([decision(0, lag_s=-30)], path="sync", seconds=0.001)
    assert value(metrics, "riskwire_end_to_end_latency_seconds_sum", path="sync", origin="event") == 0.0
    assert value(metrics, "riskwire_end_to_end_latency_seconds_bucket", path="sync", origin="event", le="0.005") == 1.0


def test_broker_latency(metrics: Metrics) -> None:
    now = T0.timestamp()
    metrics.observe_broker_latency([int((now - 0.5) * 1000), int((now - 2.0) * 1000), 0], decided_at=T0)
    assert value(metrics, "riskwire_end_to_end_latency_seconds_count", path="stream", origin="broker") == 2.0
    assert value(metrics, "riskwire_end_to_end_latency_seconds_sum", path="stream", origin="broker") == pytest.approx(2.5)


def test_stage_timer_records_even_on_error(metrics: Metrics) -> None:
    with metrics.stage_timer("models"):
        pass
    with pytest.raises(ValueError), metrics.stage_timer("rules"):
        raise ValueError("boom")
    assert value(metrics, "riskwire_stage_latency_seconds_count", stage="models") == 1.0
    assert value(metrics, "riskwire_stage_latency_seconds_count", stage="rules") == 1.0


def test_observers_get_every_batch(metrics: Metrics) -> None:
    seen: list[tuple[int, object]] = []
    metrics.add_decision_observer(lambda ds, frame: seen.append((len(ds), frame)))
    frame = FeatureFrame.from_rows([{"amount": 1.0}])
    metrics.observe_decisions([decision(0)], path="sync", seconds=0.001, frame=frame)
    metrics.observe_decisions([decision(1), decision(2)], path="stream", seconds=0.001)
    assert seen == [(1, frame), (2, None)]


def test_two_instances_do_not_share_values() -> None:
    a, b = Metrics.create(CollectorRegistry()), Metrics.create(CollectorRegistry())
    a.decisions.labels(action="decline", path="sync").inc()
    assert value(b, "riskwire_decisions_total", action="decline", path="sync") == 0.0
    assert value(a, "riskwire_decisions_total", action="decline", path="sync") == 1.0
