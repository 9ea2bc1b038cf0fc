"""``riskwire features`` (print the feature schema) and ``riskwire featurize`` (training sets)."""

from __future__ import annotations

import re
from enum import StrEnum
from pathlib import Path

import typer

__all__ = ["parse_duration", "register"]

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(text: str) -> int:
    """``7d``, ``12h``, ``90m``, ``3600s`` or plain seconds -> seconds."""
    m = re.fullmatch(r"\s*(\d+)\s*([smhdw]?)\s*", text)
    if not m:
        raise typer.BadParameter(f"not a duration: {text!r} (e.g. 7d, 12h, 3600)")
    return int(m.group(1)) * _UNITS.get(m.group(2) or "s", 1)


class InputFormat(StrEnum):
    jsonl = "jsonl"
    handbook = "handbook"


class StateBackend(StrEnum):
    memory = "memory"
    redis = "redis"


def register(app: typer.Typer) -> None:
    @app.command("features")
    def features_cmd(
        model_inputs_only: bool = typer.Option(False, "--model-inputs", help="Only the numeric model inputs."),
    ) -> None:
        """Print the feature schema: name, type, unit, description."""
        from rich.console import Console
        from rich.table import Table

        from features import OrderFeaturizer

        f = OrderFeaturizer()
        table = Table(title=f"riskwire features ({f.version}, {len(f.schema)} features)")
        table.add_column("name", no_wrap=True)
        for col in ("type", "unit", "model", "description"):
            table.add_column(col, overflow="fold")
        for spec in f.schema:
            if model_inputs_only and not (spec.model_input and spec.type in ("number", "bool")):
                continue
            table.add_row(spec.name, spec.type, spec.unit, "yes" if spec.model_input else "", spec.description)
        Console().print(table)

    @app.command("featurize")
    def featurize_cmd(
        input: Path = typer.Option(..., "--input", exists=True, dir_okay=False, help="Order/Label JSONL, or the handbook CSV(.gz)."),
        output: Path = typer.Option(..., "--output", help="Parquet file to write."),
        format: InputFormat = typer.Option(InputFormat.jsonl, "--format"),
        label_delay: str = typer.Option("7d", "--label-delay", help="Delayed-label risk windows end this long before each order; handbook labels arrive this long after the transaction."),
        state: StateBackend = typer.Option(StateBackend.memory, "--state"),
        redis_url: str = typer.Option("redis://127.0.0.1:6379/0", "--redis-url"),
        key_prefix: str = typer.Option("rw-featurize", "--key-prefix", help="Redis key prefix; keep it apart from live state."),
        keep_state: bool = typer.Option(False, "--keep-state", help="Leave the replayed state in Redis (default: delete it)."),
        batch_size: int = typer.Option(500, "--batch-size", min=1),
        limit: int | None = typer.Option(None, "--limit", help="Only the first N events (by event time)."),
    ) -> None:
        """Featurise history through the streaming code path, in event-time order, to Parquet."""
        from detector.commands._progress import progress_bar
        from detector.settings import Settings
        from features import OrderFeaturizer, build_state
        from features.batch import read_jsonl_events, replay, write_parquet

        delay = parse_duration(label_delay)
        live = Settings().state  # the worker's lateness and bucket sizes: training sees what serving does
        store = build_state(state.value, redis_url=redis_url, key_prefix=key_prefix)
        featurizer = OrderFeaturizer(state=store, label_delay_s=delay, allowed_lateness_s=live.allowed_lateness_s,
                                     resolutions=live.resolutions)
        extra = None
        console_msg = ""
        if format is InputFormat.handbook:
            import pyarrow as pa

            from features.handbook import handbook_events, read_handbook

            df = read_handbook(input, nrows=limit)
            fraud_ids = set(df.loc[df["TX_FRAUD"] == 1, "TRANSACTION_ID"].astype(str))
            orders, labels, n = handbook_events(df, label_delay_s=delay)
            extra = {"TRANSACTION_ID": (pa.int64(), lambda o: int(o.order_id))}
            console_msg = f"handbook: {n} transactions, {len(labels)} fraud labels after {label_delay}"
        else:
            order_list, labels = read_jsonl_events(input)
            if limit is not None:
                order_list = order_list[:limit]
            fraud_ids = {lb.order_id for lb in labels if lb.label in ("fraud", "abuse")}
            orders, n = iter(order_list), len(order_list)
            console_msg = f"jsonl: {n} orders, {len(labels)} labels"
        typer.echo(console_msg, err=True)
        from detector.runtime import tune_gc

        tune_gc()  # as the worker does: millions of order records, few cycles
        try:
            with progress_bar("{task.fields[rate]}") as progress:
                task = progress.add_task("featurize", total=n, rate="")
                import time

                started = time.perf_counter()
                done = 0

                def advance(k: int) -> None:
                    nonlocal done
                    done += k
                    rate = done / max(time.perf_counter() - started, 1e-9)
                    progress.update(task, advance=k, rate=f"{rate:,.0f} orders/s")

                total = write_parquet(
                    featurizer,
                    replay(featurizer, orders, labels, batch_size=batch_size),
                    output,
                    label_of=lambda oid: 1 if oid in fraud_ids else 0,
                    extra=extra,
                    progress=advance,
                )
        finally:
            if state is StateBackend.redis and not keep_state:
                store.clear()  # type: ignore[attr-defined]
            store.close()
        typer.echo(f"wrote {total} rows x {len(featurizer.schema)} features to {output} ({featurizer.version})", err=True)
