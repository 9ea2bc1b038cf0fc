"""The default ensemble's agreement weighting."""

from __future__ import annotations

import numpy as np
import pytest

from contracts import ConfigError
from models import UnsupervisedEnsemble, make_unsupervised_ensemble
from models.ensemble import _top_overlap


def test_top_overlap_measures_shared_riskiest_rows():
    rng = np.random.default_rng(0)
    a = rng.normal(size=10_000)
    raw = np.c_[a, 2 * a + 1, -a, rng.normal(size=10_000)]
    overlap = _top_overlap(raw, 0, 0.05)
    # itself and a monotone copy agree fully, a reversed score not at all, an unrelated
    # score about as often as chance (5% of ECOD's top 5% land in its top 5%)
    np.testing.assert_allclose(overlap[:3], [1.0, 1.0, 0.0])
    assert 0.02 < overlap[3] < 0.09


def test_ties_are_broken_deterministically():
    raw = np.c_[np.arange(100.0), np.zeros(100)]  # the second member: all tied
    assert _top_overlap(raw, 0, 0.1)[1] == _top_overlap(raw, 0, 0.1)[1]


def _planted(seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Normal rows plus a few rows far out on one feature (what every member sees)."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(2000, 4))
    out = rng.choice(2000, 40, replace=False)
    X[out, 0] += 8.0
    y = np.zeros(2000, dtype=int)
    y[out] = 1
    return X, y


def test_weights_follow_agreement_with_the_anchor():
    X, _ = _planted()
    ens = make_unsupervised_ensemble(random_state=0).fit(X)
    assert ens.members_[0] == "ecod"
    assert ens.agreement_[0] == 1.0
    np.testing.assert_allclose(ens.weights_.sum(), 1.0)
    expected = ens.agreement_ ** ens.agreement_power
    np.testing.assert_allclose(ens.weights_, expected / expected.sum())
    # the member that agrees most with ECOD has the largest weight after ECOD's own
    order = np.argsort(-ens.agreement_[1:], kind="stable")
    assert np.all(np.diff(ens.weights_[1:][order]) <= 1e-15)
    # the combined score is the weighted mean of the member z-scores
    combined, z, _ = ens.score_explain(X[:50])
    np.testing.assert_allclose(combined, z @ ens.weights_)


def test_a_member_that_disagrees_loses_its_say():
    """HBOS alone on a feature with a spike of rare exact values: its top rows are not
    ECOD's, so it is weighted down relative to fixed equal weights."""
    rng = np.random.default_rng(5)
    X = rng.normal(size=(3000, 3))
    # a discrete feature with many rare levels spread uniformly (a histogram artefact
    # for HBOS: sparse bins in the middle, not tails)
    X[:, 2] = np.where(rng.random(3000) < 0.5, 0.0, rng.integers(-200, 200, 3000) * 0.01)
    agree = UnsupervisedEnsemble(members=("ecod", "hbos"), agree_with="ecod", random_state=0).fit(X)
    fixed = UnsupervisedEnsemble(members=("ecod", "hbos"), random_state=0).fit(X)
    np.testing.assert_allclose(fixed.weights_, [0.5, 0.5])
    assert agree.agreement_[1] < 1.0
    assert agree.weights_[1] < 0.5 * fixed.weights_[1]


def test_state_without_weights_loads_with_the_prior_weights():
    X, _ = _planted()
    ens = UnsupervisedEnsemble(weights=(1.0, 0.25, 0.125, 0.05), random_state=0).fit(X)
    meta, arrays = ens.get_state()
    old = {k: v for k, v in arrays.items() if k not in ("weights_", "agreement_")}
    for key in ("agree_with", "agreement_top", "agreement_power"):
        meta["params"].pop(key)
    clone = UnsupervisedEnsemble.from_state(meta, old)
    np.testing.assert_allclose(clone.weights_, np.array([1.0, 0.25, 0.125, 0.05]) / 1.425)
    np.testing.assert_allclose(clone.decision_function(X[:20]), ens.decision_function(X[:20]))


@pytest.mark.parametrize("kwargs", [
    {"agree_with": "lof"},
    {"agree_with": "ecod", "agreement_top": 0.0},
    {"agree_with": "ecod", "agreement_top": 1.0},
    {"agree_with": "ecod", "agreement_power": -1.0},
])
def test_bad_agreement_settings_are_config_errors(kwargs):
    X, _ = _planted()
    with pytest.raises(ConfigError):
        UnsupervisedEnsemble(**kwargs).fit(X)
