"""The engine: featurise -> text -> models -> rules -> policy, for one order or a batch.

The engine owns no state of its own. Its collaborators are injected (see
``detector.wiring``) and described here as protocols, so ``features``, ``models`` and
``rules`` never import ``detector``:

- a featuriser reads entity state for each order, then records the order (idempotent
  per order id), and returns the batch's features as a column-wise
  :class:`~contracts.frame.FeatureFrame` keyed by the feature schema; the models read
  a matrix of it, the rules the columns they name;
- a text stage (optional) reads the free text and returns text features, labels and
  spans;
- a risk model scores the numeric matrix in one vectorised call;
- a ruleset holder hands out the current compiled ruleset (hot reload swaps it);
- the policy turns scores and rule hits into the action and its reasons.

The stream calls :meth:`Engine.decide_batch`; checkout calls :meth:`Engine.decide`,
which is the same code with a batch of one.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol, runtime_checkable

import numpy as np

from contracts import (
    Decision,
    Degradation,
    FeatureSchema,
    FeatureSpec,
    Label,
    Order,
    RiskwireError,
    SignalUnavailable,
    Versions,
)
from contracts.events import FeatureContribution
from contracts.frame import FeatureFrame
from contracts.results import ModelScores, RulesOutcome, TextResult
from detector import __version__
from detector.metrics import Metrics
from detector.policy import Policy, PolicyInput

__all__ = [
    "DECISION_NAMESPACE",
    "ENGINE_ATTRIBUTES",
    "Engine",
    "Featurizer",
    "ModelScores",
    "RiskModel",
    "RulesOutcome",
    "Ruleset",
    "RulesetSource",
    "TextResult",
    "TextStage",
    "decision_id_for",
    "merge_text",
    "run_text_stage",
    "score_columns",
    "text_columns",
]

#: uuid5 namespace for decision ids: the same order and revision give the same id.
DECISION_NAMESPACE = uuid.UUID("5b0c7f52-0f8e-4a43-9b8e-2f3d9a1c6e11")


def decision_id_for(subject_id: str, revision: int) -> str:
    return str(uuid.uuid5(DECISION_NAMESPACE, f"{subject_id}#{revision}"))


@runtime_checkable
class Featurizer(Protocol):
    schema: FeatureSchema
    version: str

    def featurize(self, orders: Sequence[Order]) -> FeatureFrame:
        """Features per order in input order; records each order once in state."""
        ...

    def apply_labels(self, labels: Sequence[Label]) -> None: ...


class TextStage(Protocol):
    schema: FeatureSchema

    def analyze(self, orders: Sequence[Order], *, budget_s: float) -> list[TextResult]: ...


class RiskModel(Protocol):
    version: str
    kind: str
    feature_names: tuple[str, ...]

    def score(self, X: np.ndarray, *, explain: int = 5) -> ModelScores: ...


class Ruleset(Protocol):
    version: str

    def evaluate(self, attributes: Mapping[str, Any]) -> RulesOutcome: ...

    def evaluate_frame(self, frame: FeatureFrame) -> list[RulesOutcome]:
        """``evaluate`` for every row of a frame, reading only the columns the rules name."""
        ...


class RulesetSource(Protocol):
    """Hands out the current ruleset; hot reload swaps what ``current`` returns."""

    @property
    def current(self) -> Ruleset: ...


#: Attributes the engine adds to each order's features before rules run.
ENGINE_ATTRIBUTES = FeatureSchema.of(
    [
        FeatureSpec("model_score", "number", "0-100", "The model's risk score for this order.", model_input=False),
        FeatureSpec("anomaly_score", "number", "z", "Unsupervised ensemble score (robust z units).", model_input=False),
        FeatureSpec("supervised_score", "number", "probability", "LightGBM fraud probability, when trained.", model_input=False),
        FeatureSpec("text_labels", "string_list", "labels", "Text labels found in the order's free text.", model_input=False),
    ]
)


class Engine:
    """Composes the stages into Decisions; safe to share between threads."""

    def __init__(
        self,
        *,
        featurizer: Featurizer,
        model: RiskModel,
        rules: RulesetSource,
        policy: Policy,
        metrics: Metrics,
        text: TextStage | None = None,
        explain: int = 5,
        text_budget_s: Mapping[str, float] | None = None,
        challenger: RiskModel | None = None,
    ) -> None:
        self._featurizer = featurizer
        self._model = model
        self._challenger = challenger
        self._rules = rules
        self._policy = policy
        self._metrics = metrics
        self._text = text
        self._explain = explain
        self._text_budget = dict(text_budget_s or {"sync": 0.0, "stream": 0.0})
        self._feature_names = model.feature_names
        self._model_listeners: list[Callable[[RiskModel], None]] = []

    @property
    def model(self) -> RiskModel:
        return self._model

    @property
    def ruleset_version(self) -> str:
        return self._rules.current.version

    def swap_model(self, model: RiskModel) -> None:
        """Atomically replace the model; in-flight batches keep the one they started with."""
        self._model = model
        self._feature_names = model.feature_names
        for listener in self._model_listeners:
            listener(model)

    @property
    def challenger(self) -> RiskModel | None:
        return self._challenger

    def swap_challenger(self, model: RiskModel | None) -> None:
        """Set (or clear) the shadow challenger: scored and recorded, never acted on."""
        self._challenger = model

    def on_model_swap(self, listener: Callable[[RiskModel], None]) -> None:
        """Call ``listener`` with each new model (the drift monitor resets its reference)."""
        self._model_listeners.append(listener)

    def decide(self, order: Order, *, path: str = "sync") -> Decision:
        return self.decide_batch([order], path=path)[0]

    def decide_batch(self, orders: Sequence[Order], *, path: str = "stream") -> list[Decision]:
        if not orders:
            return []
        started = time.perf_counter()
        # One model and one ruleset per batch: no decision mixes two versions.
        model, ruleset, challenger = self._model, self._rules.current, self._challenger
        feature_names = model.feature_names
        stage = self._metrics.stage_timer

        with stage("features"):
            frame = self._featurizer.featurize(orders)

        texts: list[TextResult] = [TextResult()] * len(orders)
        if self._text is not None:
            text_stage, budget = self._text, self._text_budget.get(path, 0.0)
            with stage("text"):
                texts = run_text_stage(lambda: text_stage.analyze(orders, budget_s=budget), len(orders))
            frame = frame.with_columns(text_columns(texts))

        degraded_model: Degradation | None = None
        with stage("models"):
            try:
                X = frame.numbers(feature_names)
                scores: ModelScores | None = model.score(X, explain=self._explain)
            except RiskwireError as exc:
                self._metrics.model_errors.labels(model="primary").inc()
                degraded_model = Degradation(signal="model", reason=str(exc)[:200])
                scores = None
            shadow_scores = self._score_challenger(challenger, frame, X if scores is not None else None, feature_names)

        decisions: list[Decision] = []
        with stage("rules"):
            if scores is not None:
                frame = frame.with_columns(score_columns(scores))
            outcomes = ruleset.evaluate_frame(frame)

        decided_at = datetime.now(UTC)
        per_order_ms = (time.perf_counter() - started) * 1000.0 / len(orders)
        versions = Versions(
            engine=__version__,
            features=self._featurizer.version,
            model=model.version,
            ruleset=ruleset.version,
            prompt=next((t.prompt_version for t in texts if t.prompt_version), None),
        )
        for i, order in enumerate(orders):
            text = texts[i]
            degraded = list(text.degraded)
            if degraded_model is not None:
                degraded.append(degraded_model)
            contributions = (
                [
                    FeatureContribution(feature=f, value=_jsonable(frame.get(i, f)), contribution=round(c, 6))
                    for f, c in scores.contributions[i]
                ]
                if scores is not None
                else []
            )
            verdict = self._policy.decide(
                PolicyInput(
                    model_risk=None if scores is None else float(scores.risk[i]),
                    model_kind="none" if scores is None else scores.kind,
                    text_risk=text.risk,
                    text_labels=text.labels,
                    text_spans=text.spans,
                    rule_hits=outcomes[i].hits,
                    rule_details=outcomes[i].details,
                    contributions=contributions,
                )
            )
            shadow = None
            if shadow_scores is not None and challenger is not None:
                # The challenger sees the same text and rule hits; only its score differs.
                sv = self._policy.decide(
                    PolicyInput(
                        model_risk=float(shadow_scores.risk[i]), model_kind=shadow_scores.kind,
                        text_risk=text.risk, text_labels=text.labels, rule_hits=outcomes[i].hits,
                    )
                )
                shadow = {"model": challenger.version, "kind": shadow_scores.kind,
                          "score": sv.score, "action": sv.action}
                self._metrics.shadow_decisions.labels(action=sv.action).inc()
            signals = {} if scores is None else {k: round(float(v[i]), 6) for k, v in scores.signals.items()}
            decisions.append(
                Decision(
                    decision_id=decision_id_for(order.order_id, 1),
                    order_id=order.order_id,
                    event_time=order.created_at,
                    decided_at=decided_at,
                    score=verdict.score,
                    action=verdict.action,
                    reasons=verdict.reasons,
                    signals=signals,
                    text_labels={k: round(v, 4) for k, v in text.labels.items()},
                    text_spans=list(text.spans),
                    cluster_id=text.cluster_id,
                    contributions=contributions,
                    rule_hits=list(outcomes[i].hits),
                    model_kind=scores.kind if scores is not None else "none",
                    versions=versions,
                    latency_ms=round(per_order_ms, 3),
                    degraded=degraded,
                    shadow=shadow,
                )
            )
        self._metrics.observe_decisions(decisions, path=path, seconds=time.perf_counter() - started, frame=frame)
        return decisions

    def apply_labels(self, labels: Sequence[Label]) -> None:
        self._featurizer.apply_labels(labels)

    def _score_challenger(
        self, challenger: RiskModel | None, frame: FeatureFrame, X: np.ndarray | None, primary_names: Sequence[str],
    ) -> ModelScores | None:
        if challenger is None:
            return None
        try:
            same = X is not None and tuple(challenger.feature_names) == tuple(primary_names)
            Xc = X if same else frame.numbers(challenger.feature_names)
            return challenger.score(Xc, explain=0)
        except RiskwireError:
            # A broken challenger must never cost a decision; it is counted and skipped.
            self._metrics.model_errors.labels(model="challenger").inc()
            return None


def run_text_stage(analyze: Callable[[], list[TextResult]], n: int) -> list[TextResult]:
    """The text stage's results, or ``n`` results that only say why it was unavailable."""
    try:
        return analyze()
    except SignalUnavailable as exc:
        missing = Degradation(signal=exc.signal, reason=exc.reason[:256])
        return [TextResult(degraded=(missing,))] * n


def score_columns(scores: ModelScores) -> dict[str, list[float]]:
    """What the model said, as attribute columns the rules may read (``ENGINE_ATTRIBUTES``)."""
    return {
        "model_score": np.asarray(scores.risk, dtype=np.float64).tolist(),
        **{f"{name}_score": np.asarray(values, dtype=np.float64).tolist() for name, values in scores.signals.items()},
    }


def text_columns(texts: Sequence[TextResult]) -> dict[str, list[Any]]:
    """Text features and labels as attribute columns for the models and the rules
    (``None`` where a text result lacks a feature)."""
    names = dict.fromkeys(name for text in texts for name in text.features)
    columns: dict[str, list[Any]] = {name: [text.features.get(name) for text in texts] for name in names}
    columns["text_labels"] = [sorted(k for k in text.labels if k != "benign") for text in texts]
    return columns


def merge_text(rows: Sequence[dict[str, Any]], texts: Sequence[TextResult]) -> None:
    """:func:`text_columns` written into dict rows (return requests)."""
    for name, values in text_columns(texts).items():
        for row, value in zip(rows, values, strict=True):
            row[name] = value


def _jsonable(value: Any) -> float | str | bool | None:
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int | float | np.floating | np.integer):
        v = float(value)
        return None if v != v else round(v, 6)
    return str(value)[:64]
