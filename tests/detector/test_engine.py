"""The engine with real collaborators: composition, determinism, idempotency, degradation."""

from __future__ import annotations

import numpy as np

from contracts import Order, RiskwireError
from streams.generator import GeneratorConfig, TrafficGenerator


def _stream(n: int, seed: int = 21) -> list[Order]:
    gen = TrafficGenerator(GeneratorConfig(seed=seed))
    return [ev.event for ev in gen.events(n) if isinstance(ev.event, Order)][:n]


def _answer(d):
    return (d.decision_id, d.score, d.action, [r.code for r in d.reasons], d.signals, d.rule_hits)


def test_batch_equals_one_by_one(services_factory):
    orders = _stream(120)
    batch = services_factory().engine.decide_batch(orders)
    single_engine = services_factory().engine
    singles = [single_engine.decide(o) for o in orders]
    assert [_answer(d) for d in batch] == [_answer(d) for d in singles]


def test_same_order_twice_gives_the_same_decision(services_factory):
    engine = services_factory().engine
    orders = _stream(60)
    first = engine.decide_batch(orders)
    again = engine.decide_batch(orders)
    assert [_answer(d) for d in first] == [_answer(d) for d in again]


def test_decision_carries_versions_latency_and_reasons(services_factory, order_factory):
    services = services_factory()
    d = services.engine.decide(order_factory(order_id="o-eng-1"))
    assert d.versions.model == services.engine.model.version
    assert d.versions.ruleset == services.rules.current.version
    assert d.versions.features
    assert d.latency_ms > 0
    assert d.model_kind in {"unsupervised", "supervised"}
    assert d.event_time == order_factory().created_at
    assert not d.degraded


def test_fraud_scores_higher_than_normal_on_generated_traffic(services_factory):
    engine = services_factory().engine
    orders = _stream(2500, seed=5)
    decisions = engine.decide_batch(orders)
    scen = np.array([o.metadata.get("scenario", "normal") for o in orders])
    scores = np.array([d.score for d in decisions], dtype=float)
    fraud = scen != "normal"
    assert fraud.sum() > 20
    assert scores[fraud].mean() > scores[~fraud].mean() + 10
    flagged = np.array([d.action != "approve" for d in decisions])
    assert flagged[fraud].mean() > 3 * max(flagged[~fraud].mean(), 0.01)


class _BrokenModel:
    version = "broken-1"
    kind = "unsupervised"

    def __init__(self, names):
        self.feature_names = names

    def score(self, X, *, explain=5):
        raise RiskwireError("artifact unreadable")


def test_a_failing_model_degrades_instead_of_failing(services_factory, order_factory):
    services = services_factory()
    services.engine.swap_model(_BrokenModel(services.engine.model.feature_names))
    d = services.engine.decide(order_factory(order_id="o-eng-2"))
    assert [g.signal for g in d.degraded] == ["model"]
    assert d.model_kind == "none"
    assert d.action in {"approve", "review", "decline"}


class _AlarmistModel:
    """A challenger that thinks everything is fraud: its verdicts must never act."""

    version = "challenger-9"
    kind = "supervised"

    def __init__(self, names):
        self.feature_names = names

    def score(self, X, *, explain=5):
        from contracts.results import ModelScores

        n = X.shape[0]
        return ModelScores(risk=np.full(n, 99.0), signals={"supervised": np.full(n, 0.99)},
                           contributions=[[] for _ in range(n)], kind="supervised")


def test_challenger_scores_in_shadow_and_never_acts(services_factory):
    services = services_factory()
    engine = services.engine
    orders = _stream(80, seed=8)
    baseline = services_factory().engine.decide_batch(orders)
    engine.swap_challenger(_AlarmistModel(engine.model.feature_names))
    decisions = engine.decide_batch(orders)
    assert [d.action for d in decisions] == [d.action for d in baseline]
    assert [d.score for d in decisions] == [d.score for d in baseline]
    for d in decisions:
        assert d.shadow is not None
        assert (d.shadow["model"], d.shadow["kind"]) == ("challenger-9", "supervised")
        assert d.shadow["score"] >= 99  # text may only raise it
        allowed = any(h.action == "allow" and not h.shadow for h in d.rule_hits)
        assert d.shadow["action"] == ("approve" if allowed else "decline")
    counted = services.metrics.shadow_decisions.labels(action="decline")._value.get()
    assert counted == sum(1 for d in decisions if d.shadow["action"] == "decline") > 0


def test_a_broken_challenger_costs_nothing(services_factory, order_factory):
    services = services_factory()
    services.engine.swap_challenger(_BrokenModel(services.engine.model.feature_names))
    d = services.engine.decide(order_factory(order_id="o-eng-3"))
    assert d.shadow is None and not d.degraded
    assert services.metrics.model_errors.labels(model="challenger")._value.get() == 1
