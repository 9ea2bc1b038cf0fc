"""The fast detectors give PyOD's own scores; both ECDF paths agree."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from models import COPOD, ECOD, HBOS, IForest
from models.detectors import EcdfTails


@pytest.fixture
def skewed() -> tuple[np.ndarray, np.ndarray]:
    # clearly skewed columns: PyOD takes the skew sign on train + scored rows, we on
    # train alone; with strong skew both signs agree and scores must match exactly
    rng = np.random.default_rng(3)
    X = np.c_[rng.lognormal(size=(250, 2)), -rng.lognormal(size=(250, 2)),
              rng.exponential(size=(250, 1)), rng.integers(0, 3, (250, 1)) ** 3]
    T = np.r_[rng.normal(size=(12, 6)) * 3, X[:6], X.max(axis=0)[None, :] * 2]
    return X, T


@pytest.mark.parametrize(("ours", "theirs"), [(ECOD, "ecod.ECOD"), (COPOD, "copod.COPOD")])
def test_ecdf_detectors_equal_pyod_row_by_row(ours, theirs, skewed):
    import importlib

    module, cls = theirs.split(".")
    pyod_cls = getattr(importlib.import_module(f"pyod.models.{module}"), cls)
    X, T = skewed
    reference = pyod_cls().fit(X)
    # PyOD scores a batch against train + batch, so compare rows scored one at a time
    # (on copies: PyOD's scoring writes to the model)
    expected = np.array([copy.deepcopy(reference).decision_function(T[i:i + 1])[0]
                         for i in range(len(T))])
    np.testing.assert_allclose(ours().fit(X).decision_function(T), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(("ours", "theirs"), [(ECOD, "ecod.ECOD"), (COPOD, "copod.COPOD")])
@pytest.mark.parametrize("norm", [1.5, 2.0])
def test_ecdf_detectors_norm_is_lp_of_pyods_outlyingness(ours, theirs, norm, skewed):
    import importlib

    module, cls = theirs.split(".")
    reference = getattr(importlib.import_module(f"pyod.models.{module}"), cls)().fit(skewed[0])
    X, T = skewed
    expected = []
    for i in range(len(T)):
        model = copy.deepcopy(reference)
        model.decision_function(T[i:i + 1])
        # PyOD keeps the batch's per-feature outlyingness in ``O`` (train rows + the row)
        expected.append(float((model.O[-1] ** norm).sum() ** (1.0 / norm)))
    got = ours(norm=norm).fit(X).decision_function(T)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)
    # not the sum: the norm changes the ranking, not just the scale
    assert not np.allclose(got, ours().fit(X).decision_function(T))


def test_hbos_equals_pyod(skewed):
    # PyOD's own scoring routine, run as plain Python (``py_func``): the same code
    # without numba's compile, which costs ~10-50 s on a busy machine
    from pyod.models.hbos import _calculate_outlier_scores

    X, T = skewed
    ours = HBOS(n_bins=10).fit(X)
    for j in range(X.shape[1]):
        hist, edges = np.histogram(X[:, j], bins=10, density=True)
        np.testing.assert_array_equal(ours.hist_[:, j], hist)
        np.testing.assert_array_equal(ours.bin_edges_[:, j], edges)
    T = np.r_[T, X.min(axis=0)[None, :] - 0.01, X.max(axis=0)[None, :] + 0.01]
    per_cell = _calculate_outlier_scores.py_func(T, ours.bin_edges_, ours.hist_, 10, 0.1, 0.5)
    np.testing.assert_allclose(ours.decision_function(T), -per_cell.sum(axis=1), rtol=1e-12)


def test_iforest_equals_pyod(skewed):
    from pyod.models.iforest import IForest as PyodIForest

    X, T = skewed
    ours = IForest(n_estimators=40, random_state=5).fit(X)
    theirs = PyodIForest(n_estimators=40, random_state=5).fit(X)
    np.testing.assert_allclose(ours.decision_function(T), theirs.decision_function(T), atol=1e-12)
    np.testing.assert_allclose(ours.decision_function(X), theirs.decision_function(X), atol=1e-12)


def test_iforest_chunked_batches_equal_single_rows(skewed):
    X, _ = skewed
    model = IForest(n_estimators=20, random_state=1).fit(X)
    big = np.tile(X, (20, 1))  # 5,000 rows: more than one chunk
    batch = model.decision_function(big)
    singles = np.array([model.decision_function(big[i:i + 1])[0] for i in range(0, 5000, 499)])
    np.testing.assert_allclose(batch[::499], singles, atol=1e-15)


def test_ecdf_bisection_equals_searchsorted(skewed):
    X, T = skewed
    tails = EcdfTails.fit(X)
    small = tails.tails(T[:3])  # few cells: vectorised bisection
    big = tails.tails(np.tile(T, (200, 1)))  # many cells: per-feature searchsorted
    for a, b in zip(small, big, strict=True):
        np.testing.assert_array_equal(a, b[:3])
    # brute force: counts of training values <= x and >= x (ties on both sides)
    n_le = (X[None, :, :] <= T[:, None, :]).sum(axis=1)
    n_ge = (X[None, :, :] >= T[:, None, :]).sum(axis=1)
    np.testing.assert_allclose(small[0], -np.log((n_le[:3] + 1) / (len(X) + 1)))
    np.testing.assert_allclose(big[1][: len(T)], -np.log((n_ge + 1) / (len(X) + 1)))


@pytest.mark.parametrize(("member", "cls"), [("ecod", ECOD), ("copod", COPOD)])
def test_ensemble_members_use_their_norm(member, cls, skewed):
    from models import UnsupervisedEnsemble

    X, T = skewed
    ens = UnsupervisedEnsemble(members=(member,), ecod_norm=1.5, copod_norm=2.0).fit(X)
    raw = ens.member_scores(T)[member] * ens.scales_[0] + ens.centers_[0]
    expected = cls(norm=1.5 if member == "ecod" else 2.0).fit(X).decision_function(T)
    np.testing.assert_allclose(raw, expected, rtol=1e-10)
