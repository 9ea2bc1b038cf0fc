"""Backtest report: a Markdown page and one matplotlib figure.

matplotlib is imported inside :func:`plot_backtest` only (house style: heavy imports stay
where they are needed).
"""

from __future__ import annotations

from pathlib import Path

from rules.backtest import BacktestResult, OverallStats

__all__ = ["headline", "plot_backtest", "render_markdown"]


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def _money(x: float) -> str:
    return f"{x:,.0f}"


def headline(result: BacktestResult) -> str:
    """One paragraph an analyst reads first."""
    c = result.candidate
    text = (
        f"Over {result.rows:,} orders ({result.frauds:,} fraud, {_money(result.fraud_amount)} fraud amount), "
        f"ruleset {c.version} flags {c.flagged:,} ({_pct(result.rows and c.flagged / result.rows)}): "
        f"precision {_pct(c.precision)}, recall {_pct(c.recall(result.frauds))}; "
        f"it catches {_money(c.amount_caught)} of fraud amount "
        f"({_pct(result.fraud_amount and c.amount_caught / result.fraud_amount)}) "
        f"and wrongly declines {_money(c.amount_wrongly_blocked)} of legitimate amount "
        f"(plus {_money(c.amount_wrongly_reviewed)} sent to review)."
    )
    if result.baseline is not None:
        b = result.baseline
        text += (
            f" The current ruleset {b.version} flags {b.flagged:,} (precision {_pct(b.precision)}, "
            f"recall {_pct(b.recall(result.frauds))}); overlap (Jaccard of flagged orders) "
            f"{_pct(result.jaccard)}."
        )
    return text


def _overall_rows(label: str, s: OverallStats, result: BacktestResult) -> list[str]:
    rows = result.rows or 1
    return [
        f"| {label} | `{s.version}` | {s.actions.get('decline', 0):,} | {s.actions.get('review', 0):,} "
        f"| {s.actions.get('allow', 0):,} | {_pct(s.flagged / rows)} | {_pct(s.precision)} "
        f"| {_pct(s.recall(result.frauds))} | {_pct(s.decline_precision)} | {_pct(s.decline_recall(result.frauds))} "
        f"| {_money(s.amount_caught)} | {_money(s.amount_wrongly_blocked)} | {_money(s.amount_wrongly_reviewed)} "
        f"| {s.allowed_fraud:,} |"
    ]


def render_markdown(
    result: BacktestResult,
    *,
    title: str = "Ruleset backtest",
    data_note: str = "",
    plot_file: str | None = None,
) -> str:
    lines = [f"# {title}", "", headline(result), ""]
    if data_note:
        lines += [data_note, ""]
    lines += [
        "## Overall",
        "",
        f"Rows {result.rows:,}; labelled {result.labelled:,}; fraud {result.frauds:,} "
        f"({_pct(result.labelled and result.frauds / result.labelled)}); fraud amount {_money(result.fraud_amount)}; "
        f"legitimate amount {_money(result.legit_amount)}.",
        "",
        "Flagged = declined or sent to review, after precedence allow > decline > review. "
        "Wrongly blocked = legitimate amount declined.",
        "",
        "| ruleset | version | declines | reviews | allows | flag rate | precision | recall "
        "| decline precision | decline recall | amount caught | wrongly blocked | wrongly reviewed | fraud allowed |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        *_overall_rows("candidate", result.candidate, result),
    ]
    if result.baseline is not None:
        lines += _overall_rows("current", result.baseline, result)
        lines += [
            "",
            f"Overlap: both flag {result.both_flag:,}; only the candidate {result.candidate_only:,}; "
            f"only the current {result.baseline_only:,}; Jaccard {_pct(result.jaccard)}.",
        ]
    lines += [
        "",
        "## Per rule",
        "",
        "Precision of an `allow` rule is the share of fraud it lets through: lower is better. "
        "Shadow rules are measured but never act.",
        "",
        "| rule | action | shadow | reason | hits | hit rate | precision | recall | amount caught "
        "| amount wrongly hit | overlap with current |",
        "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in sorted(result.rules, key=lambda r: -r.hits):
        lines.append(
            f"| `{r.rule_id}` | {r.action} | {'yes' if r.shadow else ''} | {r.reason_code} | {r.hits:,} "
            f"| {_pct(r.hit_rate(result.rows))} | {_pct(r.precision)} | {_pct(r.recall(result.frauds))} "
            f"| {_money(r.amount_caught)} | {_money(r.amount_wrongly_hit)} "
            f"| {_pct(r.overlap) if result.baseline is not None else 'n/a'} |"
        )
    if plot_file:
        lines += ["", "## Plot", "", f"![per-rule hits and overall precision/recall]({plot_file})"]
    return "\n".join(lines) + "\n"


def plot_backtest(result: BacktestResult, path: Path) -> Path:
    """Per-rule fraud/legit hits (left) and overall precision/recall (right) as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rules = sorted(result.rules, key=lambda r: -r.hits)[:30]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, max(4.0, 0.35 * len(rules) + 1.5)),
                                   gridspec_kw={"width_ratios": [3, 1]})
    names = [r.rule_id + (" (shadow)" if r.shadow else "") for r in rules][::-1]
    fraud = [r.fraud_hits for r in rules][::-1]
    legit = [r.legit_hits for r in rules][::-1]
    other = [max(r.hits - r.fraud_hits - r.legit_hits, 0) for r in rules][::-1]
    ax1.barh(names, fraud, color="#c0392b", label="fraud")
    ax1.barh(names, legit, left=fraud, color="#95a5a6", label="legitimate")
    ax1.barh(names, other, left=[a + b for a, b in zip(fraud, legit, strict=True)], color="#d5dbdb", label="unlabelled")
    ax1.set_xlabel("hits")
    ax1.legend(loc="lower right")
    ax1.set_title("Hits per rule")

    groups = [("candidate", result.candidate)]
    if result.baseline is not None:
        groups.append(("current", result.baseline))
    xs = range(len(groups))
    width = 0.38
    prec = [100 * (s.precision or 0.0) for _, s in groups]
    rec = [100 * (s.recall(result.frauds) or 0.0) for _, s in groups]
    ax2.bar([x - width / 2 for x in xs], prec, width, label="precision", color="#2980b9")
    ax2.bar([x + width / 2 for x in xs], rec, width, label="recall", color="#27ae60")
    ax2.set_xticks(list(xs), [g for g, _ in groups])
    ax2.set_ylim(0, 100)
    ax2.set_ylabel("%")
    ax2.legend()
    ax2.set_title("Overall (flagged)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
