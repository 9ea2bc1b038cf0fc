"""Scores and rule hits in, action and reasons out: the only place actions are chosen.

Models produce scores and rules produce hits; this module alone turns them into
approve / review / decline (style.md, "scores and decisions are separate").

Score. ``score = 100 * (1 - (1 - m/100) * (1 - t))`` where ``m`` is the model's 0-100
risk and ``t`` the text's 0-1 risk: a noisy-or, so text can only ever raise the score
(a note that says "approve this order" cannot lower it). Without a model score (the
model failed and the decision is degraded) ``m`` counts as 0 and rules still apply.

Action. Precedence is **allow > decline > review**: one allow rule hit approves whatever
else holds (trusted customers); else a decline rule hit or a score at the decline
threshold declines; else a review rule hit or a score at the review threshold reviews;
else approve. The unrounded score is compared with the thresholds of the model family
that produced it, because the two scales mean different things:

- ``supervised``: 100 x calibrated fraud probability; defaults review at 50, decline at 90;
- ``unsupervised``: 100 x the quantile of the order among the training traffic; defaults
  review at 99 (the rarest 1%) and decline at 99.9 (the rarest 0.1%).

Shadow rule hits are recorded but never act.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from contracts import Action, FeatureSchema, Reason
from contracts.events import FeatureContribution, RuleHit, TextSpan

__all__ = [
    "DEFAULT_THRESHOLDS",
    "Policy",
    "PolicyInput",
    "Thresholds",
    "Verdict",
    "describe_contribution",
    "policy_from_settings",
]


@dataclass(frozen=True, slots=True)
class Thresholds:
    review_at: float
    decline_at: float

    def __post_init__(self) -> None:
        if not 0 <= self.review_at <= self.decline_at <= 100:
            raise ValueError("need 0 <= review_at <= decline_at <= 100")


DEFAULT_THRESHOLDS: dict[str, Thresholds] = {
    "supervised": Thresholds(review_at=50.0, decline_at=90.0),
    "unsupervised": Thresholds(review_at=99.0, decline_at=99.9),
}


@dataclass(frozen=True, slots=True)
class PolicyInput:
    model_risk: float | None
    #: Which model family produced ``model_risk``; picks the thresholds.
    model_kind: str = "unsupervised"
    text_risk: float = 0.0
    text_labels: Mapping[str, float] = field(default_factory=dict)
    text_spans: Sequence[TextSpan] = ()
    rule_hits: Sequence[RuleHit] = ()
    rule_details: Mapping[str, str] = field(default_factory=dict)
    contributions: Sequence[FeatureContribution] = ()


@dataclass(frozen=True, slots=True)
class Verdict:
    score: int
    action: Action
    reasons: list[Reason]


def describe_contribution(schema: FeatureSchema | None, feature: str, value: Any) -> tuple[str, str]:
    """Reason code and analyst-readable detail for a model contribution.

    The wording is declared with the feature (``FeatureSpec.reason``); a feature
    without one reads as "unusual <feature> (<value>)".
    """
    spec = schema.get(feature) if schema is not None else None
    if spec is not None and spec.reason and spec.reason_code:
        try:
            return spec.reason_code, spec.reason.format(value=value)
        except (ValueError, TypeError, KeyError):
            pass
    shown = f"{value:.4g}" if isinstance(value, float) else value
    return f"MODEL_{feature.upper()}"[:64], f"unusual {feature.replace('_', ' ')} ({shown})"


class Policy:
    """Thresholds and precedence; pure and cheap."""

    def __init__(
        self,
        *,
        thresholds: Mapping[str, Thresholds] | None = None,
        max_reasons: int = 6,
        schema: FeatureSchema | None = None,
    ) -> None:
        self.thresholds = {**DEFAULT_THRESHOLDS, **(thresholds or {})}
        self.schema = schema
        self.max_reasons = max_reasons

    def decide(self, given: PolicyInput) -> Verdict:
        m = 0.0 if given.model_risk is None else min(max(given.model_risk, 0.0), 100.0) / 100.0
        t = min(max(given.text_risk, 0.0), 1.0)
        exact = 100.0 * (1.0 - (1.0 - m) * (1.0 - t))
        score = round(exact)
        limits = self.thresholds.get(given.model_kind, self.thresholds["unsupervised"])

        acting = [h for h in given.rule_hits if not h.shadow]
        rule_actions = {h.action for h in acting}
        action: Action
        # allow > decline > review, where the thresholds count as the model's own
        # decline/review: a review rule never softens a decline-worthy score.
        if "allow" in rule_actions:
            action = "approve"
        elif "decline" in rule_actions or exact >= limits.decline_at:
            action = "decline"
        elif "review" in rule_actions or exact >= limits.review_at:
            action = "review"
        else:
            action = "approve"

        reasons: list[Reason] = []
        for hit in acting:
            detail = given.rule_details.get(hit.rule_id) or f"rule {hit.rule_id}"
            reasons.append(Reason(code=hit.reason_code, detail=detail[:512], contribution=0.0))
        for label, confidence in sorted(given.text_labels.items(), key=lambda kv: -kv[1]):
            if label == "benign":
                continue
            quote = next((s.snippet for s in given.text_spans if s.label == label), "")
            detail = f"text reads as {label.replace('_', ' ')} ({confidence:.0%})"
            if quote:
                detail += f': "{quote}"'
            reasons.append(Reason(code=f"TEXT_{label.upper()}", detail=detail[:512], contribution=round(confidence, 4)))
        for c in given.contributions:
            if c.contribution <= 0:
                continue
            code, detail = describe_contribution(self.schema, c.feature, c.value)
            reasons.append(Reason(code=code, detail=detail[:512], contribution=c.contribution))
        # A rule and the text stage may name the same finding: keep its first wording.
        unique: dict[str, Reason] = {}
        for reason in reasons:
            unique.setdefault(reason.code, reason)
        return Verdict(score=score, action=action, reasons=list(unique.values())[: self.max_reasons])


def policy_from_settings(settings: Any, *, schema: FeatureSchema | None = None) -> Policy:
    """The policy from a ``PolicySettings`` section (the one way entry points build it)."""
    return Policy(
        thresholds={
            "supervised": Thresholds(review_at=settings.review_at, decline_at=settings.decline_at),
            "unsupervised": Thresholds(
                review_at=settings.unsupervised_review_at, decline_at=settings.unsupervised_decline_at
            ),
        },
        schema=schema,
    )
