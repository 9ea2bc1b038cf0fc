"""Score -> probability maps, stored as plain arrays.

- :class:`IsotonicCalibrator`: isotonic regression of labels on a raw score, fitted on a
  time-ordered validation fold; applied by linear interpolation between its knots.
- :class:`PlattCalibrator`: logistic regression on the raw score (the default: strictly
  monotone, so calibration never changes the ranking).

Both are monotone non-decreasing: a riskier raw score never gets a lower probability.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from contracts.errors import ConfigError

__all__ = ["Calibrator", "IsotonicCalibrator", "PlattCalibrator", "fit_calibrator"]


class Calibrator:
    kind: str = ""

    def predict(self, raw: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:  # pragma: no cover
        raise NotImplementedError

    @staticmethod
    def from_state(meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> Calibrator:
        kind = meta.get("kind")
        if kind == "isotonic":
            return IsotonicCalibrator(arrays["calib.x"], arrays["calib.y"])
        if kind == "platt":
            return PlattCalibrator(float(meta["a"]), float(meta["b"]))
        raise ConfigError(f"unknown calibrator kind {kind!r}")


class IsotonicCalibrator(Calibrator):
    """Piecewise-linear monotone map through isotonic knots ``(x_, y_)``."""

    kind = "isotonic"

    def __init__(self, x: np.ndarray, y: np.ndarray) -> None:
        self.x_ = np.asarray(x, dtype=np.float64)
        self.y_ = np.asarray(y, dtype=np.float64)

    @classmethod
    def fit(cls, raw: np.ndarray, y: np.ndarray) -> IsotonicCalibrator:
        from sklearn.isotonic import IsotonicRegression

        iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(raw, y)
        return cls(iso.X_thresholds_, iso.y_thresholds_)

    def predict(self, raw: np.ndarray) -> np.ndarray:
        return np.interp(raw, self.x_, self.y_)

    def get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        return {"kind": self.kind}, {"calib.x": self.x_, "calib.y": self.y_}


class PlattCalibrator(Calibrator):
    """``p = 1 / (1 + exp(-(a * raw + b)))``."""

    kind = "platt"

    def __init__(self, a: float, b: float) -> None:
        self.a = a
        self.b = b

    @classmethod
    def fit(cls, raw: np.ndarray, y: np.ndarray) -> PlattCalibrator:
        from sklearn.linear_model import LogisticRegression

        lr = LogisticRegression(C=1e4).fit(raw.reshape(-1, 1), y)
        return cls(max(float(lr.coef_[0, 0]), 0.0), float(lr.intercept_[0]))

    def predict(self, raw: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-(self.a * np.asarray(raw, dtype=np.float64) + self.b)))

    def get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        return {"kind": self.kind, "a": self.a, "b": self.b}, {}


def fit_calibrator(raw: np.ndarray, y: np.ndarray, *, method: str = "platt",
                   min_positives_isotonic: int = 50) -> Calibrator:
    """Fit ``method`` ("platt", "isotonic", or "auto": isotonic with enough positives).

    Platt is the default: strictly increasing, so the calibrated risk ranks orders
    exactly as the model does (isotonic's flat steps create ties among the riskiest
    orders, which costs precision at the top of the review queue).
    """
    raw = np.asarray(raw, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if method == "platt":
        return PlattCalibrator.fit(raw, y)
    if method == "isotonic" or (method == "auto" and int(y.sum()) >= min_positives_isotonic):
        return IsotonicCalibrator.fit(raw, y)
    if method == "auto":
        return PlattCalibrator.fit(raw, y)
    raise ConfigError(f"unknown calibration method {method!r}")
