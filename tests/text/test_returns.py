"""Return requests: history features from real state, and decisions through real rules."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest

from contracts import Order, ReturnRequest
from contracts.results import TextResult
from detector.engine import ENGINE_ATTRIBUTES
from detector.metrics import Metrics
from detector.policy import Policy
from detector.returns import (
    ReturnRiskScorer,
    ReturnsEngine,
    return_attribute_schema,
    return_decision_id,
    returns_policy,
)
from features.returns import RETURN_SCHEMA, ReturnFeaturizer
from features.state import MemoryState
from tests.conftest import T0, fresh_registry

DROP = {"line1": "1250 Forwarding Way, Unit 4410", "city": "Wilmington", "postal_code": "19801", "country": "US"}


def make_return(i: int, *, customer: str = "c-1", days: float = 0.0, amount: str = "100.00",
                address: dict[str, Any] | None = None, reason: str = "Too small",
                order_hours_before: float = 72.0) -> ReturnRequest:
    at = T0 + timedelta(days=days)
    return ReturnRequest(
        return_id=f"r-{i}", order_id=f"o-{i}", created_at=at, customer_id=customer, reason=reason,
        amount=Decimal(amount), currency="EUR", order_created_at=at - timedelta(hours=order_hours_before),
        shipping_address=address or {"line1": "ul. Dluga 5", "postal_code": "80-827", "country": "PL"},
    )


def test_history_windows_count_this_return_and_forget_old_ones() -> None:
    f = ReturnFeaturizer()
    rows = f.featurize([make_return(1, days=0), make_return(2, days=5, amount="50.00"), make_return(3, days=40)])
    assert rows[0]["customer_return_count_7d"] == 1.0
    assert rows[1]["customer_return_count_7d"] == 2.0
    assert rows[1]["customer_refund_amount_30d"] == pytest.approx(150.0)
    assert rows[2]["customer_return_count_30d"] == 1.0  # 35 and 40 days back are outside 30d
    assert rows[2]["customer_return_count_90d"] == 3.0
    assert rows[2]["address_return_count_90d"] == 3.0
    assert rows[0]["hours_since_order"] == pytest.approx(72.0)
    assert all(r["is_return"] is True for r in rows)
    assert set(rows[0]) == {s.name for s in RETURN_SCHEMA}


def test_replayed_return_is_counted_once_and_gets_the_same_features() -> None:
    f = ReturnFeaturizer()
    first = f.featurize([make_return(1), make_return(2, days=1)])
    again = f.featurize([make_return(2, days=1)])
    assert again[0] == first[1]
    third = f.featurize([make_return(3, days=2)])
    assert third[0]["customer_return_count_7d"] == 3.0


def test_distinct_accounts_per_address() -> None:
    f = ReturnFeaturizer()
    rows = f.featurize([make_return(i, customer=f"c-{i % 3}", days=i * 0.1, address=DROP) for i in range(6)])
    assert [r["address_return_customers_30d"] for r in rows] == [1.0, 2.0, 3.0, 3.0, 3.0, 3.0]


def test_refund_share_of_spend_reads_the_order_featurizers_state(order_factory: Any) -> None:
    from features import OrderFeaturizer

    state = MemoryState()
    orders = OrderFeaturizer(state=state)
    orders.featurize([
        order_factory(order_id=f"o-{i}", created_at=(T0 - timedelta(days=3 - i)).isoformat(),
                      payment={"amount": "200.00", "currency": "EUR"})
        for i in range(2)
    ])
    f = ReturnFeaturizer(state=state, spend_of=orders.customer_spend)
    (row,) = f.featurize([make_return(9, amount="300.00")])
    assert row["customer_spend_30d"] == pytest.approx(400.0)
    assert row["refund_share_of_spend_30d"] == pytest.approx(0.75)
    (other,) = f.featurize([make_return(10, customer="c-never-ordered", amount="10.00")])
    assert other["refund_share_of_spend_30d"] is None


def test_scorer_terms_raise_risk_monotonically() -> None:
    s = ReturnRiskScorer()
    base, none = s.score({"customer_return_count_30d": 1.0, "hours_since_order": 100.0,
                          "refund_share_of_spend_30d": 1.0})
    assert base == 0.0 and none == []  # one full refund of one order is ordinary
    more, contribs = s.score({"customer_return_count_30d": 4.0, "address_return_customers_30d": 3.0})
    most, _ = s.score({"customer_return_count_30d": 6.0, "address_return_customers_30d": 4.0,
                       "refund_share_of_spend_30d": 1.0})
    assert 0 < more < most <= 100
    assert [f for f, _ in contribs] == ["address_return_customers_30d", "customer_return_count_30d"]
    fast, why = s.score({"hours_since_order": 2.0})
    assert fast > 0 and why == [("hours_since_order", 0.2)]


# -- the engine ---------------------------------------------------------------------------
class _Holder:
    def __init__(self, text: str) -> None:
        from features import build_schema
        from rules import ListStore, RulesetHolder

        schema = build_schema().merged(return_attribute_schema()).merged(ENGINE_ATTRIBUTES)
        self.holder = RulesetHolder(schema=schema, text=text, lists=ListStore())

    @property
    def current(self) -> Any:
        return self.holder.current


RULES = """
rule serial_refunds:
    reason: RETURN_SERIAL
    review if :is_return: and :customer_return_count_30d: >= 5
"""


def _engine(text: Any = None, rules: str = RULES) -> tuple[ReturnsEngine, Metrics]:
    metrics = Metrics.create(fresh_registry())
    policy = returns_policy(Policy(schema=return_attribute_schema()))
    eng = ReturnsEngine(featurizer=ReturnFeaturizer(), rules=_Holder(rules), policy=policy, metrics=metrics, text=text)
    return eng, metrics


def test_ordinary_return_is_approved_with_a_return_decision() -> None:
    eng, metrics = _engine()
    (d,) = eng.decide_batch([make_return(1)])
    assert d.subject == "return" and d.return_id == "r-1" and d.order_id == "o-1"
    assert d.decision_id == return_decision_id("r-1") != return_decision_id("r-2")
    assert d.action == "approve"
    assert d.versions.model.startswith("returns-")
    assert metrics.decisions.labels(action="approve", path="returns")._value.get() == 1


def test_serial_returner_hits_the_rule_and_goes_to_review() -> None:
    eng, _ = _engine()
    decisions = eng.decide_batch([make_return(i, days=i) for i in range(5)])
    assert [d.action for d in decisions] == ["approve"] * 4 + ["review"]
    last = decisions[-1]
    assert [h.rule_id for h in last.rule_hits] == ["serial_refunds"]
    assert any(r.code == "RETURN_SERIAL" for r in last.reasons)


@pytest.fixture(scope="module")
def text_stage() -> Any:
    from detector.text_stage import TextClassifier, TextStage

    return TextStage(TextClassifier.default(state=MemoryState()))


def test_same_script_across_accounts_escalates_with_reasons(text_stage: Any) -> None:
    from streams.generator import RETURN_SCRIPTS

    eng, _ = _engine(text=text_stage, rules="")
    honest = eng.decide_batch([make_return(1000, customer="honest-1", reason="Too small, I need a larger size")])
    ring = eng.decide_batch([
        make_return(i, customer=f"ring-{i}", reason=RETURN_SCRIPTS[i % len(RETURN_SCRIPTS)], days=i * 0.01,
                    address={"line1": f"{i} High Street", "postal_code": "LS1 1AA", "country": "GB"})
        for i in range(12)
    ])
    assert honest[0].action == "approve"
    assert ring[-1].action in ("review", "decline")
    assert ring[-1].score > ring[0].score > honest[0].score
    codes = [r.code for r in ring[-1].reasons]
    assert "TEXT_POLICY_EVASION" in codes
    assert ring[-1].signals["text_risk"] > ring[0].signals["text_risk"]  # the recurring phrase adds risk


def test_text_stage_failure_degrades_but_decides() -> None:
    from contracts import SignalUnavailable

    class Broken:
        def analyze_returns(self, returns: Sequence[ReturnRequest], *, budget_s: float) -> list[TextResult]:
            raise SignalUnavailable("text", "embedder unavailable")

    eng, _ = _engine(text=Broken())
    (d,) = eng.decide_batch([make_return(1)])
    assert d.action == "approve"
    assert [(g.signal, g.reason) for g in d.degraded] == [("text", "embedder unavailable")]


def test_engine_decides_generated_returns(order_factory: Any) -> None:
    from streams.generator import GeneratorConfig, TrafficGenerator

    rets = [e.event for e in TrafficGenerator(GeneratorConfig(seed=7)).events(3000) if e.topic == "returns"]
    assert rets, "the generator emits returns"
    eng, _ = _engine()
    decisions = eng.decide_batch(rets)
    assert len(decisions) == len(rets)
    assert len({d.decision_id for d in decisions}) == len(rets)
    assert all(d.subject == "return" for d in decisions)


def test_orders_are_not_returns(order_factory: Any) -> None:
    assert not isinstance(order_factory(), ReturnRequest)
    assert isinstance(order_factory(), Order)
