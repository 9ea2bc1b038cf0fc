"""Compiled (numba) loops of the embedding's forward pass: the work around the GEMMs.

:class:`features.text.embed._Forward` keeps its matrix products in numpy (BLAS); what
lies between them was a dozen numpy passes per n-gram order, each over a temporary the
size of the micro-batch (gathers of whole table rows, shifted sums, the window
matrices, bias and residual). These loops do the same float operations on the same
values in the same order (only additions and a maximum, element by element), so the
vectors are bit-identical to the numpy formulation they replace; they read from the
token-row table only the blocks they need, and write each result once.

Numba compiles on first use and caches the machine code next to this file
(``cache=True``), as ``features.state.kernels`` does.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["first_layer", "row_dot", "row_stats", "row_sum", "second_layer_out"]


@njit(cache=True, nogil=True)
def first_layer(rows: np.ndarray, at: np.ndarray, real: np.ndarray, q_off: int, p_off: int, n: int, left: int,
                h: np.ndarray, win: np.ndarray) -> None:
    """One n-gram order's first layer and the second layer's input windows.

    ``rows``: the token-row table; ``at``: its slot per row of the flat layout (0, the
    zero row, for the gaps); ``real``: the flat positions of the real tokens. Fills
    ``h[p] = max(sum_k rows[at[p - left + k], q_off + k*c : ...], 0) + rows[at[p], p_off : p_off + c]``
    at the real rows (the sum from k = 0 up, as ``np.add`` then ``+=`` computed it; the
    gaps stay zero) and ``win[m] = h[real[m] - left : real[m] - left + n].ravel()``.
    """
    c = h.shape[1]
    h[:] = 0.0
    acc = np.empty(c, dtype=np.float32)
    for m in range(real.shape[0]):
        p = real[m]
        r0 = rows[at[p - left], q_off : q_off + c]
        r1 = rows[at[p - left + 1], q_off + c : q_off + 2 * c]
        for j in range(c):
            acc[j] = r0[j] + r1[j]
        for k in range(2, n):
            rk = rows[at[p - left + k], q_off + k * c : q_off + (k + 1) * c]
            for j in range(c):
                acc[j] += rk[j]
        proj = rows[at[p], p_off : p_off + c]
        hp = h[p]
        for j in range(c):
            a = acc[j]
            hp[j] = (a if a > 0.0 or a != a else np.float32(0.0)) + proj[j]
    for m in range(real.shape[0]):
        p = real[m]
        for k in range(n):
            hk = h[p - left + k]
            wk = win[m, k * c : (k + 1) * c]
            for j in range(c):
                wk[j] = hk[j]


@njit(cache=True, nogil=True)
def second_layer_out(out: np.ndarray, bias: np.ndarray, h: np.ndarray, real: np.ndarray,
                     sums: np.ndarray, squares: np.ndarray) -> None:
    """In place: ``out = max(out + bias, 0) + h[real]`` (bias, ReLU, residual); then each
    row's :func:`row_sum` and :func:`row_dot` into ``sums`` and ``squares``."""
    c = out.shape[1]
    scratch = _scratch()
    for m in range(out.shape[0]):
        o = out[m]
        hp = h[real[m]]
        for j in range(c):
            a = o[j] + bias[j]
            o[j] = (a if a > 0.0 or a != a else np.float32(0.0)) + hp[j]
        sums[m] = _row_sum(o, scratch)
        squares[m] = row_dot(o)


@njit(cache=True, nogil=True)
def row_stats(x: np.ndarray, sums: np.ndarray, squares: np.ndarray) -> None:
    """Per row of ``x``: ``x.sum(axis=1)`` and ``np.einsum("ij,ij->i", x, x)``, bit for bit."""
    scratch = _scratch()
    for m in range(x.shape[0]):
        sums[m] = _row_sum(x[m], scratch)
        squares[m] = row_dot(x[m])


# numpy's float32 reductions, operation for operation (``tests/text/test_embed_kernels.py``
# checks them against numpy itself): ``add.reduce`` over a contiguous row is a pairwise
# sum (eight running sums per block of up to 128, blocks halved at multiples of 8), and
# einsum's contiguous two-operand product sum runs four 4-lane accumulators (separate
# multiply and add, blocks of 16 taken last lane-group first) folded by two horizontal adds.
@njit(cache=True, nogil=True)
def _pairwise_leaf(a: np.ndarray, lo: int, n: int) -> np.float32:
    if n < 8:
        res = np.float32(-0.0)
        for i in range(n):
            res += a[lo + i]
        return res
    r0, r1, r2, r3 = a[lo], a[lo + 1], a[lo + 2], a[lo + 3]
    r4, r5, r6, r7 = a[lo + 4], a[lo + 5], a[lo + 6], a[lo + 7]
    i = 8
    end = n - n % 8
    while i < end:
        r0 += a[lo + i]
        r1 += a[lo + i + 1]
        r2 += a[lo + i + 2]
        r3 += a[lo + i + 3]
        r4 += a[lo + i + 4]
        r5 += a[lo + i + 5]
        r6 += a[lo + i + 6]
        r7 += a[lo + i + 7]
        i += 8
    res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < n:
        res += a[lo + i]
        i += 1
    return res


@njit(cache=True, nogil=True)
def _scratch() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Stacks for :func:`_pairwise` (allocated once per kernel call, not per row)."""
    return (np.empty(64, dtype=np.int64), np.empty(64, dtype=np.int64), np.empty(64, dtype=np.int64),
            np.empty(64, dtype=np.float32))


@njit(cache=True, nogil=True)
def _pairwise(a: np.ndarray, lo: int, n: int, scratch: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]) -> np.float32:
    """``pairwise(lo, n) = leaf if n <= 128 else pairwise(lo, n2) + pairwise(lo + n2, n - n2)``,
    with ``n2 = n // 2`` rounded down to a multiple of 8; evaluated with explicit stacks
    (numba does not cache recursive functions)."""
    if n <= 128:
        return _pairwise_leaf(a, lo, n)
    # Post-order walk: a node is pushed with state 0 (split it) and revisited with
    # state 1 (add its two children's values, the left one below the right one).
    los, ns, states, values = scratch
    nv = 0
    los[0], ns[0], states[0] = lo, n, 0
    top = 1
    while top:
        top -= 1
        lo_, n_, st = los[top], ns[top], states[top]
        if n_ <= 128:
            values[nv] = _pairwise_leaf(a, lo_, n_)
            nv += 1
        elif st == 1:
            nv -= 1
            values[nv - 1] = values[nv - 1] + values[nv]
        else:
            n2 = n_ // 2
            n2 -= n2 % 8
            los[top], ns[top], states[top] = lo_, n_, 1
            los[top + 1], ns[top + 1], states[top + 1] = lo_ + n2, n_ - n2, 0
            los[top + 2], ns[top + 2], states[top + 2] = lo_, n2, 0
            top += 3
    return values[0]


@njit(cache=True, nogil=True)
def _row_sum(a: np.ndarray, scratch: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]) -> np.float32:
    return np.float32(0.0) + _pairwise(a, 0, a.shape[0], scratch)


@njit(cache=True, nogil=True)
def row_sum(a: np.ndarray) -> np.float32:
    """``a.sum()`` of a contiguous float32 row, as numpy computes it."""
    return _row_sum(a, _scratch())


@njit(cache=True, nogil=True)
def row_dot(a: np.ndarray) -> np.float32:
    """``np.einsum("i,i->", a, a)`` of a contiguous float32 row, as numpy computes it."""
    a0 = a1 = a2 = a3 = np.float32(0.0)
    n = a.shape[0]
    i = 0
    while n - i >= 16:
        for blk in (12, 8, 4, 0):
            x0, x1, x2, x3 = a[i + blk], a[i + blk + 1], a[i + blk + 2], a[i + blk + 3]
            a0 = x0 * x0 + a0
            a1 = x1 * x1 + a1
            a2 = x2 * x2 + a2
            a3 = x3 * x3 + a3
        i += 16
    while i < n:  # the tail, four lanes at a time (missing lanes add nothing)
        a0 = a[i] * a[i] + a0
        if i + 1 < n:
            a1 = a[i + 1] * a[i + 1] + a1
        if i + 2 < n:
            a2 = a[i + 2] * a[i + 2] + a2
        if i + 3 < n:
            a3 = a[i + 3] * a[i + 3] + a3
        i += 4
    return np.float32(0.0) + ((a0 + a1) + (a2 + a3))
