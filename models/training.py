"""Featurised tables for training and evaluation: column detection and matrix building.

A featurised table (parquet) has one row per order: an id, an event time, a label,
often a customer id, and the numeric feature columns. The feature columns are, in
order of preference: the names given explicitly, the feature schema's model inputs
present in the table, or every numeric column that is not an id, a time or a label.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from contracts.errors import ConfigError
from contracts.schema import FeatureSchema

__all__ = ["Table", "load_table"]

LABEL_COLUMNS = ("label", "TX_FRAUD", "is_fraud", "fraud")
TIME_COLUMNS = ("event_time", "created_at", "TX_DATETIME", "timestamp")
CUSTOMER_COLUMNS = ("customer_id", "CUSTOMER_ID")
#: Never model inputs: identifiers, raw times, and the handbook's answer key.
NOT_FEATURES = frozenset({
    "TRANSACTION_ID", "order_id", "TX_TIME_SECONDS", "TX_TIME_DAYS", "TX_FRAUD_SCENARIO",
    "TERMINAL_ID", "CUSTOMER_ID", "customer_id", "merchant_id", "label_source",
})


@dataclass
class Table:
    X: np.ndarray
    feature_names: tuple[str, ...]
    y: np.ndarray | None
    times: np.ndarray  # datetime64[ns], naive wall clock
    customers: np.ndarray | None
    label_col: str | None
    time_col: str

    @property
    def days(self) -> np.ndarray:
        """Whole days since 2018-04-01 (the handbook's TX_TIME_DAYS)."""
        day0 = np.datetime64("2018-04-01T00:00:00", "ns")
        return ((self.times - day0) // np.timedelta64(1, "D")).astype(np.int64)

    def window(self) -> tuple[str, str]:
        return str(self.times.min()), str(self.times.max())


def _pick(columns: Sequence[str], given: str | None, candidates: Sequence[str], what: str,
          *, required: bool) -> str | None:
    if given is not None:
        if given not in columns:
            raise ConfigError(f"{what} column {given!r} not in the table")
        return given
    for c in candidates:
        if c in columns:
            return c
    if required:
        raise ConfigError(f"no {what} column found (tried {', '.join(candidates)}); pass it explicitly")
    return None


def load_table(
    path: str | Path,
    *,
    label_col: str | None = None,
    time_col: str | None = None,
    customer_col: str | None = None,
    features: Sequence[str] | None = None,
    schema: FeatureSchema | None = None,
    exclude: Sequence[str] = (),
    require_label: bool = True,
) -> Table:
    """Read a featurised parquet into a :class:`Table` (rows in event-time order)."""
    import pandas as pd
    import pyarrow.parquet as pq

    arrow_schema = pq.read_schema(path)
    cols = list(arrow_schema.names)
    label = _pick(cols, label_col, LABEL_COLUMNS, "label", required=require_label)
    tcol = _pick(cols, time_col, TIME_COLUMNS, "event-time", required=True)
    ccol = _pick(cols, customer_col, CUSTOMER_COLUMNS, "customer", required=False)
    assert tcol is not None
    skip = set(NOT_FEATURES) | set(exclude) | {c for c in (label, tcol, ccol) if c}
    if features is not None:
        names = [f for f in features if f not in skip]
        missing = [f for f in names if f not in cols]
        if missing:
            raise ConfigError(f"feature columns not in the table: {missing[:5]}")
    elif schema is not None:
        names = [n for n in schema.model_inputs() if n in cols and n not in skip]
    else:
        import pyarrow as pa

        def numeric(name: str) -> bool:
            t = arrow_schema.field(name).type
            return pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t)

        names = [c for c in cols if c not in skip and not c.lower().endswith("_id") and numeric(c)]
    if not names:
        raise ConfigError("no feature columns found")
    # read only the columns used, batch by batch into one preallocated matrix: a wide
    # featurised table (1.75M rows x 200 columns) would otherwise be held 3 times over
    pf = pq.ParquetFile(path)
    extra = [c for c in (label, tcol, ccol) if c]
    X = np.empty((pf.metadata.num_rows, len(names)), dtype=np.float64)
    others: dict[str, list[Any]] = {c: [] for c in extra}
    row = 0
    for batch in pf.iter_batches(columns=[*names, *extra], batch_size=65_536):
        n = batch.num_rows
        for j, name in enumerate(names):
            col = batch.column(name).to_pandas()
            X[row:row + n, j] = pd.to_numeric(col, errors="coerce").astype("float64").to_numpy()
        for c in extra:
            others[c].append(batch.column(c).to_pandas())
        row += n
    cols_df = {c: pd.concat(v, ignore_index=True) for c, v in others.items()}
    times = pd.to_datetime(cols_df[tcol])
    if getattr(times.dt, "tz", None) is not None:
        times = times.dt.tz_convert("UTC").dt.tz_localize(None)
    t = times.to_numpy(dtype="datetime64[ns]")
    if len(t) > 1 and not bool((t[1:] >= t[:-1]).all()):
        order = np.argsort(t, kind="stable")
        X, t = X[order], t[order]
        cols_df = {c: v.iloc[order].reset_index(drop=True) for c, v in cols_df.items()}
    y: Any = None
    if label is not None:
        raw = cols_df[label]
        if raw.dtype == object:
            raw = raw.map(lambda v: 1.0 if v in ("fraud", "abuse", True, 1, "1") else
                          (np.nan if v is None else 0.0))
        y = pd.to_numeric(raw, errors="coerce").astype("float64").to_numpy()
    customers = cols_df[ccol].to_numpy() if ccol else None
    return Table(X=X, feature_names=tuple(names), y=y, times=t,
                 customers=customers, label_col=label, time_col=tcol)
