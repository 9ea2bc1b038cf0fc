"""``riskwire users``, ``riskwire labels export`` and ``riskwire db`` against a SQLite file."""

from __future__ import annotations

import csv
from datetime import UTC, datetime

from typer.testing import CliRunner

from contracts import Label
from detector.cli import app
from detector.review import CaseStore


def test_users_labels_and_db_commands(tmp_path):
    url = f"sqlite:///{tmp_path}/cli.db"
    runner = CliRunner()
    r = runner.invoke(app, ["users", "add", "ann", "--role", "lead", "--password", "pw-1", "--database-url", url])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["users", "add", "bot", "--no-password", "--database-url", url])
    assert r.exit_code == 0 and r.stdout.strip().startswith("rw_")
    token = r.stdout.strip()
    bad = runner.invoke(app, ["users", "add", "eve", "--role", "root", "--password", "x", "--database-url", url])
    assert bad.exit_code == 2
    listed = runner.invoke(app, ["users", "list", "--database-url", url]).stdout
    assert "ann\tlead\tpassword" in listed and "bot\tanalyst\ttoken" in listed and "pw-1" not in listed

    store = CaseStore.from_url(url)
    assert store.authenticate("ann", "pw-1") is not None and store.user_for_token(token)["username"] == "bot"
    store.record_labels([Label(order_id="o-1", label="fraud", source="chargeback",
                               created_at=datetime(2026, 11, 1, tzinfo=UTC))])
    out = tmp_path / "labels.csv"
    r = runner.invoke(app, ["labels", "export", str(out), "--database-url", url])
    assert r.exit_code == 0, r.output
    rows = list(csv.DictReader(out.open()))
    assert [(x["order_id"], x["label"], x["source"]) for x in rows] == [("o-1", "fraud", "chargeback")]
    store.engine.dispose()

    assert runner.invoke(app, ["db", "current", "--database-url", url]).stdout.strip() == "0001"
    assert runner.invoke(app, ["db", "downgrade", "base", "--yes", "--database-url", url]).exit_code == 0
    assert runner.invoke(app, ["db", "current", "--database-url", url]).stdout.strip() == "base"
    assert runner.invoke(app, ["db", "upgrade", "--database-url", url]).exit_code == 0
    assert runner.invoke(app, ["db", "current", "--database-url", url]).stdout.strip() == "0001"
