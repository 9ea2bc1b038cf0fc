"""Model commands: ``riskwire train``, ``riskwire evaluate``, ``riskwire models ...``.

- ``train`` fits a bundle from a featurised parquet (or raw events, featurised first
  with ``riskwire featurize``) and saves it to the registry.
- ``evaluate --dataset handbook`` runs the handbook's prequential protocol on a
  featurised parquet and prints AUC ROC, AP and Card Precision@100 per fold.
- ``models list|promote|rollback|challenger`` manage the registry.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Annotated, Any

import typer

from contracts import ConfigError
from detector.settings import Settings

__all__ = ["register"]

HANDBOOK_TRANSFORMED = "transactions_transformed_2018-06-11_2018-09-14.parquet"
DEFAULT_HANDBOOK_FEATURES = Path(".riskwire/handbook_features.parquet")


def _schema() -> Any:
    try:
        from features import build_schema
    except ImportError:
        return None
    return build_schema()


def _load(path: Path, schema: Any, **kwargs: Any) -> Any:
    """The table's schema features when it has them, else every numeric column."""
    from models.training import load_table

    if schema is not None:
        try:
            table = load_table(path, schema=schema, **kwargs)
            if len(table.feature_names) >= 3:
                return table
        except ConfigError:
            pass
    return load_table(path, **kwargs)


def _registry(path: Path | None) -> Any:
    from models import ModelRegistry

    return ModelRegistry(path or Settings().models.registry_dir)


def _progress() -> Any:
    from detector.commands._progress import progress_bar

    return progress_bar()


def train(
    features: Annotated[Path | None, typer.Option(help="Featurised parquet (one row per order).")] = None,
    events: Annotated[Path | None, typer.Option(help="Raw events to featurise first (riskwire featurize).")] = None,
    events_format: Annotated[str, typer.Option("--format", help="Format of --events: jsonl or handbook.")] = "jsonl",
    label_col: Annotated[str | None, typer.Option(help="Label column (default: auto).")] = None,
    time_col: Annotated[str | None, typer.Option(help="Event-time column (default: auto).")] = None,
    since: Annotated[str | None, typer.Option(help="Train on rows at or after this time.")] = None,
    until: Annotated[str | None, typer.Option(help="Train on rows before this time.")] = None,
    registry: Annotated[Path | None, typer.Option(help="Registry dir (default: settings).")] = None,
    min_positives: Annotated[int | None, typer.Option(help="Labels needed for LightGBM.")] = None,
    challenger: Annotated[bool, typer.Option("--challenger", help="Save as the shadow challenger.")] = False,
    promote: Annotated[bool, typer.Option("--promote/--no-promote", help="Make it current.")] = True,
    seed: int = 0,
) -> None:
    """Train a risk model and save it to the registry."""
    import numpy as np

    from models import fit_bundle

    settings = Settings()
    if (features is None) == (events is None):
        raise typer.BadParameter("pass exactly one of --features or --events")
    tmp: tempfile.TemporaryDirectory[str] | None = None
    if events is not None:
        tmp = tempfile.TemporaryDirectory(prefix="riskwire-train-")
        features = Path(tmp.name) / "features.parquet"
        cmd = [sys.executable, "-m", "detector.cli", "featurize", "--input", str(events),
               "--output", str(features), "--format", events_format]
        typer.echo("featurising: " + " ".join(cmd[2:]), err=True)
        if subprocess.run(cmd, check=False).returncode != 0:
            raise typer.Exit(1)
    assert features is not None
    schema = _schema()
    try:
        table = _load(features, schema, label_col=label_col, time_col=time_col, require_label=False)
    except ConfigError as exc:
        raise typer.BadParameter(str(exc)) from None
    keep = np.ones(len(table.times), dtype=bool)
    if since:
        keep &= table.times >= np.datetime64(since)
    if until:
        keep &= table.times < np.datetime64(until)
    X, y, times = table.X[keep], None if table.y is None else table.y[keep], table.times[keep]
    if len(X) < 10:
        raise typer.BadParameter(f"only {len(X)} rows to train on")
    need = min_positives if min_positives is not None else settings.models.min_labels_for_supervised
    with _progress() as bar:
        tasks: dict[str, Any] = {}

        def report(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done, total=total)

        bundle = fit_bundle(X, table.feature_names, y=y, times=times, random_state=seed,
                            min_positives=need, progress=report)
    reg = _registry(registry)
    window = [str(times.min()), str(times.max())]
    meta: dict[str, Any] = {"training_window": window, "source": str(features),
                            "label_column": table.label_col}
    if schema is not None and all(n in schema for n in table.feature_names):
        meta["schema_digest"] = schema.digest
    version = reg.save(bundle, metadata=meta, promote=promote and not challenger,
                       challenger=challenger)
    role = "challenger" if challenger else ("current" if reg.current == version else "saved")
    typer.echo(json.dumps({"version": version, "role": role, "kind": bundle.kind,
                           "rows": len(X), "features": len(table.feature_names),
                           "positives": bundle.metadata.get("positives", 0),
                           "metrics": bundle.metadata.get("supervised", {})}, indent=2))
    if tmp is not None:
        tmp.cleanup()


def evaluate(
    dataset: Annotated[str, typer.Option(help="Protocol to follow: handbook.")] = "handbook",
    features: Annotated[Path | None, typer.Option(help="Featurised parquet (default: riskwire's handbook features).")] = None,
    data: Annotated[Path, typer.Option(help="Folder with the shared handbook data.")] = Path("../shared/data/handbook"),
    label_col: Annotated[str | None, typer.Option(help="Label column (default: auto).")] = None,
    time_col: Annotated[str | None, typer.Option(help="Event-time column (default: auto).")] = None,
    customer_col: Annotated[str | None, typer.Option(help="Customer column (default: auto).")] = None,
    png: Annotated[Path, typer.Option(help="Precision-recall plot to write.")] = Path(".riskwire/handbook_pr.png"),
    json_out: Annotated[Path | None, typer.Option("--json", help="Also write the figures as JSON.")] = None,
    unsupervised: Annotated[bool, typer.Option(help="Evaluate the ensemble alone (no labels used).")] = False,
    seed: int = 0,
) -> None:
    """Evaluate riskwire's models with the handbook's prequential protocol."""
    if dataset != "handbook":
        raise typer.BadParameter("only --dataset handbook is supported")
    if features is None:
        features = DEFAULT_HANDBOOK_FEATURES
        if not features.exists():
            features = data / HANDBOOK_TRANSFORMED
            typer.echo(f"no riskwire features at {DEFAULT_HANDBOOK_FEATURES}; using the handbook's own "
                       f"features ({features})", err=True)
    if not features.exists():
        raise typer.BadParameter(f"{features} does not exist")
    try:
        table = _load(features, _schema(), label_col=label_col, time_col=time_col,
                      customer_col=customer_col)
    except ConfigError as exc:
        raise typer.BadParameter(str(exc)) from None
    if table.customers is None or table.y is None:
        raise typer.BadParameter("the table needs a label and a customer column")
    typer.echo(f"{features}: {len(table.times)} rows, {len(table.feature_names)} features, "
               f"label {table.label_col}", err=True)
    result = run_handbook(table, unsupervised=unsupervised, seed=seed, png=png)
    _print_results(result)
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(result, indent=2, default=str))


def run_handbook(table: Any, *, unsupervised: bool = False, seed: int = 0,
                 png: Path | None = None) -> dict[str, Any]:
    """Fit and score each prequential fold; returns per-fold and mean metrics."""
    import numpy as np

    from models import fit_bundle
    from models.evaluation import fold_metrics, mean_metrics, prequential_folds

    days = table.days
    y = np.nan_to_num(table.y).astype(np.int64)
    folds = prequential_folds(days, table.customers, y)
    per_fold: list[dict[str, Any]] = []
    curves = []
    with _progress() as bar:
        task = bar.add_task("prequential folds", total=len(folds))
        for fold in folds:
            tr, te = fold.train, fold.test
            bundle = fit_bundle(
                table.X[tr], table.feature_names, y=None if unsupervised else y[tr],
                times=table.times[tr], random_state=seed, min_positives=1)
            scores = bundle.score(table.X[te], explain=0).risk
            m = fold_metrics(y[te], scores, days=days[te], customers=table.customers[te])
            m.update({"train_start": str(fold.train_start), "test_start": str(fold.test_start),
                      "train_rows": len(tr), "test_rows": len(te),
                      "test_positives": int(y[te].sum()), "kind": bundle.kind})
            per_fold.append(m)
            curves.append((str(fold.test_start), y[te], scores))
            bar.advance(task)
    keys = ("auc_roc", "average_precision", "card_precision@100")
    out = {"folds": per_fold, "mean": mean_metrics([{k: f[k] for k in keys} for f in per_fold]),
           "std": {k: float(np.std([f[k] for f in per_fold])) for k in keys},
           "features": list(table.feature_names)}
    if png is not None:
        _plot_pr(curves, png)
        out["png"] = str(png)
    return out


def _plot_pr(curves: list[tuple[str, Any, Any]], png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import average_precision_score, precision_recall_curve

    png.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(6, 5))
    for label, y, s in curves:
        p, r, _ = precision_recall_curve(y, s)
        ax.plot(r, p, label=f"test from {label} (AP {average_precision_score(y, s):.3f})")
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_title("riskwire on the handbook, prequential test folds")
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    fig.savefig(png, dpi=100)
    plt.close(fig)


def _print_results(result: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title="handbook prequential evaluation")
    for col in ("train from", "test from", "kind", "test rows", "frauds", "AUC ROC", "AP", "CP@100"):
        t.add_column(col, justify="right")
    for f in result["folds"]:
        t.add_row(f["train_start"], f["test_start"], f["kind"], str(f["test_rows"]),
                  str(f["test_positives"]), f"{f['auc_roc']:.3f}", f"{f['average_precision']:.3f}",
                  f"{f['card_precision@100']:.3f}")
    m, s = result["mean"], result["std"]
    t.add_row("mean", "", "", "", "", f"{m['auc_roc']:.3f}±{s['auc_roc']:.3f}",
              f"{m['average_precision']:.3f}±{s['average_precision']:.3f}",
              f"{m['card_precision@100']:.3f}±{s['card_precision@100']:.3f}")
    console = Console(width=120)
    console.print(t)
    if "png" in result:
        console.print(f"precision-recall plot: {result['png']}")


# -- registry ------------------------------------------------------------------------
models_app = typer.Typer(help="Model registry: list, promote, roll back, challenger.",
                         no_args_is_help=True)


@models_app.command("list")
def list_models(registry: Annotated[Path | None, typer.Option(help="Registry dir.")] = None) -> None:
    """List saved model versions with their role, kind and metrics."""
    rows = _registry(registry).list()
    if not rows:
        typer.echo("no models")
        return
    for r in rows:
        if r.get("role") == "corrupt":
            typer.echo(f"{r['version']}  CORRUPT  {r['error']}")
            continue
        metrics = ", ".join(f"{k}={v:.3f}" for k, v in r["metrics"].items()
                            if k in ("valid_auc", "valid_ap"))
        typer.echo(f"{r['version']}  {r['role'] or '-':<10} {r['kind']:<12} "
                   f"features={r['features']:<4} schema={r['schema_digest'] or '-'}  "
                   f"created={r['created_at'][:19]}  {metrics}")


@models_app.command("promote")
def promote_model(version: str, registry: Annotated[Path | None, typer.Option(help="Registry dir.")] = None) -> None:
    """Make VERSION the current model."""
    try:
        _registry(registry).promote(version)
    except ConfigError as exc:
        raise typer.BadParameter(str(exc)) from None
    typer.echo(f"current: {version}")


@models_app.command("rollback")
def rollback_model(registry: Annotated[Path | None, typer.Option(help="Registry dir.")] = None) -> None:
    """Return to the model that was current before the last promotion."""
    try:
        version = _registry(registry).rollback()
    except ConfigError as exc:
        raise typer.BadParameter(str(exc)) from None
    typer.echo(f"current: {version}")


@models_app.command("challenger")
def challenger_model(
    version: Annotated[str | None, typer.Argument(help="Version to shadow (omit with --clear).")] = None,
    clear: Annotated[bool, typer.Option("--clear", help="Remove the challenger.")] = False,
    registry: Annotated[Path | None, typer.Option(help="Registry dir.")] = None,
) -> None:
    """Score VERSION in shadow beside the current model (recorded, never acted on)."""
    if (version is None) != clear:
        raise typer.BadParameter("pass a VERSION or --clear")
    try:
        _registry(registry).set_challenger(None if clear else version)
    except ConfigError as exc:
        raise typer.BadParameter(str(exc)) from None
    typer.echo(f"challenger: {version or 'none'}")


def register(app: typer.Typer) -> None:
    app.command("train")(train)
    app.command("evaluate")(evaluate)
    app.add_typer(models_app, name="models")
