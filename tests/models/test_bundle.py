"""The risk bundle the engine scores with."""

from __future__ import annotations

import numpy as np
import pytest

from contracts import ConfigError
from contracts.results import ModelScores
from models import ANOMALY_FEATURE, fit_bundle


def test_without_labels_the_bundle_is_unsupervised_and_quantile_calibrated(blob):
    names = [f"f{i}" for i in range(blob.shape[1])]
    bundle = fit_bundle(blob, names, random_state=0)
    assert bundle.kind == "unsupervised"
    assert bundle.feature_names == tuple(names)
    scores = bundle.score(blob, explain=3)
    assert isinstance(scores, ModelScores)
    assert scores.kind == "unsupervised"
    assert scores.risk.shape == (len(blob),)
    assert np.all((scores.risk >= 0) & (scores.risk <= 100))
    # risk is the training quantile: ~10% of training rows score above 90
    assert 0.05 <= (scores.risk > 90).mean() <= 0.15
    assert set(scores.signals) == {"anomaly"}
    assert all(len(c) <= 3 for c in scores.contributions)


def test_explanations_name_the_feature_that_is_off(blob):
    names = [f"f{i}" for i in range(blob.shape[1])]
    bundle = fit_bundle(blob, names, random_state=0)
    row = np.median(blob, axis=0)
    row[2] = blob[:, 2].max() * 10  # only f2 is extreme
    scores = bundle.score(row[None, :], explain=2)
    feature, contribution = scores.contributions[0][0]
    assert feature == "f2" and contribution > 0
    typical = bundle.score(np.median(blob, axis=0)[None, :]).risk[0]
    assert scores.risk[0] > max(typical, 50)


def test_missing_values_are_imputed_not_an_error(blob):
    bundle = fit_bundle(blob, [f"f{i}" for i in range(5)], random_state=0)
    X = blob[:10].copy()
    X[:, 1] = np.nan
    scores = bundle.score(X)
    assert np.isfinite(scores.risk).all()
    assert np.isfinite(bundle.score(np.full((1, 5), np.nan)).risk).all()


def test_enough_labels_make_it_supervised(labelled):
    X, y, times, names = labelled
    bundle = fit_bundle(X, names, y=y, times=times, min_positives=20,
                        supervised_options={"num_boost_round": 80, "early_stopping_rounds": 15})
    assert bundle.kind == "supervised"
    scores = bundle.score(X[:500], explain=4)
    assert scores.kind == "supervised"
    assert set(scores.signals) == {"anomaly", "supervised"}
    np.testing.assert_allclose(scores.risk, 100 * scores.signals["supervised"])
    # risk ranks the labels well and is a probability on the right scale
    from sklearn.metrics import roc_auc_score

    assert roc_auc_score(y[:500], scores.risk) > 0.8
    assert abs(scores.risk.mean() / 100 - y[:500].mean()) < 0.05
    allowed = {*names, ANOMALY_FEATURE}
    assert all(f in allowed for row in scores.contributions for f, _ in row)
    top = [row[0][0] for row in scores.contributions if row]
    assert max(set(top), key=top.count) == "f0"


def test_too_few_labels_stay_unsupervised(labelled):
    X, y, times, names = labelled
    bundle = fit_bundle(X, names, y=y, times=times, min_positives=int(y.sum()) + 1)
    assert bundle.kind == "unsupervised"
    assert bundle.metadata["positives"] == int(y.sum())


def test_known_fraud_is_not_learnt_as_normal(labelled):
    X, y, _times, names = labelled
    bundle = fit_bundle(X, names, y=y, min_positives=10**9)
    assert bundle.metadata["ensemble_rows"] == int((y == 0).sum())


def test_width_mismatch_is_a_config_error(blob):
    bundle = fit_bundle(blob, [f"f{i}" for i in range(5)])
    with pytest.raises(ConfigError):
        bundle.score(blob[:, :3])
    with pytest.raises(ConfigError):
        fit_bundle(blob, ["a", "b"])


def test_explain_zero_skips_contributions(blob):
    bundle = fit_bundle(blob, [f"f{i}" for i in range(5)])
    scores = bundle.score(blob[:4], explain=0)
    assert scores.contributions == [[], [], [], []]


def test_version_is_a_content_hash(blob):
    names = [f"f{i}" for i in range(5)]
    a = fit_bundle(blob, names, random_state=0)
    b = fit_bundle(blob, names, random_state=0)
    c = fit_bundle(blob[:200], names, random_state=0)
    assert a.version == b.version != c.version
