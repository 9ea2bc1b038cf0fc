"""Tiny synthetic data for the model tests (fast: hundreds of rows)."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture
def blob() -> np.ndarray:
    """300 rows, 5 features: skewed, symmetric and discrete columns."""
    rng = np.random.default_rng(7)
    return np.c_[
        rng.lognormal(size=(300, 2)),
        rng.normal(size=(300, 2)),
        rng.integers(0, 4, size=(300, 1)).astype(float),
    ]


@pytest.fixture
def labelled() -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """2,000 time-ordered rows whose label depends on two features (with NaNs)."""
    rng = np.random.default_rng(11)
    n = 2000
    X = rng.normal(size=(n, 6))
    logit = 2.5 * X[:, 0] + 1.5 * (X[:, 3] > 1) - 4.5
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(float)
    X[rng.random((n, 6)) < 0.05] = np.nan
    times = np.arange(n).astype("datetime64[s]")
    return X, y, times, [f"f{i}" for i in range(6)]
