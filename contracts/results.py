"""Plain result types that stages hand to the engine.

They live at the bottom so that ``features``, ``models`` and ``rules`` can return them
without importing ``detector``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from contracts.events import Degradation, RuleHit, TextSpan

__all__ = ["ModelScores", "RulesOutcome", "TextResult"]


@dataclass(frozen=True, slots=True)
class ModelScores:
    """What a risk model returns for a batch of rows."""

    #: 0..100, higher = riskier; its meaning is documented by the model.
    risk: np.ndarray
    #: Per-signal raw scores (e.g. "anomaly", "supervised"), one array each.
    signals: Mapping[str, np.ndarray]
    #: Top contributions per row: (feature, contribution), largest first; positive
    #: values push towards risky.
    contributions: list[list[tuple[str, float]]]
    #: "unsupervised" or "supervised": which family produced ``risk``.
    kind: str


@dataclass(frozen=True, slots=True)
class RulesOutcome:
    hits: tuple[RuleHit, ...] = ()
    #: Analyst-readable detail per hit rule id (its description, with values).
    details: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class TextResult:
    """The text stage's answer for one order or return."""

    #: Numeric text features (e.g. ``phrase_cluster_size_7d``) merged into the row.
    features: Mapping[str, float] = field(default_factory=dict)
    #: Label -> confidence, multi-label.
    labels: Mapping[str, float] = field(default_factory=dict)
    spans: tuple[TextSpan, ...] = ()
    degraded: tuple[Degradation, ...] = ()
    #: 0..1 risk the text alone carries; the policy lets it only raise the score.
    risk: float = 0.0
    prompt_version: str | None = None
    #: Recurring-phrase cluster id, for analysts.
    cluster_id: str | None = None
