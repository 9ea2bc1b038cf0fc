"""``riskwire rules check|show|trace`` and ``riskwire backtest``.

``rules check FILE`` prints ``FILE:LINE:COLUMN: message`` per error and exits 1 (2 when
the file cannot be read). ``backtest`` replays history through the featuriser and the
current model (built by ``detector.wiring``, as the engine would), evaluates the candidate
and the current rulesets on every order, and writes a Markdown report with a plot.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

import typer

from contracts import ConfigError, FeatureSchema, Label, Order
from detector.settings import Settings

__all__ = ["attribute_schema", "register"]

log = logging.getLogger(__name__)


class EventFormat(StrEnum):
    jsonl = "jsonl"
    handbook = "handbook"


class Unlabelled(StrEnum):
    legit = "legit"
    skip = "skip"


def _memory_settings(settings: Settings) -> Settings:
    # Offline tools never touch shared Redis state.
    return settings.model_copy(update={"state": settings.state.model_copy(update={"backend": "memory"})})


def attribute_schema(featurizer_schema: FeatureSchema) -> FeatureSchema:
    """What rules may read: features + text features + the engine's attributes."""
    from detector.engine import ENGINE_ATTRIBUTES

    schema = featurizer_schema
    try:
        from detector.text_stage import TEXT_FEATURES

        schema = schema.merged(TEXT_FEATURES)
    except ImportError:  # the text stage is optional
        pass
    return schema.merged(ENGINE_ATTRIBUTES)


def _schema(settings: Settings) -> FeatureSchema:
    from detector.wiring import build_featurizer

    return attribute_schema(build_featurizer(_memory_settings(settings)).schema)


def _lists(settings: Settings, lists_dir: Path | None) -> Any:
    from rules import ListStore

    return ListStore.from_dir(lists_dir if lists_dir is not None else settings.rules.lists_dir)


def _fail(lines: list[str], code: int = 1) -> None:
    for line in lines:
        typer.echo(line, err=True)
    raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    rules_app = typer.Typer(help="Check, show and trace rulesets.", no_args_is_help=True)
    app.add_typer(rules_app, name="rules")
    rules_app.command("check")(check)
    rules_app.command("show")(show)
    rules_app.command("trace")(trace)
    app.command("backtest")(backtest)


def check(
    file: Path = typer.Argument(..., help="Ruleset file to validate."),
    lists_dir: Path | None = typer.Option(None, "--lists-dir", help="Lists directory (default: settings)."),
) -> None:
    """Validate a ruleset against the feature schema and the lists; exit 1 on errors."""
    from rules import RuleCompileError, compile_ruleset

    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        _fail([f"{file}:1:1: cannot read: {exc.__class__.__name__}"], code=2)
        return
    settings = Settings()
    try:
        lists = _lists(settings, lists_dir)
        ruleset = compile_ruleset(text, schema=_schema(settings), lists=lists, source=str(file))
    except RuleCompileError as exc:
        _fail(exc.lines())
        return
    shadow = sum(1 for r in ruleset.rules if r.rule.shadow)
    typer.echo(f"{file}: ok, {len(ruleset)} rules ({shadow} shadow), version {ruleset.version}")


def show(
    file: Path | None = typer.Argument(None, help="Ruleset file (default: the configured one)."),
) -> None:
    """Print a ruleset's rules, version and the lists it uses."""
    from rich.console import Console
    from rich.table import Table

    from rules import DEFAULT_RULESET_PATH, RuleCompileError, compile_ruleset, format_expr

    settings = Settings()
    path = file or settings.rules.ruleset_path or DEFAULT_RULESET_PATH
    try:
        ruleset = compile_ruleset(
            Path(path).read_text(encoding="utf-8"), schema=_schema(settings), lists=_lists(settings, None), source=str(path)
        )
    except RuleCompileError as exc:
        _fail(exc.lines())
        return
    table = Table(title=f"{ruleset.version} ({path})")
    for col in ("rule", "action", "reason", "condition"):
        table.add_column(col, overflow="fold")
    for r in ruleset.rules:
        table.add_row(r.rule.id + (" (shadow)" if r.rule.shadow else ""), r.rule.action, r.rule.reason,
                      format_expr(r.rule.condition))
    Console().print(table)
    for name, version in ruleset.list_versions.items():
        typer.echo(f"@{name}: {len(ruleset.lists[name])} entries, version {version}")


def trace(
    file: Path = typer.Argument(..., help="Ruleset file."),
    input: Path = typer.Argument(..., help="JSON: an Order (featurised on empty state) or an attribute dict."),
    only_hits: bool = typer.Option(False, "--hits", help="Only the rules that hit."),
) -> None:
    """Show which sub-expressions of each rule held for one order, with values."""
    from rules import RuleCompileError, compile_ruleset

    settings = Settings()
    data = json.loads(input.read_text(encoding="utf-8"))
    try:
        ruleset = compile_ruleset(file.read_text(encoding="utf-8"), schema=_schema(settings),
                                  lists=_lists(settings, None), source=str(file))
    except RuleCompileError as exc:
        _fail(exc.lines())
        return
    if isinstance(data, dict) and "order_id" in data and "created_at" in data:
        from detector.wiring import build_featurizer

        attributes = build_featurizer(_memory_settings(settings)).featurize([Order.model_validate(data)])[0]
        attributes.setdefault("text_labels", [])
    else:
        attributes = data
    for t in ruleset.trace(attributes):
        if t.hit or not only_hits:
            typer.echo(t.render())


# -- backtest ----------------------------------------------------------------------------


def _parse_day(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        day = datetime.fromisoformat(text)
    except ValueError as exc:
        raise typer.BadParameter(f"not a date: {text!r} (YYYY-MM-DD)") from exc
    return day if day.tzinfo else day.replace(tzinfo=UTC)


def _label_map(labels: list[Label]) -> dict[str, bool]:
    out: dict[str, bool] = {}
    for lb in sorted(labels, key=lambda lb: lb.created_at):
        out[lb.order_id] = lb.label in ("fraud", "abuse")
    return out


def _model(settings: Settings, schema: FeatureSchema) -> Any:
    from detector.wiring import build_model

    try:
        return build_model(settings, schema=schema)
    except ConfigError as exc:
        log.warning("backtest without model scores (%s): rules reading :model_score: see it missing", exc)
        return None


def backtest(
    rules_file: Path = typer.Option(..., "--rules", exists=True, dir_okay=False, help="Candidate ruleset."),
    events: Path = typer.Option(..., "--events", exists=True, dir_okay=False, help="Order (and Label) JSONL, or the handbook CSV(.gz)."),
    labels: Path | None = typer.Option(None, "--labels", exists=True, dir_okay=False, help="Label JSONL (jsonl format)."),
    format: EventFormat = typer.Option(EventFormat.jsonl, "--format"),
    baseline_file: Path | None = typer.Option(None, "--baseline", help="Current ruleset (default: the configured one)."),
    lists_dir: Path | None = typer.Option(None, "--lists-dir"),
    since: str | None = typer.Option(None, "--since", help="Report orders from this day (YYYY-MM-DD)."),
    until: str | None = typer.Option(None, "--until", help="Report orders before this day."),
    warmup_days: int = typer.Option(37, "--warmup-days", help="Earlier events replayed (not reported) to warm the state: 30-day windows + 7-day label delay."),
    unlabelled: Unlabelled = typer.Option(Unlabelled.legit, "--unlabelled", help="Orders without a label count as legit (chargebacks only come back for fraud) or are skipped."),
    label_delay: int = typer.Option(7 * 86400, "--label-delay-s", help="Handbook labels arrive this long after the transaction."),
    use_model: bool = typer.Option(True, "--model/--no-model", help="Score with the registry's current model."),
    use_text: bool = typer.Option(False, "--text/--no-text", help="Run the text stage (tiers 1-2, no LLM) for :text_labels: and text features."),
    out: Path = typer.Option(Path(".riskwire/backtest"), "--out", help="Directory for report.md and backtest.png."),
) -> None:
    """Replay history through features, the model and a candidate ruleset; report per rule."""
    from rich.console import Console

    from detector.commands._progress import progress_bar
    from detector.wiring import build_featurizer
    from rules import DEFAULT_RULESET_PATH, RuleCompileError, compile_ruleset, run_backtest
    from rules.report import headline, plot_backtest, render_markdown

    console = Console(stderr=True)
    settings = _memory_settings(Settings())
    if format is EventFormat.handbook:
        settings = settings.model_copy(update={"state": settings.state.model_copy(update={"label_delay_s": label_delay})})
    featurizer = build_featurizer(settings)
    schema = attribute_schema(featurizer.schema)
    lists = _lists(settings, lists_dir)
    baseline_path = baseline_file or settings.rules.ruleset_path or DEFAULT_RULESET_PATH
    try:
        candidate = compile_ruleset(rules_file.read_text(encoding="utf-8"), schema=schema, lists=lists, source=str(rules_file))
        baseline = compile_ruleset(Path(baseline_path).read_text(encoding="utf-8"), schema=schema, lists=lists,
                                   source=str(baseline_path))
    except RuleCompileError as exc:
        _fail(exc.lines())
        return
    model = _model(settings, featurizer.schema) if use_model else None
    text_stage = None
    if use_text:
        from detector.wiring import build_text_stage

        # Tiers 1-2 only: a replay must not wait on (or pay for) an LLM.
        text_stage = build_text_stage(settings.model_copy(update={"llm": settings.llm.model_copy(update={"enabled": False})}))

    start, end = _parse_day(since), _parse_day(until)
    t0 = time.perf_counter()
    orders_iter: Iterator[Order]
    if format is EventFormat.handbook:
        from features.handbook import handbook_events, read_handbook

        df = read_handbook(events)
        times = df["TX_DATETIME"].dt.tz_localize("UTC")
        keep = times < end if end is not None else times == times
        if start is not None:
            keep &= times >= start - timedelta(days=warmup_days)
        df = df[keep].reset_index(drop=True)
        truth = dict(zip(df["TRANSACTION_ID"].astype(str), df["TX_FRAUD"].astype(int) == 1, strict=True))
        orders_iter, label_events, total = handbook_events(df, label_delay_s=label_delay)
        data_note = (
            f"Data: the Fraud Detection Handbook's simulated transactions (real data in ../shared/data), "
            f"`{events.name}`; every transaction is labelled (TX_FRAUD); fraud labels reach the "
            f"featuriser {label_delay // 86400} days after the transaction."
        )
    else:
        from features.batch import read_jsonl_events

        orders_list, label_events = read_jsonl_events(events)
        if labels is not None:
            _, extra = read_jsonl_events(labels)
            label_events = sorted([*label_events, *extra], key=lambda lb: lb.created_at)
        if end is not None:
            orders_list = [o for o in orders_list if o.created_at < end]
        if start is not None:
            orders_list = [o for o in orders_list if o.created_at >= start - timedelta(days=warmup_days)]
        truth = _label_map(label_events)
        orders_iter, total = iter(orders_list), len(orders_list)
        data_note = f"Data: `{events.name}` ({'labels from ' + labels.name if labels else 'labels from the same file'}); unlabelled orders count as {unlabelled.value}."
    window = f"{since or 'start'} to {until or 'end'}"
    data_note += (
        f" Reported window: {window} (earlier events warm the state for {warmup_days} days). "
        f"Model: {model.version if model is not None else 'none (no :model_score:)'}; "
        + ("text stage on (tiers 1-2, no LLM)." if text_stage is not None else "text stage off (:text_labels: empty).")
    )

    from features.batch import replay

    progress = progress_bar("orders", console=console)
    task = progress.add_task("backtest", total=total)

    def rows() -> Iterator[tuple[dict[str, Any], bool | None, float]]:
        from detector.engine import score_columns, text_columns

        for batch, frame in replay(featurizer, orders_iter, label_events, batch_size=1000):
            # The attributes the engine would give the rules: text, then the model's scores.
            if text_stage is not None:
                frame = frame.with_columns(text_columns(text_stage.analyze(batch, budget_s=0.0)))
            if model is not None:
                frame = frame.with_columns(score_columns(model.score(frame.numbers(model.feature_names), explain=0)))
            for order, attrs in zip(batch, frame, strict=True):
                if start is not None and order.created_at < start:
                    continue
                attrs.setdefault("text_labels", [])
                label = truth.get(order.order_id)
                if label is None:
                    if unlabelled is Unlabelled.skip:
                        continue
                    label = False
                amount = attrs.get("amount_base")
                if amount is None:
                    amount = float(order.payment.amount or 0)
                yield attrs, label, float(amount)
            progress.advance(task, len(batch))

    with progress:
        result = run_backtest(rows(), candidate=candidate, baseline=baseline)
    elapsed = time.perf_counter() - t0
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    target = out / stamp
    target.mkdir(parents=True, exist_ok=True)
    plot_backtest(result, target / "backtest.png")
    md = render_markdown(
        result,
        title=f"Backtest of {candidate.version} against {baseline.version}",
        data_note=data_note + f" Replayed {total:,} orders in {elapsed:.0f} s.",
        plot_file="backtest.png",
    )
    (target / "report.md").write_text(md, encoding="utf-8")
    typer.echo(headline(result))
    typer.echo(f"report: {target / 'report.md'}")
