"""Backtest core on hand-made rows, and the Markdown report with its plot."""

from __future__ import annotations

from pathlib import Path

import pytest

from rules import BacktestRow, compile_ruleset, run_backtest
from rules.report import headline, plot_backtest, render_markdown

from .conftest import make_lists, make_schema

CANDIDATE = """ruleset candidate
rule big: reason: BIG decline if :amount: > 100
rule mid: reason: MID review if :amount: > 50
rule vip: reason: VIP allow if :customer_id: in @trusted_customers
rule trial shadow: reason: TRIAL decline if :amount: > 10
"""
CURRENT = """ruleset current
rule old_big: reason: BIG review if :amount: > 80
"""

# (amount, customer, label): 3 frauds (amounts 500, 60, 20), 5 legit, 1 unlabelled.
ROWS = [
    (500.0, "c-1", True),
    (60.0, "c-2", True),
    (20.0, "c-3", True),
    (150.0, "c-4", False),
    (90.0, "c-5", False),
    (200.0, "c-vip", False),
    (5.0, "c-6", False),
    (30.0, "c-7", False),
    (120.0, "c-8", None),
]


@pytest.fixture
def result():  # type: ignore[no-untyped-def]
    schema, lists = make_schema(), make_lists()
    candidate = compile_ruleset(CANDIDATE, schema=schema, lists=lists)
    current = compile_ruleset(CURRENT, schema=schema, lists=lists)
    rows = [BacktestRow({"amount": a, "customer_id": c}, label, a) for a, c, label in ROWS]
    seen: list[int] = []
    out = run_backtest(rows, candidate=candidate, baseline=current, progress=seen.append, progress_every=4)
    assert seen == [4, 8, 9]
    return out


def test_overall_counts(result) -> None:  # type: ignore[no-untyped-def]
    assert (result.rows, result.labelled, result.frauds) == (9, 8, 3)
    assert result.fraud_amount == 580.0
    c = result.candidate
    # Candidate: 500 decline, 60 review, 20 none, 150 decline, 90 review, vip allow,
    # 5 none, 30 none, 120 decline (unlabelled).
    assert c.actions == {"allow": 1, "decline": 3, "review": 2, "none": 3}
    assert (c.flagged, c.flagged_fraud, c.flagged_legit) == (5, 2, 2)
    assert c.precision == 0.5 and c.recall(3) == pytest.approx(2 / 3)
    assert (c.declined_fraud, c.declined_legit) == (1, 1)
    assert c.amount_caught == 560.0
    assert c.amount_wrongly_blocked == 150.0
    assert c.amount_wrongly_reviewed == 90.0
    assert c.allowed_fraud == 0
    b = result.baseline
    # Current flags 500, 150, 90, 200 (vip: no allow rule there), 120.
    assert (b.flagged, b.flagged_fraud, b.flagged_legit) == (5, 1, 3)
    assert (result.both_flag, result.candidate_only, result.baseline_only) == (4, 1, 1)
    assert result.jaccard == pytest.approx(4 / 6)


def test_per_rule(result) -> None:  # type: ignore[no-untyped-def]
    big = result.rule("big")
    assert (big.hits, big.fraud_hits, big.legit_hits) == (4, 1, 2)  # 500, 150, 200, 120
    assert big.precision == pytest.approx(1 / 3) and big.recall(3) == pytest.approx(1 / 3)
    assert big.amount_caught == 500.0 and big.amount_wrongly_hit == 350.0
    assert big.overlap == 1.0
    mid = result.rule("mid")
    assert (mid.hits, mid.overlap_hits) == (6, 5)  # 60 is flagged only by the candidate
    trial = result.rule("trial")
    assert trial.shadow and trial.hits == 8 and trial.fraud_hits == 3
    vip = result.rule("vip")
    assert (vip.hits, vip.legit_hits) == (1, 1)
    assert vip.hit_rate(result.rows) == pytest.approx(1 / 9)


def test_report_and_plot(result, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    png = plot_backtest(result, tmp_path / "plot.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = render_markdown(result, plot_file="plot.png", data_note="hand-made rows")
    assert md.startswith("# Ruleset backtest\n")
    assert headline(result) in md
    assert "precision 50.0%, recall 66.7%" in headline(result)
    assert "| `big` | decline |  | BIG | 4 | 44.4% | 33.3% | 33.3% | 500 | 350 | 100.0% |" in md
    assert "![per-rule hits and overall precision/recall](plot.png)" in md


def test_tuples_and_no_baseline() -> None:
    ruleset = compile_ruleset(CANDIDATE, schema=make_schema(), lists=make_lists())
    out = run_backtest([({"amount": 200}, True, 200), ({}, False, 0)], candidate=ruleset)
    assert out.baseline is None and out.jaccard is None
    assert out.candidate.flagged_fraud == 1
    assert "n/a" in render_markdown(out)
