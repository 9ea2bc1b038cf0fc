"""Drift: population stability (PSI) of recent traffic against the training window.

A :class:`ReferenceProfile` holds, per monitored column (the risk score and the top
features), quantile bin edges and the share of training rows in each bin plus a
"missing" bin. It is fitted where the training matrix is at hand (when a model is
trained) and stored next to the model as plain JSON. A :class:`DriftMonitor` keeps a
rolling window of the most recent orders, binned with the same edges, and every
``every`` orders sets ``riskwire_drift_psi{feature}``:

    PSI = sum_b (actual_b - expected_b) * ln(actual_b / expected_b)

Rule of thumb (Siddiqi, *Credit Risk Scorecards*): < 0.1 stable, 0.1-0.25 a shift worth a
look, > 0.25 a shift that invalidates the model's calibration. Shares are floored at
``EPS`` so an empty bin does not make PSI infinite.

Without a stored reference the monitor can freeze its first full window as the
reference (``warmup=True``): drift against the start of the process, not against
training; the wiring should prefer a stored profile.
"""

from __future__ import annotations

import contextlib
import json
import math
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from contracts import ConfigError

if TYPE_CHECKING:
    from contracts import Decision
    from contracts.frame import FeatureFrame
    from detector.metrics import Metrics

__all__ = [
    "DRIFT_METADATA_KEY",
    "EPS",
    "SCORE",
    "ColumnReference",
    "DriftMonitor",
    "ReferenceProfile",
    "attach_drift_monitor",
    "profile_for_training",
    "psi",
    "reference_from_model",
]

#: Floor for bin shares: keeps PSI finite when a bin is empty on one side.
EPS = 1e-4
#: The column name under which the risk score is monitored.
SCORE = "score"
PROFILE_VERSION = 1
#: Key of the profile in a model registry version's metadata (manifest ``extra``).
DRIFT_METADATA_KEY = "drift_reference"


def psi(expected: Sequence[float] | np.ndarray, actual: Sequence[float] | np.ndarray) -> float:
    """Population stability index of two share vectors over the same bins."""
    e = np.clip(np.asarray(expected, dtype=np.float64), EPS, None)
    a = np.clip(np.asarray(actual, dtype=np.float64), EPS, None)
    e, a = e / e.sum(), a / a.sum()
    return float(np.sum((a - e) * np.log(a / e)))


@dataclass(frozen=True)
class ColumnReference:
    """Bins of one column: ``edges`` cut the real line (bin i is ``edges[i-1] <= x < edges[i]``);
    ``shares`` has ``len(edges) + 2`` entries, the last one for missing values."""

    name: str
    edges: tuple[float, ...]
    shares: tuple[float, ...]

    @classmethod
    def fit(cls, name: str, values: np.ndarray, *, bins: int = 10) -> ColumnReference:
        v = np.asarray(values, dtype=np.float64)
        finite = v[np.isfinite(v)]
        if finite.size:
            qs = np.quantile(finite, np.linspace(0.0, 1.0, bins + 1)[1:-1])
            # Ties (a count that is 0 for most orders) collapse into one bin.
            edges = tuple(float(x) for x in np.unique(qs))
        else:
            edges = ()
        ref = cls(name=name, edges=edges, shares=())
        counts = ref.bin_counts(v)
        return cls(name=name, edges=edges, shares=tuple(float(c) for c in counts / max(v.size, 1)))

    @property
    def n_bins(self) -> int:
        return len(self.edges) + 2

    def bin_index(self, values: np.ndarray) -> np.ndarray:
        """Bin of each value; NaN and infinities go to the last (missing) bin."""
        v = np.asarray(values, dtype=np.float64)
        idx = np.searchsorted(np.asarray(self.edges, dtype=np.float64), v, side="right")
        idx[~np.isfinite(v)] = self.n_bins - 1
        return idx.astype(np.int64)

    def bin_counts(self, values: np.ndarray) -> np.ndarray:
        return np.bincount(self.bin_index(values), minlength=self.n_bins).astype(np.float64)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "edges": list(self.edges), "shares": list(self.shares)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ColumnReference:
        ref = cls(
            name=str(data["name"]),
            edges=tuple(float(x) for x in data["edges"]),
            shares=tuple(float(x) for x in data["shares"]),
        )
        if len(ref.shares) != ref.n_bins or any(b <= a for a, b in zip(ref.edges, ref.edges[1:], strict=False)):
            raise ConfigError(f"drift reference for {ref.name!r} is malformed")
        return ref


@dataclass(frozen=True)
class ReferenceProfile:
    """Training-window distributions of the score and the monitored features."""

    columns: Mapping[str, ColumnReference]
    source: str = "training"
    rows: int = 0

    @classmethod
    def fit(
        cls,
        X: np.ndarray,
        feature_names: Sequence[str],
        *,
        scores: np.ndarray | None = None,
        features: Sequence[str] | None = None,
        max_features: int = 12,
        bins: int = 10,
        source: str = "training",
    ) -> ReferenceProfile:
        """Profile the training matrix ``X`` (rows x ``feature_names``) and its risk scores.

        ``features`` names the columns to monitor (the model's most important ones);
        without it, the first ``max_features`` columns that are not constant.
        """
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != len(feature_names):
            raise ConfigError(f"X has shape {X.shape}, expected (n, {len(feature_names)})")
        index = {n: j for j, n in enumerate(feature_names)}
        if features is not None:
            unknown = [f for f in features if f not in index]
            if unknown:
                raise ConfigError(f"unknown drift features: {unknown}")
            chosen = list(features)
        else:
            chosen = []
            for name in feature_names:
                col = X[:, index[name]]
                finite = col[np.isfinite(col)]
                if finite.size and np.ptp(finite) > 0:
                    chosen.append(name)
                if len(chosen) >= max_features:
                    break
        columns = {name: ColumnReference.fit(name, X[:, index[name]], bins=bins) for name in chosen}
        if scores is not None:
            columns[SCORE] = ColumnReference.fit(SCORE, np.asarray(scores, dtype=np.float64), bins=bins)
        return cls(columns=columns, source=source, rows=int(X.shape[0]))

    def to_dict(self) -> dict[str, Any]:
        return {
            "profile_version": PROFILE_VERSION,
            "source": self.source,
            "rows": self.rows,
            "columns": [c.to_dict() for c in self.columns.values()],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ReferenceProfile:
        if data.get("profile_version") != PROFILE_VERSION:
            raise ConfigError(f"unsupported drift profile version {data.get('profile_version')!r}")
        cols = [ColumnReference.from_dict(c) for c in data.get("columns", [])]
        return cls(columns={c.name: c for c in cols}, source=str(data.get("source", "training")),
                   rows=int(data.get("rows", 0)))

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_dict(), indent=1, sort_keys=True))

    @classmethod
    def load(cls, path: Path) -> ReferenceProfile:
        try:
            return cls.from_dict(json.loads(path.read_text()))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"cannot read drift profile {path}: {exc}") from exc


class _Window:
    """Ring buffer of bin indices with running counts: O(batch) per update."""

    def __init__(self, ref: ColumnReference, size: int) -> None:
        self.ref = ref
        self.buf = np.zeros(size, dtype=np.int64)
        self.counts = np.zeros(ref.n_bins, dtype=np.int64)
        self.pos = 0
        self.filled = 0

    def add(self, values: np.ndarray) -> None:
        idx = self.ref.bin_index(values)
        size = self.buf.size
        if idx.size >= size:
            idx = idx[-size:]
            self.buf[:] = idx
            self.counts = np.bincount(idx, minlength=self.ref.n_bins)
            self.pos, self.filled = 0, size
            return
        slots = (self.pos + np.arange(idx.size)) % size
        # Until the buffer is full it fills from slot 0, so a slot is occupied iff below ``filled``.
        occupied = slots < self.filled if self.filled < size else np.ones(slots.size, dtype=bool)
        np.subtract.at(self.counts, self.buf[slots[occupied]], 1)
        self.buf[slots] = idx
        np.add.at(self.counts, idx, 1)
        self.pos = int((self.pos + idx.size) % size)
        self.filled = min(self.filled + idx.size, size)

    def psi(self) -> float:
        return psi(self.ref.shares, self.counts / max(self.filled, 1))

    def values(self) -> np.ndarray:
        """Bin indices in the window (for freezing a warm-up reference)."""
        return self.buf[: self.filled] if self.filled < self.buf.size else self.buf


class DriftMonitor:
    """Rolling-window PSI per monitored column; call it with every decided batch.

    Safe to share between threads (the API scores in a thread pool).
    """

    def __init__(
        self,
        *,
        metrics: Metrics,
        reference: ReferenceProfile | None,
        window: int = 5000,
        min_samples: int = 300,
        every: int = 100,
        warmup_features: Sequence[str] = (),
    ) -> None:
        if window < 10 or min_samples < 1 or every < 1:
            raise ConfigError("drift window >= 10, min_samples >= 1 and every >= 1 are required")
        self._metrics = metrics
        self._window = window
        self._min = min(min_samples, window)
        self._every = every
        self._lock = threading.Lock()
        self._since = 0
        self._seen = 0
        self.reference = reference
        # Warm-up: collect raw values until one window is full, then freeze it as the reference.
        self._warm: dict[str, list[float]] | None = None
        if reference is None:
            self._warm = {SCORE: [], **{f: [] for f in warmup_features}}
            self._windows: dict[str, _Window] = {}
        else:
            self._windows = {name: _Window(ref, window) for name, ref in reference.columns.items()}

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(self._windows) if self._warm is None else tuple(self._warm)

    def __call__(self, decisions: Sequence[Decision], frame: FeatureFrame | None) -> None:
        scores = [float(d.score) for d in decisions]
        if frame is not None:
            # The reference is the model's risk on the training window; the decision score
            # can be moved by rules and text, so the model's own score wins where there is one.
            model = frame.numbers(["model_score"])[:, 0]
            scores = np.where(np.isnan(model), scores, model).tolist()
        self.observe(scores=scores, frame=frame)

    def observe(self, *, scores: Sequence[float], frame: FeatureFrame | None = None) -> None:
        """Add one batch: ``scores`` (0-100) and optionally its features, aligned."""
        if not scores:
            return
        columns = {SCORE: np.asarray(scores, dtype=np.float64)}
        names = [name for name in self.columns if name != SCORE]
        if frame is not None and names:
            values = frame.numbers(names)
            columns.update({name: values[:, k] for k, name in enumerate(names)})
        with self._lock:
            self._seen += len(scores)
            if self._warm is not None:
                for name, values in columns.items():
                    self._warm[name].extend(values.tolist())
                if self._seen >= self._window:
                    self._freeze_warmup()
                return
            for name, values in columns.items():
                w = self._windows.get(name)
                if w is not None:
                    w.add(values)
            self._since += len(scores)
            if self._since >= self._every:
                self._since = 0
                self._publish()

    def set_reference(self, reference: ReferenceProfile | None) -> None:
        """Swap the reference (a new model went live): windows restart, stale gauges are dropped."""
        with self._lock:
            for name in self._windows:
                with contextlib.suppress(KeyError):  # never published: nothing to drop
                    self._metrics.drift_psi.remove(name)
            self.reference = reference
            self._since = self._seen = 0
            if reference is None:
                self._warm = {SCORE: []}
                self._windows = {}
            else:
                self._warm = None
                self._windows = {n: _Window(ref, self._window) for n, ref in reference.columns.items()}

    def psi(self) -> dict[str, float]:
        """Current PSI per column that has at least ``min_samples`` values in its window."""
        with self._lock:
            return {n: w.psi() for n, w in self._windows.items() if w.filled >= self._min}

    def publish(self) -> dict[str, float]:
        """Set the gauges now (they are also set every ``every`` orders)."""
        with self._lock:
            return self._publish()

    def _publish(self) -> dict[str, float]:
        out = {n: w.psi() for n, w in self._windows.items() if w.filled >= self._min}
        for name, value in out.items():
            self._metrics.drift_psi.labels(feature=name).set(round(value, 6) if math.isfinite(value) else 0.0)
        if self._windows:
            self._metrics.drift_samples.set(max(w.filled for w in self._windows.values()))
        return out

    def _freeze_warmup(self) -> None:
        if self._warm is None:
            return
        cols = {n: ColumnReference.fit(n, np.asarray(v, dtype=np.float64)) for n, v in self._warm.items() if v}
        self.reference = ReferenceProfile(columns=cols, source="warmup", rows=self._seen)
        self._windows = {n: _Window(ref, self._window) for n, ref in cols.items()}
        for n, v in self._warm.items():
            if n in self._windows:
                self._windows[n].add(np.asarray(v[-self._window:], dtype=np.float64))
        self._warm = None
        self._since = 0
        self._publish()


def profile_for_training(
    X: np.ndarray,
    feature_names: Sequence[str],
    *,
    model: Any,
    max_features: int = 10,
    sample: int = 5000,
    random_state: int = 0,
) -> ReferenceProfile:
    """The training window's profile for ``model``: its risk scores and its top features.

    "Top" = largest mean absolute contribution in the model's own explanations over a
    sample of the training rows, so it works for the unsupervised ensemble and LightGBM
    alike. Store ``profile.to_dict()`` under :data:`DRIFT_METADATA_KEY` in the registry
    version's metadata; :func:`reference_from_model` reads it back.
    """
    X = np.asarray(X, dtype=np.float64)
    rng = np.random.default_rng(random_state)
    rows = rng.choice(X.shape[0], size=min(sample, X.shape[0]), replace=False) if X.shape[0] else np.arange(0)
    Xs = X[np.sort(rows)]
    scored = model.score(Xs, explain=max(max_features, 5))
    weight: dict[str, float] = {}
    for row in scored.contributions:
        for name, c in row:
            weight[name] = weight.get(name, 0.0) + abs(float(c))
    index = set(feature_names)
    ranked = [n for n, _ in sorted(weight.items(), key=lambda kv: (-kv[1], kv[0])) if n in index]
    top = ranked[:max_features]
    profile = ReferenceProfile.fit(X, feature_names, features=top or None, max_features=max_features)
    score_ref = ColumnReference.fit(SCORE, np.asarray(scored.risk, dtype=np.float64))
    return ReferenceProfile(columns={**profile.columns, SCORE: score_ref}, source="training", rows=int(X.shape[0]))


def reference_from_model(model: Any) -> ReferenceProfile | None:
    """The drift reference a loaded model carries, or what its kind implies.

    A registry version saved with a profile in its metadata gives that profile. An
    unsupervised bundle without one still defines its score's training distribution:
    its risk is 100 x the empirical quantile within the training traffic, i.e. uniform
    on 0-100, so the score (only) is monitored against deciles. Otherwise None.
    """
    meta = getattr(model, "metadata", None) or {}
    extra = meta.get("extra") or {}
    stored = extra.get(DRIFT_METADATA_KEY) if isinstance(extra, Mapping) else None
    if isinstance(stored, Mapping):
        return ReferenceProfile.from_dict(stored)
    if getattr(model, "kind", None) == "unsupervised":
        edges = tuple(float(x) for x in range(10, 100, 10))
        shares = (*([0.1] * 10), 0.0)
        return ReferenceProfile(columns={SCORE: ColumnReference(name=SCORE, edges=edges, shares=shares)},
                                source="uniform-quantiles")
    return None


def attach_drift_monitor(
    metrics: Metrics,
    *,
    reference: ReferenceProfile | None,
    window: int = 5000,
    min_samples: int = 300,
    every: int = 100,
) -> DriftMonitor:
    """Build a monitor and have ``metrics.observe_decisions`` feed it every batch."""
    monitor = DriftMonitor(metrics=metrics, reference=reference, window=window,
                           min_samples=min_samples, every=every)
    metrics.add_decision_observer(monitor)
    return monitor
