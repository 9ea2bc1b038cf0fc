"""Registry: versioned, checksummed artifacts; current, challenger, rollback."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest

from contracts import ConfigError, FeatureSchema, FeatureSpec
from models import ModelRegistry, fit_bundle

NAMES = [f"f{i}" for i in range(5)]
SCHEMA = FeatureSchema.of(FeatureSpec(n, "number", "x", n) for n in NAMES)


@pytest.fixture
def bundles(blob, labelled):
    unsup = fit_bundle(blob, NAMES, random_state=0)
    X, y, times, _ = labelled
    sup = fit_bundle(X[:, :5], NAMES, y=y, times=times, min_positives=20,
                     supervised_options={"num_boost_round": 40, "early_stopping_rounds": 10})
    return unsup, sup


def test_save_load_round_trip_gives_identical_scores(tmp_path, bundles, blob):
    registry = ModelRegistry(tmp_path)
    for bundle in bundles:
        version = registry.save(bundle, metadata={"schema_digest": SCHEMA.digest,
                                                  "training_window": ["a", "b"]})
        loaded = registry.load(version, schema=SCHEMA)
        assert loaded.version == version and loaded.kind == bundle.kind
        a, b = bundle.score(blob, explain=3), loaded.score(blob, explain=3)
        np.testing.assert_array_equal(a.risk, b.risk)
        assert a.contributions == b.contributions
    manifest = registry.manifest("v0002")
    assert manifest["schema_digest"] == SCHEMA.digest
    assert manifest["training_window"] == ["a", "b"]
    assert {"numpy", "lightgbm", "scikit-learn", "pyod"} <= set(manifest["libraries"])
    assert set(manifest["files"]) == {"model.json", "arrays.npz", "lightgbm.txt"}
    assert all(len(h) == 64 for h in manifest["files"].values())


def test_first_save_becomes_current_later_ones_wait(tmp_path, bundles):
    registry = ModelRegistry(tmp_path)
    assert not registry.has_current()
    v1 = registry.save(bundles[0])
    v2 = registry.save(bundles[1])
    assert registry.current == v1
    assert registry.load_current().version == v1
    registry.promote(v2)
    assert registry.load_current().kind == "supervised"
    assert registry.rollback() == v1
    assert registry.current == v1
    with pytest.raises(ConfigError):
        registry.rollback()


def test_challenger_is_kept_apart_and_promotable(tmp_path, bundles):
    registry = ModelRegistry(tmp_path)
    v1 = registry.save(bundles[0])
    assert registry.load_challenger() is None
    v2 = registry.save(bundles[1], challenger=True)
    assert registry.current == v1 and registry.challenger == v2
    assert registry.load_challenger().version == v2
    roles = {r["version"]: r["role"] for r in registry.list()}
    assert roles == {v1: "current", v2: "challenger"}
    registry.promote(v2)
    assert registry.current == v2 and registry.challenger is None
    registry.set_challenger(v1)
    assert registry.challenger == v1
    registry.set_challenger(None)
    assert registry.challenger is None


@pytest.mark.parametrize("target", ["arrays.npz", "model.json", "lightgbm.txt", "manifest.json"])
def test_a_tampered_file_is_refused(tmp_path, bundles, target):
    registry = ModelRegistry(tmp_path)
    version = registry.save(bundles[1])
    path = tmp_path / "versions" / version / target
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(ConfigError, match="checksum"):
        registry.load(version)
    assert registry.list()[0]["role"] in ("corrupt", "current")


def test_a_schema_mismatch_is_refused(tmp_path, bundles):
    registry = ModelRegistry(tmp_path)
    registry.save(bundles[0], metadata={"schema_digest": SCHEMA.digest})
    other = FeatureSchema.of([*SCHEMA.specs, FeatureSpec("extra", "number", "x", "x")])
    with pytest.raises(ConfigError, match="schema"):
        registry.load_current(schema=other)
    registry.load_current(schema=SCHEMA)


def test_pickled_arrays_are_never_loaded_even_with_matching_checksums(tmp_path, bundles):
    """An attacker who can rewrite the manifest and state still cannot run code."""
    import hashlib

    registry = ModelRegistry(tmp_path)
    version = registry.save(bundles[0])
    vdir = tmp_path / "versions" / version
    buf = io.BytesIO()
    np.savez(buf, evil=np.array([object()], dtype=object))
    (vdir / "arrays.npz").write_bytes(buf.getvalue())
    manifest = json.loads((vdir / "manifest.json").read_text())
    manifest["files"]["arrays.npz"] = hashlib.sha256(buf.getvalue()).hexdigest()
    mbytes = json.dumps(manifest).encode()
    (vdir / "manifest.json").write_bytes(mbytes)
    state = json.loads((tmp_path / "state.json").read_text())
    state["manifests"][version] = hashlib.sha256(mbytes).hexdigest()
    (tmp_path / "state.json").write_text(json.dumps(state))
    with pytest.raises((ValueError, ConfigError)):
        registry.load(version)


def test_unknown_versions_and_empty_registry(tmp_path):
    registry = ModelRegistry(tmp_path)
    with pytest.raises(ConfigError):
        registry.load_current()
    with pytest.raises(ConfigError):
        registry.promote("v0009")
    with pytest.raises(ConfigError):
        registry.load("../../etc")
    assert registry.list() == []
