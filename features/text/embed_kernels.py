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

__all__ = ["first_layer", "second_layer_out"]


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
def second_layer_out(out: np.ndarray, bias: np.ndarray, h: np.ndarray, real: np.ndarray) -> None:
    """In place: ``out = max(out + bias, 0) + h[real]`` (bias, ReLU, residual)."""
    c = out.shape[1]
    for m in range(out.shape[0]):
        o = out[m]
        hp = h[real[m]]
        for j in range(c):
            a = o[j] + bias[j]
            o[j] = (a if a > 0.0 or a != a else np.float32(0.0)) + hp[j]
