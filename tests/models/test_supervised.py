"""LightGBM training, the flattened fast path, and calibration."""

from __future__ import annotations

import numpy as np
import pytest

from contracts import ConfigError
from models.calibration import IsotonicCalibrator, PlattCalibrator, fit_calibrator
from models.supervised import FlatForest, fit_lightgbm


@pytest.fixture(scope="module")
def fitted(request):
    rng = np.random.default_rng(11)
    n = 2000
    X = rng.normal(size=(n, 6))
    y = (rng.random(n) < 1 / (1 + np.exp(-(2.5 * X[:, 0] + 1.5 * (X[:, 3] > 1) - 4.5)))).astype(float)
    X[rng.random((n, 6)) < 0.05] = np.nan
    X[:, 5] = np.where(rng.random(n) < 0.3, 0.0, X[:, 5])  # zeros: LightGBM's zero rule
    fit = fit_lightgbm(X, y, times=np.arange(n), params={"num_leaves": 7, "learning_rate": 0.2},
                       num_boost_round=60, early_stopping_rounds=10)
    return X, y, fit


def test_flat_forest_equals_lightgbm_including_missing_values(fitted):
    import lightgbm as lgb

    X, _, fit = fitted
    T = X[:300].copy()
    T[::7, 0] = np.nan
    T[::5, 5] = 0.0
    expected = lgb.Booster(model_str=fit.forest.model_text).predict(T, raw_score=True)
    raw, _ = fit.forest.raw_and_contrib(T)
    np.testing.assert_allclose(raw, expected, atol=1e-9)


def test_path_contributions_sum_to_the_raw_score(fitted):
    X, _, fit = fitted
    raw, contrib = fit.forest.raw_and_contrib(X[:100])
    assert contrib.shape == (100, X.shape[1])
    np.testing.assert_allclose(contrib.sum(axis=1) + fit.forest.base_value, raw, atol=1e-9)
    # the informative feature carries the most weight; exact SHAP agrees on that
    assert np.abs(contrib).mean(axis=0).argmax() == 0
    assert np.abs(fit.forest.shap(X[:100])).mean(axis=0).argmax() == 0


def test_model_text_round_trips(fitted):
    X, _, fit = fitted
    clone = FlatForest.from_model_text(fit.forest.model_text)
    np.testing.assert_array_equal(clone.raw_and_contrib(X[:50])[0], fit.forest.raw_and_contrib(X[:50])[0])


def test_validation_is_the_latest_rows_and_metrics_are_reported(fitted):
    _, _y, fit = fitted
    assert fit.metrics["valid_rows"] == 400
    assert fit.metrics["train_rows"] == 1600
    assert fit.metrics["valid_auc"] > 0.75
    assert 1 <= fit.best_iteration <= 60


def _nearest_split_to(cut: float, x: np.ndarray, forest: FlatForest, feature: int) -> int:
    """Training rows between ``cut`` and the closest split threshold on ``feature``."""
    splits = forest.threshold[(forest.feature == feature) & (forest.left != np.arange(len(forest.left)))]
    xs = np.sort(x)
    return int(np.abs(np.searchsorted(xs, splits) - np.searchsorted(xs, cut)).min())


@pytest.mark.parametrize("max_bin", [None, 255])
def test_default_bins_resolve_a_cut_deep_in_a_tail(max_bin):
    # the handbook's first scenario: every amount above a high cut is fraud (0.3% here)
    rng = np.random.default_rng(0)
    n = 20_000
    X = np.column_stack([rng.lognormal(3.5, 0.6, n), rng.normal(size=n)])
    cut = float(np.quantile(X[:, 0], 0.997))
    y = (X[:, 0] > cut).astype(float)
    fit = fit_lightgbm(X, y, times=np.arange(n), params=None if max_bin is None else {"max_bin": max_bin},
                       num_boost_round=100, early_stopping_rounds=20)
    gap = _nearest_split_to(cut, X[:, 0], fit.forest, 0)
    if max_bin is None:
        assert gap <= n * 0.0005  # within 0.05% of the rows of the cut
    else:
        assert gap > n * 0.0005  # LightGBM's 255 default bins (~0.4% each) cannot


def test_time_order_not_input_order_defines_validation():
    rng = np.random.default_rng(0)
    n = 1000
    X = rng.normal(size=(n, 3))
    y = (X[:, 0] > 1.2).astype(float)
    times = rng.permutation(n)
    fit = fit_lightgbm(X, y, times=times, num_boost_round=5, early_stopping_rounds=2, refit=False)
    late = times >= np.sort(times)[-200]
    assert fit.metrics["valid_positives"] == y[late].sum()


def test_needs_positives_in_both_folds():
    X = np.random.default_rng(0).normal(size=(100, 2))
    y = np.zeros(100)
    y[:5] = 1  # only in the earliest rows: validation has none
    with pytest.raises(ConfigError):
        fit_lightgbm(X, y, times=np.arange(100))


@pytest.mark.parametrize("method", ["platt", "isotonic"])
def test_calibrators_are_monotone_probabilities(method):
    rng = np.random.default_rng(2)
    raw = rng.normal(size=3000)
    y = (rng.random(3000) < 1 / (1 + np.exp(-(2 * raw - 3)))).astype(float)
    cal = fit_calibrator(raw, y, method=method)
    grid = np.linspace(-4, 4, 200)
    p = cal.predict(grid)
    assert np.all(np.diff(p) >= 0)
    assert np.all((p >= 0) & (p <= 1))
    # calibrated: mean predicted probability ~ observed rate
    assert abs(cal.predict(raw).mean() - y.mean()) < 0.02
    meta, arrays = cal.get_state()
    clone = type(cal).from_state(meta, arrays)
    np.testing.assert_array_equal(clone.predict(grid), p)
    assert isinstance(cal, PlattCalibrator if method == "platt" else IsotonicCalibrator)
