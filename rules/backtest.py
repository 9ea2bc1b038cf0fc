"""Backtest core: what a candidate ruleset would have done on labelled history.

Pure: it takes rows of (attributes, label, amount) and two rulesets (the candidate and,
optionally, the current one) and counts. Replaying orders through features and models to
get those attributes is the CLI's job (``riskwire backtest``), so this module needs
nothing but the compiled rulesets.

Definitions (per rule and overall):

- *hit rate*: hits / rows;
- *precision*: fraud hits / labelled hits; *recall*: fraud hits / fraud rows;
- *amount caught*: the amount of fraud rows hit; *amount wrongly blocked*: the amount of
  legitimate rows hit (per rule) or declined (overall; legitimate amount sent to review
  is reported separately);
- *overlap*: of a rule's hits, the share the current ruleset also flags (declines or
  reviews); overall, rows both flag, rows only one flags, and their Jaccard index.

A row's action under a ruleset follows the policy's precedence among acting (non-shadow)
hits: allow > decline > review; no hit means "none" (the model threshold is not part of
a rules backtest). Shadow rules get per-rule figures but never change an action.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from contracts.results import RulesOutcome

__all__ = [
    "BacktestResult",
    "BacktestRow",
    "Evaluates",
    "OverallStats",
    "RuleStats",
    "action_of",
    "run_backtest",
]


class Evaluates(Protocol):
    version: str

    def evaluate(self, attributes: Mapping[str, Any]) -> RulesOutcome: ...


@dataclass(frozen=True, slots=True)
class BacktestRow:
    attributes: Mapping[str, Any]
    #: True = fraud or abuse, False = legitimate, None = no label (yet).
    label: bool | None
    amount: float = 0.0


def action_of(outcome: RulesOutcome) -> str:
    """allow | decline | review | none, by the policy's precedence over acting hits."""
    actions = {h.action for h in outcome.hits if not h.shadow}
    for action in ("allow", "decline", "review"):
        if action in actions:
            return action
    return "none"


def _ratio(a: float, b: float) -> float | None:
    return a / b if b else None


@dataclass
class RuleStats:
    rule_id: str
    action: str
    shadow: bool
    reason_code: str
    hits: int = 0
    fraud_hits: int = 0
    legit_hits: int = 0
    amount_caught: float = 0.0
    amount_wrongly_hit: float = 0.0
    #: Hits that the current ruleset also flags (decline or review).
    overlap_hits: int = 0

    def hit_rate(self, rows: int) -> float | None:
        return _ratio(self.hits, rows)

    @property
    def precision(self) -> float | None:
        return _ratio(self.fraud_hits, self.fraud_hits + self.legit_hits)

    def recall(self, frauds: int) -> float | None:
        return _ratio(self.fraud_hits, frauds)

    @property
    def overlap(self) -> float | None:
        return _ratio(self.overlap_hits, self.hits)


@dataclass
class OverallStats:
    """One ruleset's effect on the whole replay."""

    version: str
    actions: dict[str, int] = field(default_factory=lambda: {"allow": 0, "decline": 0, "review": 0, "none": 0})
    flagged: int = 0
    flagged_fraud: int = 0
    flagged_legit: int = 0
    declined_fraud: int = 0
    declined_legit: int = 0
    amount_caught: float = 0.0
    amount_wrongly_blocked: float = 0.0
    amount_wrongly_reviewed: float = 0.0
    #: Fraud that an allow rule let through.
    allowed_fraud: int = 0

    @property
    def precision(self) -> float | None:
        return _ratio(self.flagged_fraud, self.flagged_fraud + self.flagged_legit)

    def recall(self, frauds: int) -> float | None:
        return _ratio(self.flagged_fraud, frauds)

    @property
    def decline_precision(self) -> float | None:
        return _ratio(self.declined_fraud, self.declined_fraud + self.declined_legit)

    def decline_recall(self, frauds: int) -> float | None:
        return _ratio(self.declined_fraud, frauds)

    def add(self, action: str, label: bool | None, amount: float) -> None:
        self.actions[action] = self.actions.get(action, 0) + 1
        if action == "allow" and label:
            self.allowed_fraud += 1
        if action not in ("decline", "review"):
            return
        self.flagged += 1
        if label is True:
            self.flagged_fraud += 1
            self.amount_caught += amount
            if action == "decline":
                self.declined_fraud += 1
        elif label is False:
            self.flagged_legit += 1
            if action == "decline":
                self.declined_legit += 1
                self.amount_wrongly_blocked += amount
            else:
                self.amount_wrongly_reviewed += amount


@dataclass
class BacktestResult:
    candidate: OverallStats
    baseline: OverallStats | None
    rules: list[RuleStats]
    rows: int = 0
    labelled: int = 0
    frauds: int = 0
    fraud_amount: float = 0.0
    legit_amount: float = 0.0
    #: Rows flagged by both rulesets / only the candidate / only the baseline.
    both_flag: int = 0
    candidate_only: int = 0
    baseline_only: int = 0

    @property
    def jaccard(self) -> float | None:
        return _ratio(self.both_flag, self.both_flag + self.candidate_only + self.baseline_only)

    def rule(self, rule_id: str) -> RuleStats:
        for r in self.rules:
            if r.rule_id == rule_id:
                return r
        raise KeyError(rule_id)


def run_backtest(
    rows: Iterable[BacktestRow | tuple[Mapping[str, Any], bool | None, float]],
    *,
    candidate: Any,
    baseline: Evaluates | None = None,
    progress: Callable[[int], None] | None = None,
    progress_every: int = 1000,
) -> BacktestResult:
    """Replay rows through ``candidate`` (a CompiledRuleset) and ``baseline``; count.

    ``progress`` is called with the number of rows done every ``progress_every`` rows and
    at the end.
    """
    stats = {
        r.rule.id: RuleStats(r.rule.id, r.rule.action, r.rule.shadow, r.rule.reason)
        for r in candidate.rules
    }
    result = BacktestResult(
        candidate=OverallStats(candidate.version),
        baseline=OverallStats(baseline.version) if baseline is not None else None,
        rules=list(stats.values()),
    )
    n = 0
    for row in rows:
        attributes, label, amount = (
            (row.attributes, row.label, row.amount) if isinstance(row, BacktestRow) else row
        )
        amount = float(amount or 0.0)
        n += 1
        if label is not None:
            result.labelled += 1
            if label:
                result.frauds += 1
                result.fraud_amount += amount
            else:
                result.legit_amount += amount
        outcome = candidate.evaluate(attributes)
        action = action_of(outcome)
        result.candidate.add(action, label, amount)
        base_flag = False
        if baseline is not None and result.baseline is not None:
            base_action = action_of(baseline.evaluate(attributes))
            result.baseline.add(base_action, label, amount)
            base_flag = base_action in ("decline", "review")
            cand_flag = action in ("decline", "review")
            if cand_flag and base_flag:
                result.both_flag += 1
            elif cand_flag:
                result.candidate_only += 1
            elif base_flag:
                result.baseline_only += 1
        for hit in outcome.hits:
            s = stats[hit.rule_id]
            s.hits += 1
            if base_flag:
                s.overlap_hits += 1
            if label is True:
                s.fraud_hits += 1
                s.amount_caught += amount
            elif label is False:
                s.legit_hits += 1
                s.amount_wrongly_hit += amount
        if progress is not None and n % progress_every == 0:
            progress(n)
    result.rows = n
    if progress is not None:
        progress(n)
    return result
