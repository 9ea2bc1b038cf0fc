"""`riskwire train`, `evaluate` and `models ...` on small generated tables."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from detector.commands.models import register
from models import ModelRegistry


@pytest.fixture
def cli():
    app = typer.Typer()
    register(app)
    runner = CliRunner()
    return lambda *args: runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


def _table(n: int, *, start: datetime, days: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    t = start + pd.to_timedelta(np.sort(rng.uniform(0, days * 86400, n)), unit="s")
    amount = rng.lognormal(3, 1, n)
    risk = rng.random(n)
    logit = 1.5 * np.log(amount) - 7.5 + 3 * risk
    label = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return pd.DataFrame({
        "order_id": [f"o-{i}" for i in range(n)],
        "event_time": t,
        "customer_id": rng.integers(0, 300, n),
        "amount": amount,
        "merchant_fraud_risk_7d": risk,
        "customer_tx_count_1d": rng.poisson(2, n).astype(float),
        "label": label,
    })


def test_train_list_promote_rollback_challenger(cli, tmp_path):
    path = tmp_path / "features.parquet"
    _table(3000, start=datetime(2026, 1, 1), days=20).to_parquet(path)
    reg = tmp_path / "registry"

    out = cli("train", "--features", path, "--registry", reg, "--min-positives", "1000000")
    assert out.exit_code == 0, out.output
    assert '"kind": "unsupervised"' in out.output
    out = cli("train", "--features", path, "--registry", reg, "--min-positives", "20",
              "--no-promote")
    assert out.exit_code == 0, out.output
    registry = ModelRegistry(reg)
    assert registry.current == "v0001"
    manifest = registry.manifest("v0002")
    assert manifest["kind"] == "supervised"
    assert manifest["feature_names"] == ["amount", "merchant_fraud_risk_7d", "customer_tx_count_1d"]
    assert manifest["training_window"][0].startswith("2026-01-01")

    listing = cli("models", "list", "--registry", reg).output
    assert "v0001  current" in listing and "v0002" in listing
    assert cli("models", "promote", "v0002", "--registry", reg).exit_code == 0
    assert registry.current == "v0002"
    assert cli("models", "rollback", "--registry", reg).exit_code == 0
    assert registry.current == "v0001"
    assert cli("models", "challenger", "v0002", "--registry", reg).exit_code == 0
    assert registry.load_challenger().kind == "supervised"
    assert cli("models", "challenger", "--clear", "--registry", reg).exit_code == 0
    assert registry.challenger is None
    bad = CliRunner().invoke(_app(), ["models", "promote", "v0042", "--registry", str(reg)])
    assert bad.exit_code != 0


def _app() -> typer.Typer:
    app = typer.Typer()
    register(app)
    return app


def test_evaluate_handbook_protocol_on_a_small_table(cli, tmp_path):
    path = tmp_path / "hb.parquet"
    # covers the four training weeks from 2018-07-25 and their test weeks
    _table(12000, start=datetime(2018, 7, 20), days=50, seed=1).to_parquet(path)
    png, out_json = tmp_path / "pr.png", tmp_path / "out.json"
    out = cli("evaluate", "--dataset", "handbook", "--features", path, "--png", png,
              "--json", out_json)
    assert out.exit_code == 0, out.output
    result = json.loads(out_json.read_text())
    assert [f["train_start"] for f in result["folds"]] == [
        str((datetime(2018, 7, 25) + timedelta(days=7 * i)).date()) for i in range(4)]
    for fold in result["folds"]:
        assert 0.5 < fold["auc_roc"] <= 1.0
        assert 0 <= fold["card_precision@100"] <= 1
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "AUC ROC" in out.output and "mean" in out.output
    assert result["features"] == ["amount", "merchant_fraud_risk_7d", "customer_tx_count_1d"]


def test_train_needs_exactly_one_source(cli, tmp_path):
    out = CliRunner().invoke(_app(), ["train", "--registry", str(tmp_path)])
    assert out.exit_code != 0
