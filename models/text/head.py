"""The tier-2 text classifier: one-vs-rest logistic regression over sentence embeddings.

Multi-label: each label has its own sigmoid and its own threshold, chosen on
cross-validated predictions at training time. The artifact is a small ``.npz`` (about
25 KB, ``allow_pickle=False``) shipped in the package, so the demo classifies text on a
machine without the training data; ``riskwire text train`` rebuilds it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from contracts.errors import ConfigError

__all__ = ["DEFAULT_HEAD_PATH", "HeadReport", "TextHead", "fit_head"]

DEFAULT_HEAD_PATH = Path(__file__).with_name("artifacts") / "head.npz"


@dataclass
class HeadReport:
    """What training measured (cross-validated), saved beside the weights."""

    n_rows: int
    positives: dict[str, int]
    cv_auroc: dict[str, float] = field(default_factory=dict)
    thresholds: dict[str, float] = field(default_factory=dict)
    sources: dict[str, int] = field(default_factory=dict)


class TextHead:
    """Multi-label linear head: ``sigmoid(X @ W + b)`` per label.

    Parameters
    ----------
    labels:
        Label names, one column of ``W`` each.
    feature_names:
        What the columns of ``X`` are (embedding dims then tier-1 features); the caller
        builds ``X`` in this order.
    W, b:
        Weights (n_features, n_labels) and intercepts (n_labels,).
    thresholds:
        Per-label probability at and above which the label is flagged.
    version:
        Content hash of the weights, recorded on decisions.
    """

    def __init__(
        self,
        *,
        labels: Sequence[str],
        feature_names: Sequence[str],
        W: np.ndarray,
        b: np.ndarray,
        thresholds: np.ndarray,
        version: str,
        meta: dict[str, Any] | None = None,
    ) -> None:
        self.labels = tuple(labels)
        self.feature_names = tuple(feature_names)
        self.W_ = np.asarray(W, dtype=np.float32)
        self.b_ = np.asarray(b, dtype=np.float32)
        self.thresholds_ = np.asarray(thresholds, dtype=np.float32)
        self.version = version
        self.meta = meta or {}
        if self.W_.shape != (len(self.feature_names), len(self.labels)):
            raise ConfigError(f"head weights {self.W_.shape} do not match {len(self.feature_names)} features x {len(self.labels)} labels")

    @property
    def thresholds(self) -> dict[str, float]:
        return {lab: float(t) for lab, t in zip(self.labels, self.thresholds_, strict=True)}

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        """Logits (n, n_labels); higher = more of that label."""
        return np.asarray(X, dtype=np.float32) @ self.W_ + self.b_

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Per-label probabilities (n, n_labels), independent sigmoids."""
        z = np.clip(self.decision_function(X), -30.0, 30.0)
        return 1.0 / (1.0 + np.exp(-z))

    def save(self, path: str | Path) -> Path:
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        with p.open("wb") as fh:
            np.savez_compressed(
                fh,
                W=self.W_,
                b=self.b_,
                thresholds=self.thresholds_,
                labels=np.array(self.labels),
                feature_names=np.array(self.feature_names),
                version=np.array(self.version),
                meta=np.array(json.dumps(self.meta, sort_keys=True)),
            )
        return p

    @classmethod
    def load(cls, path: str | Path | None = None) -> TextHead:
        p = Path(path) if path is not None else DEFAULT_HEAD_PATH
        if not p.is_file():
            raise ConfigError(f"text head artifact not found: {p} (build it with `riskwire text train`)")
        try:
            with np.load(p, allow_pickle=False) as z:
                return cls(
                    labels=[str(x) for x in z["labels"]],
                    feature_names=[str(x) for x in z["feature_names"]],
                    W=z["W"],
                    b=z["b"],
                    thresholds=z["thresholds"],
                    version=str(z["version"]),
                    meta=json.loads(str(z["meta"])),
                )
        except (OSError, KeyError, ValueError) as exc:
            raise ConfigError(f"text head artifact {p} is unreadable: {exc}") from exc


def _version_of(W: np.ndarray, b: np.ndarray) -> str:
    import hashlib

    h = hashlib.sha256(np.ascontiguousarray(W, dtype=np.float32).tobytes())
    h.update(np.ascontiguousarray(b, dtype=np.float32).tobytes())
    return "head-" + h.hexdigest()[:12]


def fit_head(
    X: np.ndarray,
    Y: np.ndarray,
    *,
    labels: Sequence[str],
    feature_names: Sequence[str],
    C: float = 4.0,
    folds: int = 5,
    seed: int = 0,
    sample_weight: np.ndarray | None = None,
    min_threshold: float = 0.3,
    max_threshold: float = 0.8,
    sources: dict[str, int] | None = None,
) -> tuple[TextHead, HeadReport]:
    """Fit one logistic regression per label; thresholds maximise cross-validated F1.

    Parameters
    ----------
    X:
        (n, n_features) inputs, columns as ``feature_names``.
    Y:
        (n, n_labels) 0/1 targets, columns as ``labels``.
    C:
        Inverse L2 strength of scikit-learn's ``LogisticRegression``.
    folds:
        Stratified folds for the out-of-fold predictions that set the thresholds and
        the reported AUROC.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold

    X = np.asarray(X, dtype=np.float64)
    Y = np.asarray(Y, dtype=np.int8)
    n, L = Y.shape
    W = np.zeros((X.shape[1], L), dtype=np.float64)
    b = np.zeros(L, dtype=np.float64)
    thresholds = np.full(L, 0.5)
    report = HeadReport(n_rows=n, positives={lab: int(Y[:, j].sum()) for j, lab in enumerate(labels)}, sources=dict(sources or {}))
    for j, lab in enumerate(labels):
        y = Y[:, j]
        if y.sum() == 0 or y.sum() == n:
            b[j] = -8.0 if y.sum() == 0 else 8.0
            continue
        oof = np.zeros(n)
        k = int(min(folds, y.sum(), n - y.sum()))
        if k >= 2:
            for tr, te in StratifiedKFold(k, shuffle=True, random_state=seed).split(X, y):
                m = LogisticRegression(C=C, max_iter=2000)
                m.fit(X[tr], y[tr], sample_weight=None if sample_weight is None else sample_weight[tr])
                oof[te] = m.predict_proba(X[te])[:, 1]
            report.cv_auroc[lab] = round(float(roc_auc_score(y, oof)), 4)
            thresholds[j] = _best_f1_threshold(y, oof, lo=min_threshold, hi=max_threshold)
        m = LogisticRegression(C=C, max_iter=2000)
        m.fit(X, y, sample_weight=sample_weight)
        W[:, j] = m.coef_[0]
        b[j] = m.intercept_[0]
    report.thresholds = {lab: round(float(t), 4) for lab, t in zip(labels, thresholds, strict=True)}
    head = TextHead(
        labels=labels,
        feature_names=feature_names,
        W=W.astype(np.float32),
        b=b.astype(np.float32),
        thresholds=thresholds.astype(np.float32),
        version=_version_of(W, b),
        meta={"report": report.__dict__, "C": C},
    )
    return head, report


def _best_f1_threshold(y: np.ndarray, p: np.ndarray, *, lo: float, hi: float) -> float:
    best_t, best_f = 0.5, -1.0
    for t in np.arange(lo, hi + 1e-9, 0.025):
        pred = p >= t
        tp = float(np.sum(pred & (y == 1)))
        fp = float(np.sum(pred & (y == 0)))
        fn = float(np.sum(~pred & (y == 1)))
        f = 2 * tp / max(2 * tp + fp + fn, 1.0)
        if f > best_f:
            best_t, best_f = float(t), f
    return round(best_t, 4)
