"""One contract over every scorer (as scikit-learn's ``parametrize_with_checks``)."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from models import (
    COPOD,
    ECOD,
    HBOS,
    IForest,
    NotFittedError,
    UnsupervisedEnsemble,
    make_unsupervised_ensemble,
)

SCORERS: dict[str, Callable[[], Any]] = {
    "ecod": lambda: ECOD(),
    "copod": lambda: COPOD(),
    "ecod-l1.5": lambda: ECOD(norm=1.5),
    "copod-l2": lambda: COPOD(norm=2.0),
    "hbos": lambda: HBOS(),
    "iforest": lambda: IForest(n_estimators=30, random_state=0),
    "default-ensemble": lambda: make_unsupervised_ensemble(random_state=0),
    "ensemble-equal": lambda: UnsupervisedEnsemble(n_estimators=30, random_state=0),
    "ensemble-median": lambda: UnsupervisedEnsemble(
        combination="median", n_estimators=30, random_state=0),
    "ensemble-ecod-hbos": lambda: UnsupervisedEnsemble(members=("ecod", "hbos"), random_state=0),
}

pytestmark = pytest.mark.parametrize("make", SCORERS.values(), ids=SCORERS.keys())


def _state_copy(model: Any) -> tuple[str, dict[str, np.ndarray]]:
    meta, arrays = model.get_state()
    return json.dumps(meta, sort_keys=True, default=str), {k: v.copy() for k, v in arrays.items()}


def test_fit_and_scores_have_the_right_shape(make, blob):
    model = make()
    assert model.fit(blob) is model
    scores = model.decision_function(blob[:17])
    assert scores.shape == (17,)
    assert scores.dtype == np.float64
    assert np.isfinite(scores).all()
    assert model.decision_function(blob[0]).shape == (1,)


def test_an_obvious_outlier_scores_higher(make, blob):
    model = make().fit(blob)
    train = model.decision_function(blob)
    outlier = blob.max(axis=0) * 20 + 5
    assert model.decision_function(outlier[None, :])[0] > np.quantile(train, 0.99)


def test_threshold_is_set_from_the_contamination(make, blob):
    model = make()
    assert not hasattr(model, "threshold_")
    model.fit(blob)
    above = (model.decision_function(blob) > model.threshold_).mean()
    assert 0.03 <= above <= 0.2
    assert set(np.unique(model.predict(blob))) <= {0, 1}


def test_scoring_does_not_mutate_the_model(make, blob):
    model = make().fit(blob)
    before_keys = set(vars(model))
    before_meta, before = _state_copy(model)
    model.decision_function(np.r_[blob[:50] * 3, blob[:3]])
    if hasattr(model, "score_explain"):
        model.score_explain(blob[:20])
    after_meta, after = _state_copy(model)
    assert set(vars(model)) == before_keys
    assert after_meta == before_meta
    assert before.keys() == after.keys()
    for key in before:
        np.testing.assert_array_equal(before[key], after[key], err_msg=key)


def test_keeps_no_training_data(make, blob):
    X = blob.copy()
    model = make().fit(X)
    expected = model.decision_function(blob[:30])
    _, arrays = model.get_state()
    for name, arr in arrays.items():
        assert not np.shares_memory(arr, X), name
        assert not (arr.ndim == 2 and arr.shape == X.shape), f"{name} looks like the training rows"
    for name, value in vars(model).items():
        if isinstance(value, np.ndarray):
            assert not np.shares_memory(value, X), name
    X[:] = 0.0  # had the model kept a reference, its scores would change
    np.testing.assert_array_equal(model.decision_function(blob[:30]), expected)


def test_deterministic_with_random_state(make, blob):
    a = make().fit(blob).decision_function(blob[:40])
    b = make().fit(blob).decision_function(blob[:40])
    np.testing.assert_array_equal(a, b)


def test_unfitted_model_refuses_to_score(make, blob):
    with pytest.raises(NotFittedError):
        make().decision_function(blob[:2])


def test_wrong_width_is_an_error(make, blob):
    model = make().fit(blob)
    with pytest.raises(ValueError):
        model.decision_function(blob[:3, :4])


def test_state_round_trips_without_pickle(make, blob, tmp_path):
    model = make().fit(blob)
    meta, arrays = model.get_state()
    path = tmp_path / "state.npz"
    np.savez(path, **arrays)
    with np.load(path, allow_pickle=False) as npz:
        loaded = {k: npz[k] for k in npz.files}
    clone = type(model).from_state(json.loads(json.dumps(meta)), loaded)
    np.testing.assert_array_equal(clone.decision_function(blob), model.decision_function(blob))
    assert clone.threshold_ == model.threshold_
    assert copy.deepcopy(clone).threshold_ == model.threshold_
