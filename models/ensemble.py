"""The default unsupervised ensemble: ECOD, COPOD, IForest and HBOS, robustly combined.

Each member's raw score is standardised on its own training scores with the median and
the scaled median absolute deviation (robust z: a few extreme training rows do not
move it), then the members' z-scores are combined (default: their mean; the default
ensemble weighs each member by how far its riskiest training rows agree with ECOD's,
see :data:`DEFAULT_AGREEMENT_TOP`). ECOD and COPOD share one set of marginal ECDFs, so
their tails are computed once per call.

The ensemble also imputes missing values (NaN) with the training medians, so it scores
any numeric matrix, and it explains a row by its per-feature outlyingness: ECOD's
per-feature ``-log`` tail probability minus that feature's training median, in nats
(positive = this value is rarer than usual for that feature).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from contracts.errors import ConfigError
from models.detectors import (
    DETECTORS,
    BaseDetector,
    EcdfTails,
    NotFittedError,
    aggregate_outlyingness,
    copod_outlyingness,
    ecod_outlyingness,
)

__all__ = [
    "DEFAULT_AGREEMENT_POWER",
    "DEFAULT_AGREEMENT_TOP",
    "DEFAULT_COPOD_NORM",
    "DEFAULT_ECOD_NORM",
    "DEFAULT_MEMBERS",
    "UnsupervisedEnsemble",
    "make_unsupervised_ensemble",
]

DEFAULT_MEMBERS: tuple[str, ...] = ("ecod", "copod", "iforest", "hbos")
#: How the default ensemble weighs its members: by agreement with ECOD on the training
#: data, not by fixed weights. ECOD anchors the ensemble (the strongest classic detector
#: on ADBench, parameter-free, and the one whose per-feature tails explain a score);
#: COPOD adds its copula tails, IForest the one view of dependence between features,
#: HBOS a coarse density. Which of them helps depends on the data: on the ADBench dev
#: sets IForest and HBOS are the best detectors on thyroid and the worst on donors, and
#: any fixed share that helps the one costs the other (fixed weights 1/0.25/0.125/0.05
#: averaged 85.89; every equal-weight design loses 2-6 points to ECOD on donors). A
#: member whose riskiest training rows are ECOD's riskiest rows too is seeing the same
#: anomalies from another angle, and its extra view is worth a say; one whose top rows
#: are mostly elsewhere is mostly flagging rows that only it finds odd, which on these
#: sets is where it is weakest. So every member starts with weight 1 and
#: is multiplied by ``overlap ** DEFAULT_AGREEMENT_POWER``, where ``overlap`` is the share
#: of ECOD's top ``DEFAULT_AGREEMENT_TOP`` training rows that are also in the member's
#: top ``DEFAULT_AGREEMENT_TOP`` (ECOD's own weight stays 1). No labels are used: it is
#: fitted on the training scores, like the robust z. The power makes the weight fall
#: steeply with disagreement (an overlap of 0.9 keeps 43% of the weight, 0.7 keeps 6%,
#: 0.5 keeps 0.4%). On the dev sets (bench/adbench.py, models/README.md) the mean AUC
#: is 85.93-86.20 over every top share 1-10% and power 4-12 tried (86.10 at the
#: default); these are the sets the design was chosen on, there is no held-out figure.
DEFAULT_AGREEMENT_TOP = 0.05
DEFAULT_AGREEMENT_POWER = 8.0
#: L^p aggregation of ECOD's and COPOD's per-feature outlyingness in the default
#: ensemble (PyOD sums, p = 1). A sum lets many mildly unusual features outvote one
#: extreme feature; p > 1 leans toward the extreme one while still counting the rest.
#: Alone, ECOD at p = 1.5 averages 85.86 on the dev sets against 85.68 at p = 1.
DEFAULT_ECOD_NORM = 1.5
DEFAULT_COPOD_NORM = 2.0
_COMBINATIONS = ("mean", "median", "max", "trimmed_mean")
#: MAD -> standard deviation for a normal distribution
_MAD_SCALE = 1.4826


class UnsupervisedEnsemble:
    """Robust average of classic detectors; higher = more anomalous.

    Parameters
    ----------
    members : sequence of str, default ("ecod", "copod", "iforest", "hbos")
        Detector names from :data:`models.detectors.DETECTORS`.
    weights : sequence of float or None
        Per-member prior weights for ``combination="mean"``; None = equal.
    agree_with : str or None, default None
        With a member name (the default ensemble: ``"ecod"``), each member's weight is
        multiplied by ``overlap ** agreement_power`` after fitting, ``overlap`` being the
        share of that member's top ``agreement_top`` training rows that are also in
        ``agree_with``'s top ``agreement_top`` (see :data:`DEFAULT_AGREEMENT_TOP`).
        None = the prior weights as they are.
    agreement_top : float, default 0.05
        Share of the training rows that counts as a member's riskiest.
    agreement_power : float, default 8.0
        How steeply a member's weight falls with disagreement.
    combination : {"mean", "median", "max", "trimmed_mean"}, default "mean"
        How standardised member scores are combined.
    clip : float or None, default None
        Clip each member's robust z-score to ``[-clip, clip]`` before combining
        (one runaway detector cannot dominate). None = no clip.
    contamination : float, default 0.1
        Share of training rows above ``threshold_``.
    n_estimators : int, default 100
        Trees in the isolation forest.
    max_samples : int or None, default 100_000
        Rows used for the marginal ECDFs.
    max_knots : int or None, default 4096
        Distinct values kept per feature in the ECDFs (exact tails, thinned middle;
        see :meth:`models.detectors.EcdfTails.fit`): bounds the artifact size and
        keeps each lookup in cache.
    ecod_norm, copod_norm : float, default 1.0
        How ECOD's and COPOD's per-feature outlyingness makes a row score: its L^p norm
        (1 = PyOD's sum; see :func:`models.detectors.aggregate_outlyingness`).
    random_state : int or None
        Seed for the forest and the ECDF subsample.

    Attributes
    ----------
    threshold_ : float
        ``1 - contamination`` quantile of the combined training scores.
    medians_ : ndarray of shape (n_features,)
        Training medians used to impute NaN.
    centers_, scales_ : ndarray of shape (n_members,)
        Robust standardisation of each member (median, 1.4826 * MAD).
    agreement_ : ndarray of shape (n_members,)
        Overlap of each member's top training rows with ``agree_with``'s (ones without).
    weights_ : ndarray of shape (n_members,)
        The weights ``combination="mean"`` uses, summing to 1.
    quantile_values_, quantile_levels_ : ndarray
        Distinct quantiles (0, 0.1%, ..., 100%) of the combined training scores and
        their levels: the map behind :meth:`quantile` (unsupervised calibration).
    """

    def __init__(
        self,
        *,
        members: Sequence[str] = DEFAULT_MEMBERS,
        weights: Sequence[float] | None = None,
        agree_with: str | None = None,
        agreement_top: float = DEFAULT_AGREEMENT_TOP,
        agreement_power: float = DEFAULT_AGREEMENT_POWER,
        combination: str = "mean",
        clip: float | None = None,
        contamination: float = 0.1,
        n_estimators: int = 100,
        max_samples: int | None = 100_000,
        max_knots: int | None = 4096,
        ecod_norm: float = 1.0,
        copod_norm: float = 1.0,
        random_state: int | None = None,
    ) -> None:
        self.members = members
        self.weights = weights
        self.agree_with = agree_with
        self.agreement_top = agreement_top
        self.agreement_power = agreement_power
        self.combination = combination
        self.clip = clip
        self.contamination = contamination
        self.n_estimators = n_estimators
        self.max_samples = max_samples
        self.max_knots = max_knots
        self.ecod_norm = ecod_norm
        self.copod_norm = copod_norm
        self.random_state = random_state

    # -- fitting -------------------------------------------------------------------
    def fit(self, X: Any, y: Any = None) -> UnsupervisedEnsemble:
        members = tuple(self.members)
        unknown = [m for m in members if m not in DETECTORS]
        if not members or unknown:
            raise ConfigError(f"unknown ensemble members {unknown or members}")
        if self.combination not in _COMBINATIONS:
            raise ConfigError(f"combination must be one of {_COMBINATIONS}")
        if self.weights is not None and len(self.weights) != len(members):
            raise ConfigError("weights must match members")
        if self.agree_with is not None:
            if self.agree_with not in members:
                raise ConfigError(f"agree_with {self.agree_with!r} is not a member")
            if not 0.0 < self.agreement_top < 1.0:
                raise ConfigError("agreement_top must be in (0, 1)")
            if not self.agreement_power >= 0.0:
                raise ConfigError("agreement_power must be >= 0")
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[0] < 2:
            raise ValueError("need a 2-d matrix with at least 2 rows")
        with warnings.catch_warnings():
            # an all-missing column is legitimate (a feature this shop never fills)
            warnings.simplefilter("ignore", RuntimeWarning)
            medians = np.nanmedian(np.where(np.isfinite(X), X, np.nan), axis=0)
        self.medians_ = np.nan_to_num(medians, nan=0.0)
        X = self._impute(X)
        self.n_features_in_ = X.shape[1]
        self.members_ = members

        fitted: dict[str, BaseDetector] = {}
        for name in members:
            if name in ("ecod", "copod"):
                continue
            params: dict[str, Any] = {"contamination": self.contamination}
            if name == "iforest":
                params.update(n_estimators=self.n_estimators, random_state=self.random_state)
            fitted[name] = DETECTORS[name](**params).fit(X)
        self.detectors_ = fitted
        if "ecod" in members or "copod" in members:
            Xe = X
            if self.max_samples is not None and X.shape[0] > self.max_samples:
                rng = np.random.default_rng(self.random_state)
                Xe = X[rng.choice(X.shape[0], self.max_samples, replace=False)]
            self.tails_ = EcdfTails.fit(Xe, max_knots=self.max_knots)

        raw, per_feature = self._raw_scores(X, want_explain=True)
        centers = np.median(raw, axis=0)
        mad = np.median(np.abs(raw - centers), axis=0) * _MAD_SCALE
        # a detector whose training scores are mostly tied has MAD 0: fall back to std
        std = raw.std(axis=0)
        scales = np.where(mad > 1e-12, mad, np.where(std > 1e-12, std, 1.0))
        self.centers_ = centers
        self.scales_ = scales
        prior = (np.ones(len(members)) if self.weights is None
                 else np.asarray(self.weights, dtype=np.float64))
        if self.agree_with is not None:
            self.agreement_ = _top_overlap(raw, members.index(self.agree_with), self.agreement_top)
            w = prior * self.agreement_ ** self.agreement_power
        else:
            self.agreement_ = np.ones(len(members))
            w = prior
        if not w.sum() > 0:
            raise ConfigError("ensemble weights sum to zero")
        self.weights_ = w / w.sum()
        combined = self._combine(raw)
        self.threshold_ = float(np.quantile(combined, 1.0 - self.contamination))
        self.quantile_values_, self.quantile_levels_ = _quantile_grid(combined)
        self.explain_centers_ = (
            np.median(per_feature, axis=0) if per_feature is not None
            else np.zeros(self.n_features_in_)
        )
        return self

    # -- scoring -------------------------------------------------------------------
    def decision_function(self, X: Any) -> np.ndarray:
        """Combined robust z-score per row; higher = more anomalous."""
        X = self._prepare(X)
        raw, _ = self._raw_scores(X, want_explain=False)
        return self._combine(raw)

    def score_explain(self, X: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(combined, member_z, outlyingness)`` in one pass.

        ``member_z`` has shape ``(n_rows, n_members)``; ``outlyingness`` has shape
        ``(n_rows, n_features)``: per-feature outlyingness above that feature's training
        median (nats; positive = rarer than usual), zeros without ECOD/COPOD members.
        """
        X = self._prepare(X)
        raw, per_feature = self._raw_scores(X, want_explain=True)
        z = self._standardise(raw)
        combined = self._combine_z(z)
        explain = np.zeros(X.shape) if per_feature is None else per_feature - self.explain_centers_
        return combined, z, explain

    def member_scores(self, X: Any) -> dict[str, np.ndarray]:
        """Each member's robust z-score, by member name."""
        _, z, _ = self.score_explain(X)
        return {name: z[:, i] for i, name in enumerate(self.members_)}

    def predict(self, X: Any) -> np.ndarray:
        return (self.decision_function(X) > self.threshold_).astype(np.int64)

    def quantile(self, scores: np.ndarray) -> np.ndarray:
        """Empirical quantile (0..1) of combined scores within the training traffic."""
        self._check_fitted()
        values, levels = self.quantile_values_, self.quantile_levels_
        scores = np.asarray(scores, dtype=np.float64)
        if values.shape[0] == 1:
            return np.where(scores > values[0], 1.0, levels[0])
        return np.interp(scores, values, levels, left=0.0, right=1.0)

    # -- internals -----------------------------------------------------------------
    def _check_fitted(self) -> None:
        if not hasattr(self, "threshold_"):
            raise NotFittedError("UnsupervisedEnsemble is not fitted; call fit first")

    def _impute(self, X: np.ndarray) -> np.ndarray:
        bad = ~np.isfinite(X)
        if bad.any():
            X = np.where(bad, self.medians_, X)
        return X

    def _prepare(self, X: Any) -> np.ndarray:
        self._check_fitted()
        X = np.asarray(X, dtype=np.float64)
        if X.ndim == 1:
            X = X.reshape(1, -1)
        if X.ndim != 2 or X.shape[1] != self.n_features_in_:
            raise ValueError(f"expected shape (n, {self.n_features_in_}), got {X.shape}")
        return self._impute(X)

    def _raw_scores(self, X: np.ndarray, *, want_explain: bool
                    ) -> tuple[np.ndarray, np.ndarray | None]:
        out = np.empty((X.shape[0], len(self.members_)))
        per_feature = None
        ecod_o = copod_o = None
        if "ecod" in self.members_ or "copod" in self.members_:
            u_l, u_r = self.tails_.tails(X)
            if "ecod" in self.members_ or want_explain:
                ecod_o = ecod_outlyingness(u_l, u_r, self.tails_.skew_sign)
            if "copod" in self.members_:
                copod_o = copod_outlyingness(u_l, u_r, self.tails_.skew_sign)
            per_feature = ecod_o
        for i, name in enumerate(self.members_):
            if name == "ecod":
                out[:, i] = aggregate_outlyingness(ecod_o, self.ecod_norm)  # type: ignore[arg-type]
            elif name == "copod":
                out[:, i] = aggregate_outlyingness(copod_o, self.copod_norm)  # type: ignore[arg-type]
            else:
                out[:, i] = self.detectors_[name]._score(X)
        return out, per_feature

    def _standardise(self, raw: np.ndarray) -> np.ndarray:
        z = (raw - self.centers_) / self.scales_
        if self.clip is not None:
            z = np.clip(z, -self.clip, self.clip)
        return z

    def _combine(self, raw: np.ndarray) -> np.ndarray:
        return self._combine_z(self._standardise(raw))

    def _combine_z(self, z: np.ndarray) -> np.ndarray:
        if self.combination == "median":
            return np.median(z, axis=1)
        if self.combination == "max":
            return z.max(axis=1)
        if self.combination == "trimmed_mean" and z.shape[1] > 2:
            s = np.sort(z, axis=1)
            return s[:, 1:-1].mean(axis=1)
        return z @ self.weights_

    # -- persistence (plain arrays + JSON, no pickle) ---------------------------------
    def get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        self._check_fitted()
        meta: dict[str, Any] = {
            "params": {
                "members": list(self.members), "weights": None if self.weights is None
                else [float(w) for w in self.weights], "agree_with": self.agree_with,
                "agreement_top": self.agreement_top, "agreement_power": self.agreement_power,
                "combination": self.combination,
                "clip": self.clip, "contamination": self.contamination,
                "n_estimators": self.n_estimators, "max_samples": self.max_samples,
                "max_knots": self.max_knots,
                "ecod_norm": self.ecod_norm, "copod_norm": self.copod_norm,
                "random_state": self.random_state,
            },
            "threshold_": self.threshold_,
            "n_features_in_": self.n_features_in_,
            "detectors": {},
        }
        arrays: dict[str, np.ndarray] = {
            "medians_": self.medians_, "centers_": self.centers_, "scales_": self.scales_,
            "agreement_": self.agreement_, "weights_": self.weights_,
            "quantile_values_": self.quantile_values_,
            "quantile_levels_": self.quantile_levels_,
            "explain_centers_": self.explain_centers_,
        }
        if hasattr(self, "tails_"):
            arrays.update(self.tails_.state("tails."))
        for name, det in self.detectors_.items():
            dmeta, darrays = det.get_state()
            meta["detectors"][name] = dmeta
            arrays.update({f"{name}.{k}": v for k, v in darrays.items()})
        return meta, arrays

    @classmethod
    def from_state(cls, meta: dict[str, Any], arrays: dict[str, np.ndarray]
                   ) -> UnsupervisedEnsemble:
        try:
            ens = cls(**meta["params"])
            ens.members_ = tuple(meta["params"]["members"])
            ens.n_features_in_ = int(meta["n_features_in_"])
            ens.threshold_ = float(meta["threshold_"])
            for attr in ("medians_", "centers_", "scales_", "quantile_values_",
                         "quantile_levels_", "explain_centers_"):
                setattr(ens, attr, arrays[attr])
            if "weights_" in arrays:
                ens.agreement_, ens.weights_ = arrays["agreement_"], arrays["weights_"]
            else:  # saved before agreement weighting: the fixed prior weights
                n = len(ens.members_)
                w = np.ones(n) if ens.weights is None else np.asarray(ens.weights, dtype=np.float64)
                ens.agreement_, ens.weights_ = np.ones(n), w / w.sum()
            if "tails.values" in arrays:
                ens.tails_ = EcdfTails.from_arrays(arrays, "tails.")
            detectors: dict[str, BaseDetector] = {}
            for name, dmeta in meta["detectors"].items():
                prefix = f"{name}."
                sub = {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}
                detectors[name] = DETECTORS[name].from_state(dmeta, sub)
            ens.detectors_ = detectors
        except (KeyError, TypeError) as exc:
            raise ConfigError(f"ensemble state is incomplete: {exc}") from None
        return ens


def _top_overlap(raw: np.ndarray, anchor: int, top: float) -> np.ndarray:
    """Per member: the share of ``anchor``'s top ``top`` rows that are in its own top.

    Ranks are the raw training scores' (the robust z does not reorder them); ties are
    broken by row order, so the result is deterministic.
    """
    n = raw.shape[0]
    k = max(1, round(n * top))
    tops = np.argsort(-raw, axis=0, kind="stable")[:k]  # (k, n_members) row indices
    in_anchor = np.zeros(n, dtype=bool)
    in_anchor[tops[:, anchor]] = True
    return in_anchor[tops].mean(axis=0)


def _quantile_grid(scores: np.ndarray, n: int = 1001) -> tuple[np.ndarray, np.ndarray]:
    """Distinct training-score quantiles and the level each is reached at.

    The map score -> level interpolates linearly between them (monotone). Ties (many
    equal training scores) take the highest level at which the value appears, so a row
    equal to the most common score does not look rarer than it is.
    """
    levels = np.linspace(0.0, 1.0, n)
    grid = np.quantile(scores, levels)
    values, first = np.unique(grid, return_index=True)
    last = np.r_[first[1:] - 1, n - 1]
    return values, levels[last]


def make_unsupervised_ensemble(random_state: int | None = None) -> UnsupervisedEnsemble:
    """The default ensemble: ECOD (L^1.5), COPOD (L^2), IForest, HBOS; robust z; mean
    weighted by each member's agreement with ECOD on the training rows."""
    return UnsupervisedEnsemble(members=DEFAULT_MEMBERS, agree_with="ecod",
                                agreement_top=DEFAULT_AGREEMENT_TOP,
                                agreement_power=DEFAULT_AGREEMENT_POWER,
                                ecod_norm=DEFAULT_ECOD_NORM, copod_norm=DEFAULT_COPOD_NORM,
                                random_state=random_state)
