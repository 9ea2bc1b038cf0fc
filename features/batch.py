"""Offline featurisation for training: replay events through the streaming featuriser.

Orders and labels are merged in event-time order (a label is applied before any order
at or after its ``created_at``) and the orders go through
:meth:`OrderFeaturizer.featurize` in micro-batches, exactly as the stream does; rows are
written to Parquet in chunks so memory stays flat, column by column from each batch's
:class:`~contracts.frame.FeatureFrame`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from contracts import InvalidEvent, Label, Order
from contracts.frame import FeatureFrame
from features.featurizer import OrderFeaturizer

__all__ = ["arrow_schema", "read_jsonl_events", "replay", "write_parquet"]


def read_jsonl_events(path: Path) -> tuple[list[Order], list[Label]]:
    """Orders and Labels from a JSONL file (a line with a ``label`` field is a Label)."""
    import gzip

    from pydantic import ValidationError

    opener = gzip.open if str(path).endswith(".gz") else open
    orders: list[Order] = []
    labels: list[Label] = []
    with opener(path, "rt", encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            line = line.strip()
            if not line:
                continue
            try:
                data = json.loads(line)
                if "label" in data and "customer" not in data:
                    labels.append(Label.model_validate(data))
                else:
                    orders.append(Order.model_validate(data))
            except (ValueError, ValidationError) as exc:
                raise InvalidEvent(f"{path}:{n}: {str(exc)[:300]}") from exc
    orders.sort(key=lambda o: o.created_at)
    labels.sort(key=lambda lb: lb.created_at)
    return orders, labels


def replay(
    featurizer: OrderFeaturizer,
    orders: Iterable[Order],
    labels: Iterable[Label],
    *,
    batch_size: int = 500,
) -> Iterator[tuple[list[Order], FeatureFrame]]:
    """Yield (orders, features) per micro-batch; labels applied when their time has come.

    ``orders`` and ``labels`` must each be sorted by event time.
    """
    pending = list(labels)
    li = 0
    batch: list[Order] = []

    def due(t: float) -> int:
        nonlocal li
        start = li
        while li < len(pending) and pending[li].created_at.timestamp() <= t:
            li += 1
        return li - start

    next_due = pending[0].created_at.timestamp() if pending else float("inf")
    for order in orders:
        t = order.created_at.timestamp()
        if t >= next_due:
            if batch:
                yield batch, featurizer.featurize(batch)
                batch = []
            start = li
            due(t)
            featurizer.apply_labels(pending[start:li])
            next_due = pending[li].created_at.timestamp() if li < len(pending) else float("inf")
        batch.append(order)
        if len(batch) >= batch_size:
            yield batch, featurizer.featurize(batch)
            batch = []
    if batch:
        yield batch, featurizer.featurize(batch)


def arrow_schema(featurizer: OrderFeaturizer, extra: list[tuple[str, Any]] | None = None) -> Any:
    import pyarrow as pa

    types = {"number": pa.float64(), "bool": pa.bool_(), "string": pa.string(), "string_list": pa.list_(pa.string())}
    fields = [pa.field("order_id", pa.string()), pa.field("event_time", pa.timestamp("us", tz="UTC"))]
    fields += [pa.field(name, typ) for name, typ in (extra or [])]
    fields += [pa.field(s.name, types[s.type]) for s in featurizer.schema]
    fields.append(pa.field("label", pa.int8()))
    return pa.schema(fields)


def write_parquet(
    featurizer: OrderFeaturizer,
    batches: Iterable[tuple[list[Order], FeatureFrame]],
    output: Path,
    *,
    label_of: Callable[[str], int],
    extra: dict[str, tuple[Any, Callable[[Order], Any]]] | None = None,
    chunk_rows: int = 50_000,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Write every row to ``output``; returns the number of rows."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    extra = extra or {}
    schema = arrow_schema(featurizer, [(k, t) for k, (t, _) in extra.items()])
    numbers = [s.name for s in featurizer.schema if s.type == "number"]
    others = [s.name for s in featurizer.schema if s.type != "number"]
    output.parent.mkdir(parents=True, exist_ok=True)
    total = 0
    # Per column, one piece per batch: Python lists, or float arrays (NaN = missing) for numbers.
    cols: dict[str, list[Any]] = {f.name: [] for f in schema}
    pending = 0

    def column(name: str, pieces: list[Any]) -> Any:
        typ = schema.field(name).type
        if pieces and isinstance(pieces[0], np.ndarray):
            values = np.concatenate(pieces)
            return pa.array(values, type=typ, mask=np.isnan(values))
        return pa.array([v for piece in pieces for v in piece], type=typ)

    def flush(writer: Any) -> None:
        table = pa.table({k: column(k, v) for k, v in cols.items()}, schema=schema)
        writer.write_table(table)
        for v in cols.values():
            v.clear()

    with pq.ParquetWriter(output, schema, compression="zstd") as writer:
        for orders, frame in batches:
            cols["order_id"].append([o.order_id for o in orders])
            cols["event_time"].append([o.created_at for o in orders])
            for k, (_, fn) in extra.items():
                cols[k].append([fn(o) for o in orders])
            matrix = frame.numbers(numbers)
            for j, name in enumerate(numbers):
                cols[name].append(matrix[:, j])
            for name in others:
                cols[name].append(frame.column(name))
            cols["label"].append([label_of(o.order_id) for o in orders])
            total += len(orders)
            pending += len(orders)
            if pending >= chunk_rows:
                flush(writer)
                pending = 0
            if progress is not None:
                progress(len(orders))
        if pending:
            flush(writer)
    return total
