"""Drift monitor: PSI arithmetic, reference profiles, the rolling window and its gauges."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from contracts import ConfigError, Decision
from contracts.events import Versions
from contracts.frame import FeatureFrame
from detector.drift import (
    SCORE,
    ColumnReference,
    DriftMonitor,
    ReferenceProfile,
    attach_drift_monitor,
    psi,
)
from detector.metrics import Metrics

T0 = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)


def gauge(m: Metrics, feature: str) -> float | None:
    return m.registry.get_sample_value("riskwire_drift_psi", {"feature": feature})


def decisions(scores: list[int]) -> list[Decision]:
    v = Versions(engine="0", features="f", model="m", ruleset="r")
    return [
        Decision(decision_id=f"d{i}", order_id=f"o{i}", event_time=T0, decided_at=T0, score=s,
                 action="approve", versions=v)
        for i, s in enumerate(scores)
    ]


def test_psi_by_hand() -> None:
    e, a = [0.5, 0.5], [0.25, 0.75]
    expected = (0.25 - 0.5) * math.log(0.25 / 0.5) + (0.75 - 0.5) * math.log(0.75 / 0.5)
    assert psi(e, a) == pytest.approx(expected)
    assert psi(e, e) == 0.0
    # An empty bin is floored, not infinite.
    assert math.isfinite(psi([0.5, 0.5, 0.0], [0.0, 0.5, 0.5]))


def test_reference_bins_split_training_evenly() -> None:
    rng = np.random.default_rng(0)
    ref = ColumnReference.fit("amount", rng.lognormal(4, 1, 10_000), bins=10)
    assert len(ref.edges) == 9
    assert sum(ref.shares) == pytest.approx(1.0)
    assert max(ref.shares[:-1]) == pytest.approx(0.1, abs=0.01)
    assert ref.shares[-1] == 0.0  # no missing values in training


def test_ties_collapse_and_missing_has_its_own_bin() -> None:
    values = np.array([0.0] * 900 + [1.0] * 50 + [np.nan] * 50)
    ref = ColumnReference.fit("count_1h", values)
    assert len(ref.edges) < 9
    assert ref.shares[-1] == pytest.approx(0.05)
    assert ref.bin_index(np.array([np.nan, np.inf]))[0] == ref.n_bins - 1


def test_profile_fit_and_json_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    X = np.column_stack([rng.normal(size=2000), np.zeros(2000), rng.exponential(size=2000)])
    prof = ReferenceProfile.fit(X, ["a", "const", "b"], scores=rng.uniform(0, 100, 2000))
    # The constant column carries no information and is not monitored.
    assert set(prof.columns) == {"a", "b", SCORE}
    prof.save(tmp_path / "drift.json")
    again = ReferenceProfile.load(tmp_path / "drift.json")
    assert again.columns == prof.columns
    assert again.rows == 2000
    with pytest.raises(ConfigError):
        ReferenceProfile.fit(X, ["a", "b"])
    with pytest.raises(ConfigError):
        ReferenceProfile.fit(X, ["a", "const", "b"], features=["nope"])
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(ConfigError):
        ReferenceProfile.load(tmp_path / "bad.json")


def _profile(rng: np.random.Generator) -> ReferenceProfile:
    X = rng.normal(0, 1, size=(5000, 1))
    return ReferenceProfile.fit(X, ["amount_z"], scores=rng.uniform(0, 60, 5000))


def test_same_population_is_stable_shifted_is_not() -> None:
    rng = np.random.default_rng(2)
    m = Metrics.create(CollectorRegistry())
    mon = DriftMonitor(metrics=m, reference=_profile(rng), window=2000, min_samples=500, every=100)
    for _ in range(20):
        mon.observe(scores=rng.uniform(0, 60, 100).tolist(),
                    frame=FeatureFrame.from_rows([{"amount_z": float(x)} for x in rng.normal(0, 1, 100)]))
    stable = mon.psi()
    assert stable[SCORE] < 0.05 and stable["amount_z"] < 0.05
    assert gauge(m, "amount_z") == pytest.approx(stable["amount_z"], abs=1e-5)
    assert m.registry.get_sample_value("riskwire_drift_window_samples") == 2000
    # A full window of shifted traffic evicts the stable one.
    for _ in range(20):
        mon.observe(scores=rng.uniform(40, 100, 100).tolist(),
                    frame=FeatureFrame.from_rows([{"amount_z": float(x)} for x in rng.normal(1.5, 1, 100)]))
    shifted = mon.psi()
    assert shifted[SCORE] > 0.25 and shifted["amount_z"] > 0.25
    assert gauge(m, SCORE) == pytest.approx(shifted[SCORE], abs=1e-5)


def test_a_feature_that_goes_missing_drifts() -> None:
    rng = np.random.default_rng(3)
    m = Metrics.create(CollectorRegistry())
    mon = DriftMonitor(metrics=m, reference=_profile(rng), window=500, min_samples=100, every=50)
    mon.observe(scores=rng.uniform(0, 60, 500).tolist(), frame=FeatureFrame.from_rows([{"amount_z": None}] * 500))
    assert mon.psi()["amount_z"] > 1.0


def test_nothing_published_before_min_samples() -> None:
    rng = np.random.default_rng(4)
    m = Metrics.create(CollectorRegistry())
    mon = DriftMonitor(metrics=m, reference=_profile(rng), window=1000, min_samples=300, every=10)
    mon.observe(scores=[10.0] * 100, frame=None)
    assert mon.psi() == {}
    assert gauge(m, SCORE) is None


def test_window_counts_match_a_recount() -> None:
    rng = np.random.default_rng(5)
    m = Metrics.create(CollectorRegistry())
    prof = _profile(rng)
    mon = DriftMonitor(metrics=m, reference=prof, window=97, min_samples=1, every=1)
    seen: list[float] = []
    for size in [5, 40, 90, 3, 200, 7, 60]:
        batch = rng.uniform(0, 100, size).tolist()
        seen.extend(batch)
        mon.observe(scores=batch)
    w = mon._windows[SCORE]
    expected = prof.columns[SCORE].bin_counts(np.array(seen[-97:]))
    assert w.counts.tolist() == expected.astype(int).tolist()


def test_fed_by_observe_decisions_with_warmup_reference() -> None:
    m = Metrics.create(CollectorRegistry())
    mon = attach_drift_monitor(m, reference=None, window=50, min_samples=10, every=10)
    calm = [i % 50 for i in range(60)]
    m.observe_decisions(decisions(calm[:30]), path="stream", seconds=0.01)
    assert mon.reference is None
    m.observe_decisions(decisions(calm[30:]), path="stream", seconds=0.01)
    assert mon.reference is not None and mon.reference.source == "warmup"
    assert gauge(m, SCORE) < 0.1
    m.observe_decisions(decisions([90] * 50), path="stream", seconds=0.01)
    assert gauge(m, SCORE) > 1.0


def test_model_score_in_the_frame_is_preferred() -> None:
    m = Metrics.create(CollectorRegistry())
    prof = ReferenceProfile(columns={SCORE: ColumnReference.fit(SCORE, np.linspace(0, 50, 1000))})
    mon = attach_drift_monitor(m, reference=prof, window=20, min_samples=20, every=20)
    # Rules pushed every decision to 99, but the model's own score stayed in range.
    m.observe_decisions(decisions([99] * 20), path="sync", seconds=0.01,
                        frame=FeatureFrame.from_rows([{"model_score": 25.0}] * 20))
    w = mon._windows[SCORE]
    assert w.counts[int(prof.columns[SCORE].bin_index(np.array([25.0]))[0])] == 20


def test_bad_parameters() -> None:
    with pytest.raises(ConfigError):
        DriftMonitor(metrics=Metrics.create(CollectorRegistry()), reference=None, window=5)


def test_profile_from_a_real_model_round_trips_through_the_registry(tmp_path: Path) -> None:
    from detector.drift import DRIFT_METADATA_KEY, profile_for_training, reference_from_model
    from models import ModelRegistry
    from models.bundle import fit_bundle
    from models.ensemble import UnsupervisedEnsemble

    rng = np.random.default_rng(6)
    names = ["amount", "items", "account_age_days", "const"]
    X = np.column_stack([rng.lognormal(4, 1, 800), rng.integers(1, 5, 800), rng.exponential(300, 800),
                         np.ones(800)])
    # Two cheap members keep the test fast; the profile code only needs score() and contributions.
    bundle = fit_bundle(X, names, random_state=0,
                        ensemble=UnsupervisedEnsemble(members=("ecod", "hbos"), random_state=0))
    prof = profile_for_training(X, names, model=bundle, max_features=2)
    assert SCORE in prof.columns
    features = [n for n in prof.columns if n != SCORE]
    assert len(features) == 2 and "const" not in features
    # The model's risk on its own training rows is close to uniform (it is a quantile).
    assert max(prof.columns[SCORE].shares) < 0.3

    reg = ModelRegistry(tmp_path / "models")
    reg.save(bundle, metadata={DRIFT_METADATA_KEY: prof.to_dict()})
    loaded = reg.load_current()
    again = reference_from_model(loaded)
    assert again is not None and again.columns == prof.columns


def test_unsupervised_model_without_profile_gets_a_uniform_score_reference() -> None:
    from detector.drift import reference_from_model

    class Bare:
        def __init__(self) -> None:
            self.kind = "unsupervised"
            self.metadata: dict[str, object] = {}

    bare = Bare()
    ref = reference_from_model(bare)
    assert ref is not None and set(ref.columns) == {SCORE}
    assert sum(ref.columns[SCORE].shares) == pytest.approx(1.0)
    bare.kind = "supervised"
    assert reference_from_model(bare) is None


def test_set_reference_restarts_the_windows() -> None:
    rng = np.random.default_rng(8)
    m = Metrics.create(CollectorRegistry())
    mon = DriftMonitor(metrics=m, reference=_profile(rng), window=200, min_samples=100, every=50)
    mon.observe(scores=rng.uniform(60, 100, 200).tolist(),
                frame=FeatureFrame.from_rows([{"amount_z": float(x)} for x in rng.normal(0, 1, 200)]))
    assert gauge(m, SCORE) is not None and gauge(m, SCORE) > 0.25
    # A new model went live whose training scores look like today's traffic.
    new = ReferenceProfile(columns={SCORE: ColumnReference.fit(SCORE, rng.uniform(60, 100, 5000))})
    mon.set_reference(new)
    assert gauge(m, SCORE) is None and gauge(m, "amount_z") is None
    assert mon.columns == (SCORE,)
    mon.observe(scores=rng.uniform(60, 100, 200).tolist())
    # 200 draws over 10 bins: PSI's sampling noise alone is about 10/200 = 0.05.
    assert gauge(m, SCORE) is not None and gauge(m, SCORE) < 0.2
