"""Handbook parity on a slice, and the ``riskwire features`` / ``featurize`` commands."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from features import OrderFeaturizer
from features.batch import replay
from features.handbook import handbook_events, read_handbook
from features.parity import COLUMN_MAP, compare

DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "handbook"
RAW = DATA / "transactions_raw_2018-04-01_2018-09-30.csv.gz"
TRANSFORMED = DATA / "transactions_transformed_2018-06-11_2018-09-14.parquet"


@pytest.fixture(scope="module")
def raw() -> pd.DataFrame:
    if not RAW.exists() or not TRANSFORMED.exists():
        pytest.skip(f"handbook data absent: {DATA}")
    return read_handbook(RAW)


def test_handbook_parity_on_a_slice(raw):
    # Customer windows depend only on that customer's transactions and terminal windows
    # only on that terminal's, so all transactions of a few of each reproduce them exactly.
    customers = set(raw.CUSTOMER_ID.drop_duplicates().sample(6, random_state=2))
    terminals = set(raw.TERMINAL_ID.drop_duplicates().sample(25, random_state=2))
    part = raw[raw.CUSTOMER_ID.isin(customers) | raw.TERMINAL_ID.isin(terminals)].reset_index(drop=True)
    orders, labels, _ = handbook_events(part, label_delay_s=7 * 86400)
    f = OrderFeaturizer(label_delay_s=7 * 86400)
    rows = []
    for batch, out in replay(f, orders, labels, batch_size=200):
        rows += [{"TRANSACTION_ID": int(o.order_id), **{c: r[c] for c in COLUMN_MAP if c in r}} for o, r in zip(batch, out, strict=True)]
    ours = pd.DataFrame(rows)
    cols = ["TRANSACTION_ID", "TX_DATETIME", "CUSTOMER_ID", "TERMINAL_ID", *COLUMN_MAP.values()]
    theirs = pd.read_parquet(TRANSFORMED, columns=cols, filters=[[("CUSTOMER_ID", "in", sorted(customers))],
                                                                 [("TERMINAL_ID", "in", sorted(terminals))]])
    by_customer, _ = compare(ours, theirs[theirs.CUSTOMER_ID.isin(customers)])
    by_terminal, _ = compare(ours, theirs[theirs.TERMINAL_ID.isin(terminals)])
    cust = by_customer[by_customer.column.str.startswith("customer_")]
    term = by_terminal[by_terminal.column.str.startswith(("merchant_", "is_"))]
    assert cust.rows.min() > 100 and term.rows.min() > 500
    assert (term.loc[term.column == "merchant_fraud_risk_30d", "agree"] > 0).all()
    assert cust.share.tolist() == [1.0] * len(cust), cust.to_string()
    assert term.share.tolist() == [1.0] * len(term), term.to_string()


def test_handbook_labels_arrive_after_the_delay(raw):
    part = raw.head(20_000)
    _, labels, n = handbook_events(part, label_delay_s=3 * 86400)
    fraud = part[part.TX_FRAUD == 1]
    assert n == len(part) and len(labels) == len(fraud)
    first = fraud.iloc[0]
    assert labels[0].order_id == str(first.TRANSACTION_ID)
    assert labels[0].created_at - first.TX_DATETIME.tz_localize("UTC").to_pydatetime() == timedelta(days=3)


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def test_features_command_prints_schema(runner):
    from detector.cli import app

    result = runner.invoke(app, ["features"])
    assert result.exit_code == 0, result.output
    for name in ("customer_tx_count_1h", "merchant_fraud_risk_30d", "email_disposable", "address_key"):
        assert name in result.output


def test_featurize_jsonl(runner, tmp_path, order_factory):
    from detector.cli import app

    orders = [order_factory(order_id=f"o-{i}", created_at=f"2026-11-22T09:{59 - i:02d}:00+00:00") for i in range(5)]
    label = {"order_id": "o-2", "label": "fraud", "source": "chargeback", "created_at": "2026-11-30T00:00:00+00:00"}
    src = tmp_path / "events.jsonl"
    src.write_text("\n".join([*(o.model_dump_json() for o in orders), json.dumps(label)]) + "\n")
    out = tmp_path / "f.parquet"
    result = runner.invoke(app, ["featurize", "--input", str(src), "--output", str(out), "--label-delay", "1d"])
    assert result.exit_code == 0, result.output
    df = pd.read_parquet(out)
    assert df.order_id.tolist() == ["o-4", "o-3", "o-2", "o-1", "o-0"]  # event-time order
    assert df.customer_tx_count_1h.tolist() == [1, 2, 3, 4, 5]
    assert df.label.tolist() == [0, 0, 1, 0, 0]
    assert len(df.columns) == len(OrderFeaturizer().schema) + 3


def test_featurize_handbook_limit(runner, tmp_path, raw):
    from detector.cli import app

    out = tmp_path / "hb.parquet"
    result = runner.invoke(app, ["featurize", "--format", "handbook", "--input", str(RAW), "--output", str(out), "--limit", "3000"])
    assert result.exit_code == 0, result.output
    df = pd.read_parquet(out, columns=["TRANSACTION_ID", "customer_tx_count_1d", "merchant_id", "label"])
    assert len(df) == 3000 and df.TRANSACTION_ID.is_monotonic_increasing
    assert df.customer_tx_count_1d.min() == 1
    bad = tmp_path / "x.jsonl"
    bad.write_text("{not json}\n")
    assert runner.invoke(app, ["featurize", "--input", str(bad), "--output", str(out)]).exit_code != 0


@pytest.mark.integration
def test_featurize_with_redis_state_matches_memory_and_cleans_up(runner, tmp_path, order_factory, redis_url):
    import uuid

    import redis

    from detector.cli import app

    orders = [order_factory(order_id=f"o-{i}", created_at=f"2026-11-22T09:{i:02d}:00+00:00",
                            payment={"card_fingerprint": f"fp-{i % 2}"}) for i in range(6)]
    src = tmp_path / "events.jsonl"
    src.write_text("\n".join(o.model_dump_json() for o in orders) + "\n")
    prefix = f"rwtest-cli-{uuid.uuid4().hex[:8]}"
    mem, red = tmp_path / "m.parquet", tmp_path / "r.parquet"
    assert runner.invoke(app, ["featurize", "--input", str(src), "--output", str(mem)]).exit_code == 0
    result = runner.invoke(app, ["featurize", "--input", str(src), "--output", str(red), "--state", "redis",
                                 "--redis-url", redis_url, "--key-prefix", prefix])
    assert result.exit_code == 0, result.output
    a, b = pd.read_parquet(mem), pd.read_parquet(red)
    assert a.drop(columns=["skus", "categories"]).equals(b.drop(columns=["skus", "categories"]))
    assert a.card_distinct_customers_1d.tolist() == [1, 1, 1, 1, 1, 1]
    assert not list(redis.Redis.from_url(redis_url).scan_iter(match=f"{prefix}:*"))
