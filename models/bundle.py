"""The risk-model bundle the engine scores with: ensemble, optional LightGBM, calibration.

``RiskBundle.score`` satisfies ``detector.engine.RiskModel``:

- ``kind == "unsupervised"``: risk = 100 x the empirical quantile of the row's ensemble
  score among the training traffic (risk 99 = more anomalous than 99% of the orders the
  model was fitted on). Contributions: per-feature outlyingness (ECOD tails, in nats
  above the feature's training median).
- ``kind == "supervised"``: risk = 100 x the calibrated fraud probability from
  LightGBM, whose inputs are the features plus the ensemble score (``anomaly_score``).
  Contributions: LightGBM path contributions in log-odds.

Signals: ``anomaly`` (ensemble robust z) always, ``supervised`` (calibrated
probability) for supervised bundles. Missing features (NaN) are imputed with training
medians for the ensemble and routed natively by LightGBM.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from contracts.errors import ConfigError
from contracts.results import ModelScores
from models.calibration import Calibrator
from models.ensemble import UnsupervisedEnsemble, make_unsupervised_ensemble
from models.supervised import FlatForest, fit_lightgbm

__all__ = ["ANOMALY_FEATURE", "RiskBundle", "fit_bundle"]

#: Name of the ensemble score as a LightGBM input (declared in the engine's attributes).
ANOMALY_FEATURE = "anomaly_score"


@dataclass
class RiskBundle:
    """Everything needed to score a feature matrix; immutable once fitted."""

    version: str
    kind: str
    feature_names: tuple[str, ...]
    ensemble: UnsupervisedEnsemble
    forest: FlatForest | None = None
    calibrator: Calibrator | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in ("unsupervised", "supervised"):
            raise ConfigError(f"unknown bundle kind {self.kind!r}")
        if self.kind == "supervised" and (self.forest is None or self.calibrator is None):
            raise ConfigError("a supervised bundle needs a forest and a calibrator")
        if self.ensemble.n_features_in_ != len(self.feature_names):
            raise ConfigError("ensemble width does not match feature_names")

    @property
    def supervised_inputs(self) -> tuple[str, ...]:
        return (*self.feature_names, ANOMALY_FEATURE)

    def score(self, X: np.ndarray, *, explain: int = 5) -> ModelScores:
        """Risk 0-100, signals and the top ``explain`` contributions for each row."""
        X = np.asarray(X, dtype=np.float64)
        if X.ndim == 1:
            X = X.reshape(1, -1)
        if X.shape[1] != len(self.feature_names):
            raise ConfigError(
                f"model expects {len(self.feature_names)} features, got {X.shape[1]}")
        want = explain > 0
        anomaly, _, outlying = self.ensemble.score_explain(X)
        signals: dict[str, np.ndarray] = {"anomaly": anomaly}
        if self.kind == "supervised":
            assert self.forest is not None and self.calibrator is not None
            Xs = np.concatenate([X, anomaly[:, None]], axis=1)
            raw, contrib = self.forest.raw_and_contrib(Xs, explain=want)
            prob = self.calibrator.predict(raw)
            signals["supervised"] = prob
            risk = 100.0 * prob
            names = self.supervised_inputs
            contributions = _top(contrib, names, explain, by_abs=True) if want else []
        else:
            risk = 100.0 * self.ensemble.quantile(anomaly)
            contributions = _top(outlying, self.feature_names, explain, by_abs=False) if want else []
        if not want:
            contributions = [[] for _ in range(X.shape[0])]
        return ModelScores(risk=np.clip(risk, 0.0, 100.0), signals=signals,
                           contributions=contributions, kind=self.kind)

    # -- persistence --------------------------------------------------------------
    def get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray], str | None]:
        """(JSON meta, arrays for one ``.npz``, LightGBM model text or None)."""
        emeta, arrays = self.ensemble.get_state()
        arrays = {f"ensemble.{k}": v for k, v in arrays.items()}
        meta: dict[str, Any] = {
            "format": 1,
            "kind": self.kind,
            "feature_names": list(self.feature_names),
            "ensemble": emeta,
            "calibrator": None,
        }
        if self.calibrator is not None:
            cmeta, carrays = self.calibrator.get_state()
            meta["calibrator"] = cmeta
            arrays.update(carrays)
        return meta, arrays, None if self.forest is None else self.forest.model_text

    @classmethod
    def from_state(cls, *, version: str, meta: Mapping[str, Any],
                   arrays: Mapping[str, np.ndarray], model_text: str | None,
                   metadata: dict[str, Any] | None = None) -> RiskBundle:
        try:
            sub = {k[len("ensemble."):]: v for k, v in arrays.items()
                   if k.startswith("ensemble.")}
            ensemble = UnsupervisedEnsemble.from_state(meta["ensemble"], sub)
            calibrator = (Calibrator.from_state(meta["calibrator"], dict(arrays))
                          if meta.get("calibrator") else None)
            forest = FlatForest.from_model_text(model_text) if model_text else None
            return cls(version=version, kind=meta["kind"],
                       feature_names=tuple(meta["feature_names"]), ensemble=ensemble,
                       forest=forest, calibrator=calibrator, metadata=metadata or {})
        except KeyError as exc:
            raise ConfigError(f"model artifact is incomplete: {exc}") from None

    def fingerprint(self) -> str:
        """Content hash of the fitted state (12 hex digits)."""
        meta, arrays, text = self.get_state()
        h = hashlib.sha256(json.dumps(meta, sort_keys=True, default=str).encode())
        for key in sorted(arrays):
            h.update(key.encode())
            h.update(np.ascontiguousarray(arrays[key]).tobytes())
        if text:
            h.update(text.encode())
        return h.hexdigest()[:12]


def _top(values: np.ndarray | None, names: Sequence[str], k: int, *, by_abs: bool
         ) -> list[list[tuple[str, float]]]:
    """Top-k (feature, contribution) per row, largest first; zeros left out."""
    if values is None:
        return []
    k = min(k, values.shape[1])
    key = np.abs(values) if by_abs else values
    if values.shape[1] > k:
        part = np.argpartition(-key, k - 1, axis=1)[:, :k]
    else:
        part = np.broadcast_to(np.arange(values.shape[1]), values.shape)
    sub = np.take_along_axis(key, part, axis=1)
    cols = np.take_along_axis(part, np.argsort(-sub, axis=1, kind="stable"), axis=1)
    picked = np.take_along_axis(values, cols, axis=1).tolist()
    return [[(names[j], v) for j, v in zip(c, p, strict=True) if v != 0.0]
            for c, p in zip(cols.tolist(), picked, strict=True)]


def fit_bundle(
    X: np.ndarray,
    feature_names: Sequence[str],
    *,
    y: np.ndarray | None = None,
    times: np.ndarray | None = None,
    random_state: int = 0,
    min_positives: int = 200,
    ensemble: UnsupervisedEnsemble | None = None,
    lgbm_params: dict[str, Any] | None = None,
    supervised_options: dict[str, Any] | None = None,
    max_ensemble_rows: int | None = 200_000,
    progress: Callable[[str, int, int], None] | None = None,
) -> RiskBundle:
    """Fit a bundle: the ensemble always, LightGBM when ``y`` has ``min_positives``.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Feature matrix in ``feature_names`` order; NaN = missing.
    y : ndarray of shape (n_samples,), optional
        1 = fraud/abuse, 0 = legit; NaN or negative = unlabelled (ensemble only).
    times : ndarray, optional
        Event times for the time-ordered validation fold.
    min_positives : int
        Fewer labelled positives than this -> an unsupervised bundle.
    ensemble : UnsupervisedEnsemble, optional
        Unfitted ensemble to use instead of the default.
    max_ensemble_rows : int or None
        Fit the ensemble on at most this many (random) rows; the calibration quantiles
        come from the same rows.
    progress : callable(stage, done, total), optional
    """
    X = np.asarray(X, dtype=np.float64)
    names = tuple(feature_names)
    if X.ndim != 2 or X.shape[1] != len(names):
        raise ConfigError(f"X has shape {X.shape} but {len(names)} feature names")
    if len(set(names)) != len(names):
        raise ConfigError("duplicate feature names")
    rng = np.random.default_rng(random_state)
    labelled = None
    if y is not None:
        y = np.asarray(y, dtype=np.float64)
        labelled = np.isfinite(y) & (y >= 0)

    # Fit "normal" on orders not known to be fraud (never learn normal from fraud).
    normal = np.ones(len(X), dtype=bool)
    if y is not None:
        normal = ~(labelled & (y > 0))  # type: ignore[operator]
    rows = np.flatnonzero(normal)
    if max_ensemble_rows is not None and len(rows) > max_ensemble_rows:
        rows = np.sort(rng.choice(rows, max_ensemble_rows, replace=False))
    if progress:
        progress("ensemble", 0, 1)
    ens = ensemble if ensemble is not None else make_unsupervised_ensemble(random_state)
    ens.fit(X[rows])
    if progress:
        progress("ensemble", 1, 1)

    metadata: dict[str, Any] = {"rows": len(X), "ensemble_rows": len(rows)}
    kind = "unsupervised"
    forest = calibrator = None
    n_pos = int((y[labelled] > 0).sum()) if y is not None else 0  # type: ignore[index]
    metadata["positives"] = n_pos
    if y is not None and n_pos >= min_positives:
        lab = np.flatnonzero(labelled)  # type: ignore[arg-type]
        anomaly = ens.decision_function(X[lab])
        Xs = np.concatenate([X[lab], anomaly[:, None]], axis=1)
        sup = fit_lightgbm(
            Xs, (y[lab] > 0).astype(np.float64),
            times=None if times is None else np.asarray(times)[lab],
            feature_names=[*names, ANOMALY_FEATURE], params=lgbm_params,
            random_state=random_state,
            progress=(lambda d, t: progress("lightgbm", d, t)) if progress else None,
            **(supervised_options or {}),
        )
        forest, calibrator = sup.forest, sup.calibrator
        metadata["supervised"] = sup.metrics
        kind = "supervised"
    bundle = RiskBundle(version="", kind=kind, feature_names=names, ensemble=ens,
                        forest=forest, calibrator=calibrator, metadata=metadata)
    bundle.version = f"{kind[:3]}-{bundle.fingerprint()}"
    return bundle
