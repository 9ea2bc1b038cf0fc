"""Classic unsupervised detectors with a fast, batch-free scoring path.

Each detector reproduces a PyOD detector's scores (ECOD, COPOD, HBOS, IForest) but
keeps only small numpy arrays as fitted state, so that

- one row scores in microseconds (``np.searchsorted`` on per-feature sorted values,
  histogram lookups, and isolation trees flattened into arrays and walked for every
  tree at once), where PyOD's per-call overhead costs milliseconds;
- scoring never mutates the model (PyOD's ECOD/COPOD write ``U_l``, ``O``... on every
  call, which races under concurrent requests) and keeps no training rows;
- the fitted state is plain arrays, saved to ``.npz`` without pickle
  (:meth:`get_state` / :meth:`from_state`).

Deliberate differences from PyOD, documented where they matter:

- ECOD/COPOD: PyOD scores a batch by concatenating it with the training set, so a
  row's score depends on the other rows of its batch. Here the empirical CDF is the
  training set's alone, plus the scored row itself, which is exactly what PyOD gives
  for a batch of one row (tested). The skewness sign is the training set's.
- Inputs must be finite; the ensemble imputes missing values before it calls these.

Higher score = riskier, everywhere.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from contracts.errors import ConfigError, RiskwireError

__all__ = [
    "COPOD",
    "DETECTORS",
    "ECOD",
    "HBOS",
    "BaseDetector",
    "EcdfTails",
    "IForest",
    "NotFittedError",
    "aggregate_outlyingness",
]


class NotFittedError(RiskwireError, ValueError):
    """A detector was used before ``fit``."""


def _check_X(X: Any, n_features: int | None = None) -> np.ndarray:
    X = np.asarray(X, dtype=np.float64)
    if X.ndim == 1:
        X = X.reshape(1, -1)
    if X.ndim != 2:
        raise ValueError(f"expected a 2-d matrix, got shape {X.shape}")
    if n_features is not None and X.shape[1] != n_features:
        raise ValueError(f"expected {n_features} features, got {X.shape[1]}")
    if not np.isfinite(X).all():
        raise ValueError("input contains NaN or infinity; impute it first")
    return X


class BaseDetector:
    """scikit-learn-style contract shared by every detector.

    ``__init__`` stores keyword hyper-parameters only; fitted state ends in ``_``;
    ``decision_function`` checks it is fitted and never writes to ``self``.
    """

    #: Registry name (``DETECTORS``) and the names of the fitted array attributes.
    name: ClassVar[str] = ""
    _state_attrs: ClassVar[tuple[str, ...]] = ()

    contamination: float

    def fit(self, X: Any, y: Any = None) -> BaseDetector:
        X = _check_X(X)
        if X.shape[0] < 2:
            raise ValueError("need at least 2 rows to fit")
        self._fit(X)
        self.n_features_in_ = X.shape[1]
        train_scores = self._score(X)
        self.threshold_ = float(np.quantile(train_scores, 1.0 - self.contamination))
        return self

    def decision_function(self, X: Any) -> np.ndarray:
        """Anomaly score per row; higher = more anomalous."""
        self._check_fitted()
        return self._score(_check_X(X, self.n_features_in_))

    def predict(self, X: Any) -> np.ndarray:
        """1 for rows scored above ``threshold_``, else 0."""
        return (self.decision_function(X) > self.threshold_).astype(np.int64)

    def _check_fitted(self) -> None:
        if not hasattr(self, "threshold_"):
            raise NotFittedError(f"{type(self).__name__} is not fitted; call fit first")

    # -- persistence: plain params + arrays, no pickle ---------------------------------
    def get_params(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self._param_names()}

    def set_params(self, **params: Any) -> BaseDetector:
        for key, value in params.items():
            if key not in self._param_names():
                raise ValueError(f"unknown parameter {key!r} for {type(self).__name__}")
            setattr(self, key, value)
        return self

    @classmethod
    def _param_names(cls) -> tuple[str, ...]:
        import inspect

        sig = inspect.signature(cls.__init__)
        return tuple(p for p in sig.parameters if p != "self")

    def get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """(JSON-able params and scalars, named arrays) describing the fitted model."""
        self._check_fitted()
        meta = {
            "params": self.get_params(),
            "threshold_": self.threshold_,
            "n_features_in_": self.n_features_in_,
        }
        return meta, {a: np.asarray(getattr(self, a)) for a in self._state_attrs}

    @classmethod
    def from_state(cls, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> BaseDetector:
        det = cls(**meta["params"])
        for attr in cls._state_attrs:
            if attr not in arrays:
                raise ConfigError(f"{cls.__name__} state lacks array {attr!r}")
            setattr(det, attr, arrays[attr])
        det.n_features_in_ = int(meta["n_features_in_"])
        det.threshold_ = float(meta["threshold_"])
        return det

    # -- to implement ------------------------------------------------------------------
    def _fit(self, X: np.ndarray) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _score(self, X: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError


#: up to this many cells, tails use the vectorised bisection instead of per-feature calls
_BISECT_CELLS = 2048


class EcdfTails:
    """Per-feature empirical tails of the training set, as ragged sorted arrays.

    For feature ``j`` keeps its sorted distinct training values and the count of
    training values ``<=`` each; the left and right tail probabilities of a new value
    (counting the value itself, as ECOD does for a batch of one) follow from two
    ``searchsorted`` calls. Marginal value counts only, never training rows.
    """

    def __init__(self, values: np.ndarray, cum_counts: np.ndarray, offsets: np.ndarray,
                 n_samples: int, skew_sign: np.ndarray) -> None:
        self.values = values
        self.cum_counts = cum_counts
        self.offsets = offsets
        self.n_samples = n_samples
        self.skew_sign = skew_sign

    @classmethod
    def fit(cls, X: np.ndarray, *, max_knots: int | None = None) -> EcdfTails:
        """Fit on ``X``; ``max_knots`` bounds the distinct values kept per feature.

        Beyond ``max_knots`` distinct values a feature keeps its ``max_knots // 8``
        smallest and largest values exactly (the tails, where outlyingness lives) and
        evenly spaced values in between; counts between two kept values then round
        down to the lower one, an error below ``n / max_knots`` rows in the middle of
        the distribution and none in the tails.
        """
        n, d = X.shape
        values, counts, offsets = [], [], [0]
        for j in range(d):
            uniq, cnt = np.unique(X[:, j], return_counts=True)
            cum = np.cumsum(cnt)
            if max_knots is not None and len(uniq) > max_knots:
                tail = max(max_knots // 8, 1)
                middle = np.linspace(tail, len(uniq) - tail - 1, max_knots - 2 * tail)
                keep = np.unique(np.concatenate([
                    np.arange(tail), middle.round().astype(np.int64),
                    np.arange(len(uniq) - tail, len(uniq))]))
                uniq, cum = uniq[keep], cum[keep]
            values.append(uniq)
            counts.append(cum)
            offsets.append(offsets[-1] + len(uniq))
        # skewness sign as scipy.stats.skew (biased) computes it; sign only matters
        centred = X - X.mean(axis=0)
        m3 = (centred**3).mean(axis=0)
        m2 = (centred**2).mean(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            skew = np.where(m2 > 0, m3 / np.power(m2, 1.5), 0.0)
        # scipy returns nan for constant columns -> sign 0 after nan_to_num in PyOD's max
        return cls(
            np.concatenate(values),
            np.concatenate(counts).astype(np.int64),
            np.asarray(offsets, dtype=np.int64),
            n,
            np.sign(np.nan_to_num(skew)),
        )

    def tails(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(U_l, U_r)``: ``-log`` of the left and right tail probabilities per cell."""
        n_rows, d = X.shape
        if n_rows * d <= _BISECT_CELLS:
            r = self._bisect_right(X)
        else:
            r = np.empty((n_rows, d), dtype=np.int64)
            for j in range(d):
                lo, hi = self.offsets[j], self.offsets[j + 1]
                r[:, j] = lo + np.searchsorted(self.values[lo:hi], X[:, j], side="right")
        start = self.offsets[:-1]
        # distinct values are unique per feature: "< x" is "<= x" minus an exact match
        exact = (r > start) & (self.values[np.maximum(r - 1, 0)] == X)
        left = r - exact
        n_le = np.where(r > start, self.cum_counts[np.maximum(r - 1, 0)], 0)
        n_lt = np.where(left > start, self.cum_counts[np.maximum(left - 1, 0)], 0)
        denom = self.n_samples + 1.0
        return (-np.log((n_le + 1.0) / denom),
                -np.log((self.n_samples - n_lt + 1.0) / denom))

    def _bisect_right(self, X: np.ndarray) -> np.ndarray:
        """Global index after the last value <= x, per cell, all features at once.

        A numpy bisection over every (row, feature) cell: ~log2(max values) vectorised
        steps instead of one ``searchsorted`` call per feature, which is what makes a
        single row cheap.
        """
        lo = np.broadcast_to(self.offsets[:-1], X.shape).copy()
        hi = np.broadcast_to(self.offsets[1:], X.shape).copy()
        last = self.values.shape[0] - 1
        steps = int(np.ceil(np.log2(max(int(np.diff(self.offsets).max()), 1) + 1))) + 1
        for _ in range(steps):
            active = lo < hi
            mid = (lo + hi) >> 1
            below = self.values[np.minimum(mid, last)] <= X
            lo = np.where(active & below, mid + 1, lo)
            hi = np.where(active & ~below, mid, hi)
        return lo

    def state(self, prefix: str) -> dict[str, np.ndarray]:
        return {
            f"{prefix}values": self.values,
            f"{prefix}cum_counts": self.cum_counts,
            f"{prefix}offsets": self.offsets,
            f"{prefix}n_samples": np.asarray(self.n_samples, dtype=np.int64),
            f"{prefix}skew_sign": self.skew_sign,
        }

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], prefix: str) -> EcdfTails:
        try:
            return cls(
                arrays[f"{prefix}values"],
                arrays[f"{prefix}cum_counts"],
                arrays[f"{prefix}offsets"],
                int(arrays[f"{prefix}n_samples"]),
                arrays[f"{prefix}skew_sign"],
            )
        except KeyError as exc:
            raise ConfigError(f"ECDF state lacks {exc}") from None


def aggregate_outlyingness(per_feature: np.ndarray, norm: float = 1.0) -> np.ndarray:
    """Row score from per-feature outlyingness: its L^p norm with ``p = norm``.

    ``norm=1`` is PyOD's sum (ECOD/COPOD as published: independent features' ``-log``
    tail probabilities add up). ``norm > 1`` weighs a row's most extreme features more
    than many mildly unusual ones (``norm=inf`` would be the single worst feature).
    Outlyingness is non-negative, so this is a monotone, scale-preserving aggregate.
    """
    if norm == 1.0:
        return per_feature.sum(axis=1)
    if not norm > 0:
        raise ConfigError(f"norm must be positive, got {norm}")
    return np.power(np.power(per_feature, norm).sum(axis=1), 1.0 / norm)


def ecod_outlyingness(u_l: np.ndarray, u_r: np.ndarray, skew_sign: np.ndarray) -> np.ndarray:
    """ECOD's per-feature outlyingness (PyOD's ``O``)."""
    u_skew = u_l * -1 * np.sign(skew_sign - 1) + u_r * np.sign(skew_sign + 1)
    return np.maximum(np.maximum(u_l, u_r), u_skew)


def copod_outlyingness(u_l: np.ndarray, u_r: np.ndarray, skew_sign: np.ndarray) -> np.ndarray:
    """COPOD's per-feature outlyingness (PyOD's ``O``)."""
    u_skew = u_l * -1 * np.sign(skew_sign - 1) + u_r * np.sign(skew_sign + 1)
    return np.maximum(u_skew, (u_l + u_r) / 2)


class _EcdfDetector(BaseDetector):
    _state_attrs = ("tails_values_", "tails_cum_counts_", "tails_offsets_",
                    "tails_n_samples_", "tails_skew_sign_")
    _combine: ClassVar[Any]

    def __init__(self, *, contamination: float = 0.1, max_samples: int | None = None,
                 norm: float = 1.0, random_state: int | None = None) -> None:
        self.contamination = contamination
        self.max_samples = max_samples
        self.norm = norm
        self.random_state = random_state

    def _fit(self, X: np.ndarray) -> None:
        if self.max_samples is not None and X.shape[0] > self.max_samples:
            # a marginal ECDF from a large random sample: tails beyond 1/max_samples merge
            rng = np.random.default_rng(self.random_state)
            X = X[rng.choice(X.shape[0], self.max_samples, replace=False)]
        t = EcdfTails.fit(X)
        self.tails_values_ = t.values
        self.tails_cum_counts_ = t.cum_counts
        self.tails_offsets_ = t.offsets
        self.tails_n_samples_ = np.asarray(t.n_samples, dtype=np.int64)
        self.tails_skew_sign_ = t.skew_sign

    def _tails(self) -> EcdfTails:
        return EcdfTails(self.tails_values_, self.tails_cum_counts_, self.tails_offsets_,
                         int(self.tails_n_samples_), self.tails_skew_sign_)

    def outlyingness(self, X: Any) -> np.ndarray:
        """Per-feature outlyingness, shape ``(n_rows, n_features)`` (rows sum to the score at ``norm=1``)."""
        self._check_fitted()
        X = _check_X(X, self.n_features_in_)
        t = self._tails()
        u_l, u_r = t.tails(X)
        return type(self)._combine(u_l, u_r, t.skew_sign)

    def _score(self, X: np.ndarray) -> np.ndarray:
        t = self._tails()
        u_l, u_r = t.tails(X)
        return aggregate_outlyingness(type(self)._combine(u_l, u_r, t.skew_sign), self.norm)


class ECOD(_EcdfDetector):
    """Empirical-CDF outlier detection (Li et al. 2022), PyOD's ECOD scores.

    Parameters
    ----------
    contamination : float, default 0.1
        Share of training rows above ``threshold_``.
    max_samples : int or None, default None
        Fit the marginal ECDFs on at most this many random rows (memory bound).
    norm : float, default 1.0
        Row score = L^p norm of the per-feature outlyingness (1 = PyOD's sum;
        see :func:`aggregate_outlyingness`).
    random_state : int or None
        Seed for that subsample.

    Attributes
    ----------
    threshold_ : float
        The ``1 - contamination`` quantile of the training scores.
    """

    name = "ecod"
    _combine = staticmethod(ecod_outlyingness)


class COPOD(_EcdfDetector):
    """Copula-based outlier detection (Li et al. 2020), PyOD's COPOD scores.

    Parameters
    ----------
    contamination : float, default 0.1
        Share of training rows above ``threshold_``.
    max_samples : int or None, default None
        Fit the marginal ECDFs on at most this many random rows.
    norm : float, default 1.0
        Row score = L^p norm of the per-feature outlyingness (1 = PyOD's sum).
    random_state : int or None
        Seed for that subsample.
    """

    name = "copod"
    _combine = staticmethod(copod_outlyingness)


class HBOS(BaseDetector):
    """Histogram-based outlier score, PyOD's HBOS with static bins.

    Parameters
    ----------
    n_bins : int, default 10
    alpha : float, default 0.1
        Regulariser added to each bin's density before the log.
    tol : float, default 0.5
        Values within ``tol`` bin widths outside the range use the edge bin.
    contamination : float, default 0.1
    """

    name = "hbos"
    _state_attrs = ("hist_", "bin_edges_")

    def __init__(self, *, n_bins: int = 10, alpha: float = 0.1, tol: float = 0.5,
                 contamination: float = 0.1) -> None:
        self.n_bins = n_bins
        self.alpha = alpha
        self.tol = tol
        self.contamination = contamination

    def _fit(self, X: np.ndarray) -> None:
        d = X.shape[1]
        hist = np.zeros((self.n_bins, d))
        edges = np.zeros((self.n_bins + 1, d))
        for j in range(d):
            hist[:, j], edges[:, j] = np.histogram(X[:, j], bins=self.n_bins, density=True)
        self.hist_ = hist
        self.bin_edges_ = edges

    def per_feature(self, X: np.ndarray) -> np.ndarray:
        """``-log2(density + alpha)`` per cell: per-feature contribution to the score."""
        n_bins = self.n_bins
        log_density = np.log2(self.hist_ + self.alpha)  # (n_bins, d)
        edges = self.bin_edges_  # (n_bins + 1, d)
        # np.digitize(right=True) == number of edges strictly below x
        idx = (edges[None, :, :] < X[:, None, :]).sum(axis=1)
        inner = log_density[np.clip(idx - 1, 0, n_bins - 1), np.arange(X.shape[1])]
        lowest = log_density.min(axis=0)
        width_lo = edges[1] - edges[0]
        width_hi = edges[-1] - edges[-2]
        low_val = np.where(edges[0] - X <= width_lo * self.tol, log_density[0], lowest)
        high_val = np.where(X - edges[-1] <= width_hi * self.tol, log_density[n_bins - 1], lowest)
        out = np.where(idx == 0, low_val, np.where(idx == n_bins + 1, high_val, inner))
        return -out

    def _score(self, X: np.ndarray) -> np.ndarray:
        return self.per_feature(X).sum(axis=1)


_IFOREST_CHUNK = 4096


class IForest(BaseDetector):
    """Isolation forest with trees flattened into arrays, PyOD's IForest scores.

    Fitting delegates to scikit-learn's ``IsolationForest``; then every tree's nodes are
    copied into one set of arrays (feature, threshold, children, path value) and the
    estimator is dropped. Scoring walks all trees at once, one vectorised step per
    depth level, so a single row costs a few dozen numpy calls however many trees.

    Parameters
    ----------
    n_estimators : int, default 100
    max_samples : int, float or "auto", default "auto"
    max_features : float, default 1.0
    contamination : float, default 0.1
    random_state : int or None
    """

    name = "iforest"
    _state_attrs = ("feature_", "threshold_nodes_", "first_child_", "value_", "roots_",
                    "depth_", "denominator_", "offset_")

    def __init__(self, *, n_estimators: int = 100, max_samples: int | float | str = "auto",
                 max_features: float = 1.0, contamination: float = 0.1,
                 random_state: int | None = None) -> None:
        self.n_estimators = n_estimators
        self.max_samples = max_samples
        self.max_features = max_features
        self.contamination = contamination
        self.random_state = random_state

    def _fit(self, X: np.ndarray) -> None:
        from sklearn.ensemble import IsolationForest
        from sklearn.ensemble._iforest import _average_path_length

        forest = IsolationForest(
            n_estimators=self.n_estimators, max_samples=self.max_samples,
            max_features=self.max_features, contamination=self.contamination,
            random_state=self.random_state,
        ).fit(X)
        feats, thrs, firsts, values, roots = [], [], [], [], []
        offset = 0
        max_depth = 0
        for tree, features, path_len, avg_len in zip(
            forest.estimators_, forest.estimators_features_,
            forest._decision_path_lengths, forest._average_path_length_per_tree,
            strict=True,
        ):
            t = tree.tree_
            # renumber breadth-first with siblings side by side, so one step of the walk
            # is ``first_child[node] + (x > threshold[node])``: no branch, fewer gathers
            order = [0]
            new_id = {0: 0}
            for node in order:
                if t.children_left[node] >= 0:
                    for child in (t.children_left[node], t.children_right[node]):
                        new_id[int(child)] = len(order)
                        order.append(int(child))
            old = np.asarray(order)
            is_leaf = t.children_left[old] < 0
            first = np.array([new_id[int(t.children_left[o])] if t.children_left[o] >= 0
                              else i for i, o in enumerate(order)])
            feats.append(np.where(is_leaf, 0, np.asarray(features)[np.maximum(t.feature[old], 0)]))
            # a leaf compares against +inf: "x > inf" is never true, the walk stays put
            thrs.append(np.where(is_leaf, np.inf, t.threshold[old]))
            firsts.append(first + offset)
            values.append((np.asarray(path_len, dtype=np.float64) + avg_len - 1.0)[old])
            roots.append(offset)
            offset += len(order)
            max_depth = max(max_depth, int(t.max_depth))
        self.feature_ = np.concatenate(feats).astype(np.intp)
        self.threshold_nodes_ = np.concatenate(thrs).astype(np.float64)
        self.first_child_ = np.concatenate(firsts).astype(np.intp)
        self.value_ = np.concatenate(values)
        self.roots_ = np.asarray(roots, dtype=np.intp)
        self.depth_ = np.asarray(max_depth, dtype=np.int64)
        n_trees = len(forest.estimators_)
        self.denominator_ = np.asarray(
            n_trees * float(_average_path_length([forest._max_samples])[0]))
        self.offset_ = np.asarray(float(forest.offset_))

    def _score(self, X: np.ndarray) -> np.ndarray:
        # walk in chunks: the node-index matrix is (rows x trees)
        if X.shape[0] > _IFOREST_CHUNK:
            return np.concatenate([
                self._score(X[i:i + _IFOREST_CHUNK])
                for i in range(0, X.shape[0], _IFOREST_CHUNK)
            ])
        # scikit-learn's trees compare float32 inputs with float64 thresholds
        X32 = X.astype(np.float32).astype(np.float64)
        n, d = X32.shape
        idx = np.broadcast_to(self.roots_, (n, self.roots_.shape[0])).copy()
        flat = X32.ravel()
        row_base = (np.arange(n) * d)[:, None]
        for _ in range(int(self.depth_)):
            x = flat[row_base + self.feature_[idx]]
            idx = self.first_child_[idx] + (x > self.threshold_nodes_[idx])
        depths = self.value_[idx].sum(axis=1)
        denom = float(self.denominator_)
        scores = 2.0 ** (-(depths / denom)) if denom != 0 else np.ones(n)
        # PyOD: -(score_samples - offset_), with score_samples = -2 ** (-depth / c)
        return scores + float(self.offset_)


#: name -> class, for the ensemble and persistence.
DETECTORS: dict[str, type[BaseDetector]] = {
    cls.name: cls for cls in (ECOD, COPOD, HBOS, IForest)
}
