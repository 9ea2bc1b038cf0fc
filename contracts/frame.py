"""A micro-batch's features, column-wise: what the featuriser hands to the engine.

The order featuriser computes most features in one compiled call per micro-batch, into
a float matrix; the rest (strings, lists, the static numbers) come per order. Turning
that matrix back into one dict per order (~170 inserts each) used to cost as much as
computing it, and every consumer then rebuilt columns from the dicts: the models a
matrix, the rules a few dozen values, the drift monitor a column per feature. So the
featuriser returns a :class:`FeatureFrame`, and each consumer reads what it needs:

- ``numbers(names)``: a float matrix in the given column order (models, drift,
  Parquet), NaN where a value is missing or not numeric, bools as 0/1;
- ``column(name)``: one feature's values as Python objects, ``None`` when missing
  (rules' strings and lists, Parquet);
- ``get(i, name)``: one value (a reason's evidence);
- ``frame[i]`` / ``rows()``: whole rows as dicts, keyed like the schema (tests, CLI,
  anything that wants a row; this is the slow path).

A frame is immutable: ``with_columns`` returns a new frame that shares the data and
adds columns (the engine's text features and model scores, which the rules read).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from operator import itemgetter
from typing import Any, overload

import numpy as np

__all__ = ["FeatureFrame"]

_NAN = float("nan")


class FeatureFrame(Sequence[dict[str, Any]]):
    """Features of ``n`` orders: per-order dicts, one float block and added columns.

    Parameters
    ----------
    records : list of dict
        Per order, values by name (``None`` = missing); any subset of the names.
    block_names : tuple of str
        Names of the columns of ``block``.
    block : ndarray of float64, shape (n, len(block_names))
        Values with NaN = missing. Not copied: the caller hands it over.
    block_bools : tuple of str
        Block columns that are bools (0/1 in the block, ``True``/``False`` in rows).
    order : tuple of str
        Key order of materialised rows (the feature schema's): every row carries every
        one of these names, ``None`` where missing.
    """

    __slots__ = ("_block", "_block_bools", "_block_col", "_extra", "_n", "_numbers", "_order", "_records")

    def __init__(
        self,
        *,
        records: list[dict[str, Any]],
        block_names: tuple[str, ...] = (),
        block: np.ndarray | None = None,
        block_bools: tuple[str, ...] = (),
        order: tuple[str, ...] = (),
    ) -> None:
        n = len(records)
        if block is None:
            block = np.empty((n, 0))
        if block.shape != (n, len(block_names)):
            raise ValueError(f"block of shape {block.shape} for {n} rows and {len(block_names)} names")
        block.flags.writeable = False  # shared by every frame derived from this one
        self._records = records
        self._block = block
        self._block_col = {name: j for j, name in enumerate(block_names)}
        self._block_bools = frozenset(block_bools)
        self._order = order
        self._extra: dict[str, list[Any]] = {}
        self._n = n
        # Static numbers gathered from the records on first use, per name (models, rules
        # and drift ask for overlapping sets).
        self._numbers: dict[str, np.ndarray] = {}

    @classmethod
    def from_rows(cls, rows: Sequence[Mapping[str, Any]]) -> FeatureFrame:
        """A frame over plain dict rows (return requests, tests)."""
        return cls(records=[dict(r) for r in rows])

    # ------------------------------------------------------------------ Sequence
    def __len__(self) -> int:
        return self._n

    @overload
    def __getitem__(self, i: int) -> dict[str, Any]: ...

    @overload
    def __getitem__(self, i: slice) -> list[dict[str, Any]]: ...

    def __getitem__(self, i: int | slice) -> dict[str, Any] | list[dict[str, Any]]:
        if isinstance(i, slice):
            return [self._row(k) for k in range(*i.indices(self._n))]
        if not -self._n <= i < self._n:
            raise IndexError(i)
        return self._row(i % self._n)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return (self._row(i) for i in range(self._n))

    def rows(self) -> list[dict[str, Any]]:
        """Every row as a dict (``None`` = missing)."""
        return [self._row(i) for i in range(self._n)]

    def __repr__(self) -> str:
        return f"FeatureFrame({self._n} rows, {len(self._block_col)} block and {len(self._extra)} added columns)"

    # ------------------------------------------------------------------ columns
    def column(self, name: str) -> list[Any]:
        """One feature's values as Python objects, ``None`` where missing (or where the
        frame has no such column)."""
        values = self._extra.get(name)
        if values is not None:
            return list(values)
        j = self._block_col.get(name)
        if j is not None:
            col = self._block[:, j]
            out: list[Any] = (col != 0).tolist() if name in self._block_bools else col.tolist()
            for k in np.flatnonzero(np.isnan(col)).tolist():
                out[k] = None
            return out
        return [r.get(name) for r in self._records]

    def numbers(self, names: Sequence[str]) -> np.ndarray:
        """A ``(n, len(names))`` float matrix in ``names`` order: NaN where a value is
        missing or not a number (or the frame has no such column), bools as 0/1."""
        out = np.empty((self._n, len(names)))
        in_block = [(k, self._block_col[name]) for k, name in enumerate(names)
                    if name in self._block_col and name not in self._extra]
        if in_block:
            ks, js = zip(*in_block, strict=True)
            out[:, list(ks)] = self._block[:, list(js)]
            for k in (k for k, name in enumerate(names) if name in self._block_bools and name not in self._extra):
                col = out[:, k]
                out[:, k] = np.where(np.isnan(col), col, col != 0)  # a bool reads as 0/1, as in its rows
        rest = [(k, name) for k, name in enumerate(names) if name not in self._block_col or name in self._extra]
        self._gather([name for _, name in rest])
        for k, name in rest:
            out[:, k] = self._numbers[name]
        return out

    def _gather(self, names: list[str]) -> None:
        """Numbers of these (non-block) columns, converted once per frame: models, rules and
        the drift monitor ask for overlapping sets."""
        todo = [n for n in dict.fromkeys(names) if n not in self._numbers]
        for name in [n for n in todo if n in self._extra]:
            self._numbers[name] = _as_numbers(np.fromiter(self._extra[name], dtype=object, count=self._n))
        todo = [n for n in todo if n not in self._extra]
        if not todo:
            return
        if not self._n:
            for name in todo:
                self._numbers[name] = np.empty(0)
            return
        get = itemgetter(*todo) if len(todo) > 1 else (lambda r, _n=todo[0]: (r[_n],))
        try:
            # Records carry every name of the row order: one C-level gather per record.
            cells = [get(r) for r in self._records]
        except KeyError:
            cells = [tuple(r.get(n) for n in todo) for r in self._records]
        for name, values in zip(todo, zip(*cells, strict=True), strict=True):
            # fromiter: one object per cell, even where a cell holds a list (np.array would nest).
            self._numbers[name] = _as_numbers(np.fromiter(values, dtype=object, count=self._n))

    def get(self, i: int, name: str) -> Any:
        """Row ``i``'s value of ``name``, ``None`` when missing."""
        values = self._extra.get(name)
        if values is not None:
            return values[i]
        j = self._block_col.get(name)
        if j is not None:
            v = float(self._block[i, j])
            if v != v:
                return None
            return v != 0 if name in self._block_bools else v
        return self._records[i].get(name)

    def with_columns(self, columns: Mapping[str, Sequence[Any]]) -> FeatureFrame:
        """A new frame with these columns added (or replaced), sharing this one's data."""
        for name, values in columns.items():
            if len(values) != self._n:
                raise ValueError(f"column {name!r} has {len(values)} values for {self._n} rows")
        new = object.__new__(FeatureFrame)
        new._records, new._block, new._block_col = self._records, self._block, self._block_col
        new._block_bools, new._order, new._n = self._block_bools, self._order, self._n
        new._extra = {**self._extra, **{k: list(v) for k, v in columns.items()}}
        new._numbers = {k: v for k, v in self._numbers.items() if k not in columns}
        return new

    # ------------------------------------------------------------------ rows
    def _row(self, i: int) -> dict[str, Any]:
        row = dict.fromkeys(self._order)
        row.update(self._records[i])
        if self._block_col:
            block = self._block[i]
            values = block.tolist()
            for j in np.flatnonzero(np.isnan(block)).tolist():
                values[j] = None
            row.update(zip(self._block_col, values, strict=True))  # keys in column order
            for name in self._block_bools:
                if row[name] is not None:
                    row[name] = row[name] != 0
        for name, col in self._extra.items():
            row[name] = col[i]
        return row


#: Cell types that convert to float64 as the rules read numbers (a string never does).
_PLAIN = frozenset({float, int, bool, type(None)})


def _as_numbers(cells: np.ndarray) -> np.ndarray:
    """An object array of Python values -> float64: None, strings and other non-numbers NaN."""
    if set(map(type, cells.tolist())) <= _PLAIN:
        cells = cells.copy()
        cells[np.equal(cells, None)] = _NAN
        try:
            return cells.astype(np.float64)
        except OverflowError:  # an int beyond float range
            pass
    return np.array([_number(v) for v in cells.tolist()], dtype=np.float64)


def _number(v: Any) -> float:
    if isinstance(v, str | bytes):
        return _NAN
    try:
        return float(v)
    except (TypeError, ValueError, OverflowError):
        return _NAN
