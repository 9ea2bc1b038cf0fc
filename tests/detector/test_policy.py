from __future__ import annotations

import pytest

from contracts import FeatureSchema, FeatureSpec
from contracts.events import FeatureContribution, RuleHit, TextSpan
from detector.policy import Policy, PolicyInput, Thresholds, describe_contribution


def hit(action: str, rule_id: str = "r", shadow: bool = False) -> RuleHit:
    return RuleHit(rule_id=rule_id, action=action, reason_code=f"CODE_{rule_id.upper()}", shadow=shadow)


@pytest.mark.parametrize(
    ("risk", "action"), [(10.0, "approve"), (69.4, "approve"), (70.0, "review"), (94.0, "review"), (95.0, "decline")]
)
def test_thresholds(risk, action):
    policy = Policy(thresholds={"supervised": Thresholds(review_at=70, decline_at=95)})
    verdict = policy.decide(PolicyInput(model_risk=risk, model_kind="supervised"))
    assert verdict.action == action
    assert verdict.score == round(risk)


@pytest.mark.parametrize(("risk", "action"), [(98.9, "approve"), (99.0, "review"), (99.85, "review"), (99.9, "decline")])
def test_unsupervised_quantile_thresholds_use_the_unrounded_score(risk, action):
    verdict = Policy().decide(PolicyInput(model_risk=risk, model_kind="unsupervised"))
    assert verdict.action == action


def test_the_same_score_means_different_things_per_model_family():
    p = Policy()
    assert p.decide(PolicyInput(model_risk=60, model_kind="supervised")).action == "review"
    assert p.decide(PolicyInput(model_risk=60, model_kind="unsupervised")).action == "approve"


def test_rule_precedence_allow_then_decline_then_review():
    p = Policy()
    assert p.decide(PolicyInput(model_risk=99, rule_hits=[hit("allow", "a"), hit("decline", "d")])).action == "approve"
    assert p.decide(PolicyInput(model_risk=1, rule_hits=[hit("review", "v"), hit("decline", "d")])).action == "decline"
    assert p.decide(PolicyInput(model_risk=1, rule_hits=[hit("review", "v")])).action == "review"


def test_a_review_rule_never_softens_a_decline_worthy_score():
    p = Policy()
    verdict = p.decide(PolicyInput(model_risk=95, model_kind="supervised", rule_hits=[hit("review", "v")]))
    assert verdict.action == "decline"
    assert p.decide(PolicyInput(model_risk=95, model_kind="supervised", rule_hits=[hit("allow", "a")])).action == "approve"


def test_shadow_hits_never_act():
    verdict = Policy().decide(PolicyInput(model_risk=5, rule_hits=[hit("decline", "s", shadow=True)]))
    assert verdict.action == "approve"
    assert all(r.code != "CODE_S" for r in verdict.reasons)


@pytest.mark.parametrize("model_risk", [0.0, 20.0, 50.0, 90.0, 100.0])
@pytest.mark.parametrize("text_risk", [0.0, 0.3, 0.9, 1.0])
def test_text_can_only_raise_the_score(model_risk, text_risk):
    p = Policy()
    without = p.decide(PolicyInput(model_risk=model_risk)).score
    with_text = p.decide(PolicyInput(model_risk=model_risk, text_risk=text_risk)).score
    assert with_text >= without
    if text_risk == 1.0:
        assert with_text == 100


def test_missing_model_score_still_applies_rules():
    verdict = Policy().decide(PolicyInput(model_risk=None, rule_hits=[hit("review", "v")]))
    assert verdict.action == "review"
    assert verdict.score == 0


def test_reasons_quote_text_and_word_contributions_from_schema():
    schema = FeatureSchema.of([
        FeatureSpec("amount_vs_customer_mean_30d", "number", "ratio", "amount / 30-day mean",
                    reason_code="AMOUNT_SPIKE", reason="amount {value:.1f}x this customer's 30-day mean"),
    ])
    verdict = Policy(schema=schema).decide(
        PolicyInput(
            model_risk=80,
            text_labels={"prompt_injection": 0.97, "benign": 0.1},
            text_spans=[TextSpan(field="note", start=0, end=10, label="prompt_injection", snippet="Ignore previous")],
            contributions=[
                FeatureContribution(feature="amount_vs_customer_mean_30d", value=6.2, contribution=1.5),
                FeatureContribution(feature="ip_distinct_cards_24h", value=3.0, contribution=0.4),
                FeatureContribution(feature="account_age_days", value=900.0, contribution=-0.3),
            ],
        )
    )
    codes = [r.code for r in verdict.reasons]
    assert codes[0] == "TEXT_PROMPT_INJECTION"
    assert '"Ignore previous"' in verdict.reasons[0].detail
    assert "TEXT_BENIGN" not in codes
    spike = next(r for r in verdict.reasons if r.code == "AMOUNT_SPIKE")
    assert spike.detail == "amount 6.2x this customer's 30-day mean"
    assert "MODEL_IP_DISTINCT_CARDS_24H" in codes
    assert "MODEL_ACCOUNT_AGE_DAYS" not in codes  # pushes towards safe: not a risk reason


def test_describe_contribution_falls_back_when_template_breaks():
    schema = FeatureSchema.of([FeatureSpec("x", "number", "", "", reason_code="X", reason="x is {value:.1f}")])
    assert describe_contribution(schema, "x", "not-a-number")[0] == "MODEL_X"


def test_thresholds_validated():
    with pytest.raises(ValueError):
        Thresholds(review_at=90, decline_at=80)
