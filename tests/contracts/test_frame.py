"""FeatureFrame: every accessor agrees with the rows it stands for."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contracts.frame import FeatureFrame

RECORD_NAMES = ("amount", "country", "flag", "skus", "odd")
BLOCK_NAMES = ("count_1d", "first_order", "ratio")
ORDER = ("amount", "count_1d", "country", "first_order", "flag", "ratio", "skus", "odd", "never_set")

_cell = st.one_of(
    st.none(), st.booleans(), st.integers(-(10**400), 10**400), st.floats(), st.text(max_size=4),
    st.sampled_from(["1.5", "inf", b"2"]), st.lists(st.text(max_size=2), max_size=2), st.decimals(allow_nan=False),
)


def reference_number(v: Any) -> float:
    """How a missing or odd value reads as a number: the rules' semantics, written out."""
    if v is None or isinstance(v, str | bytes):
        return math.nan
    try:
        return float(v)
    except (TypeError, ValueError, OverflowError):
        return math.nan


@st.composite
def frames(draw: st.DrawFn) -> tuple[FeatureFrame, list[dict[str, Any]]]:
    """A frame, and the rows written out by hand from the same values."""
    n = draw(st.integers(0, 6))
    records = [draw(st.fixed_dictionaries({}, optional=dict.fromkeys(RECORD_NAMES, _cell))) for _ in range(n)]
    block = np.array([[draw(st.none() | st.floats(allow_nan=False, allow_infinity=False, width=32)) for _ in BLOCK_NAMES]
                      for _ in range(n)], dtype=object).reshape(n, len(BLOCK_NAMES))
    values = np.where(np.equal(block, None), np.nan, block).astype(np.float64)
    frame = FeatureFrame(records=records, block_names=BLOCK_NAMES, block=values.copy(),
                         block_bools=("first_order",), order=ORDER)
    rows = []
    for rec, vals in zip(records, values.tolist(), strict=True):
        row: dict[str, Any] = dict.fromkeys(ORDER)
        row.update(rec)
        for name, v in zip(BLOCK_NAMES, vals, strict=True):
            row[name] = None if math.isnan(v) else (v != 0 if name == "first_order" else v)
        rows.append(row)
    return frame, rows


def same_numbers(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and bool(np.all((a == b) | (np.isnan(a) & np.isnan(b))))


@settings(max_examples=200, deadline=None)
@given(case=frames())
def test_rows_columns_values_and_numbers_agree(case: tuple[FeatureFrame, list[dict[str, Any]]]) -> None:
    frame, rows = case
    assert len(frame) == len(rows)
    assert frame.rows() == rows and list(frame) == rows
    names = [*ORDER, "not_a_column"]
    for name in names:
        assert frame.column(name) == [r.get(name) for r in rows]
        assert [frame.get(i, name) for i in range(len(rows))] == [r.get(name) for r in rows]
    expected = np.array([[reference_number(r.get(n)) for n in names] for r in rows]).reshape(len(rows), len(names))
    assert same_numbers(frame.numbers(names), expected)
    # Asked again, in another order (the gathered columns are reused).
    assert same_numbers(frame.numbers(names[::-1]), expected[:, ::-1])


@settings(max_examples=100, deadline=None)
@given(case=frames(), data=st.data())
def test_added_columns_win_and_leave_the_original_alone(case: tuple[FeatureFrame, list[dict[str, Any]]],
                                                       data: st.DataObject) -> None:
    frame, rows = case
    n = len(rows)
    amount = frame.numbers(["amount"])  # gathered before the new frame replaces it
    added = {name: data.draw(st.lists(_cell, min_size=n, max_size=n)) for name in ("ratio", "amount", "model_score")}
    new = frame.with_columns(added)
    assert new.rows() == [{**r, **{k: v[i] for k, v in added.items()}} for i, r in enumerate(rows)]
    expected = np.array([[reference_number(v) for v in added[k]] for k in added]).T.reshape(n, len(added))
    assert same_numbers(new.numbers(list(added)), expected)
    assert frame.rows() == rows
    assert same_numbers(frame.numbers(["amount"]), amount)


def test_bools_and_missing_in_the_block() -> None:
    block = np.array([[1.0, 1.0, 0.5], [math.nan, 0.0, math.nan]])
    frame = FeatureFrame(records=[{"country": "PL"}, {}], block_names=BLOCK_NAMES, block=block,
                         block_bools=("first_order",), order=ORDER)
    assert frame.column("first_order") == [True, False]
    assert frame.column("count_1d") == [1.0, None]
    assert frame.get(1, "ratio") is None and frame.get(0, "first_order") is True
    assert frame[-1]["never_set"] is None and frame[1]["country"] is None
    assert frame[0:1] == [frame[0]]
    with pytest.raises(IndexError):
        frame[2]
    # Frames derived from this one share the block: nobody may write into it.
    with pytest.raises(ValueError):
        block[0, 0] = 2.0


def test_shapes_are_checked() -> None:
    with pytest.raises(ValueError, match="shape"):
        FeatureFrame(records=[{}], block_names=("a", "b"), block=np.zeros((1, 3)))
    with pytest.raises(ValueError, match="values for 1 rows"):
        FeatureFrame(records=[{}]).with_columns({"x": [1, 2]})


def test_empty_frame() -> None:
    frame = FeatureFrame(records=[], block_names=BLOCK_NAMES, block=np.empty((0, 3)), order=ORDER)
    assert frame.rows() == [] and frame.column("amount") == []
    assert frame.numbers(["amount", "ratio"]).shape == (0, 2)
