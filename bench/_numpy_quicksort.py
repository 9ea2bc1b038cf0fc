"""numpy's classic ``argsort(kind="quicksort")``, transcribed to see which order it gives ties.

The handbook sorted each customer's transactions with ``sort_values("TX_DATETIME")``,
pandas' default quicksort, i.e. numpy's introsort of the time (numpy 1.x before its SIMD
sorts: ``numpy/core/src/npysort/quicksort.cpp``, ``aquicksort_`` and ``aheapsort_``).
The algorithm is not stable, and today's numpy sorts differently (SIMD quicksort on
x86), so the only way to know the order it gave equal times is to run it again. This is
that code, line for line, in Python: for the parity report, not for the product.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["argsort_quicksort"]

SMALL_QUICKSORT = 15


def _msb(n: int) -> int:
    depth = 0
    while n > 1:
        n >>= 1
        depth += 1
    return depth


def _sift(v: Sequence[int], t: list[int], base: int, i: int, n: int, tmp: int) -> None:
    """``aheapsort_``'s sift-down over the 1-based heap ``t[base + 1 ..]``."""
    j = i << 1
    while j <= n:
        if j < n and v[t[base + j]] < v[t[base + j + 1]]:
            j += 1
        if v[tmp] < v[t[base + j]]:
            t[base + i] = t[base + j]
            i = j
            j += j
        else:
            break
    t[base + i] = tmp


def _heapsort(v: Sequence[int], t: list[int], pl: int, n: int) -> None:
    base = pl - 1
    for left in range(n >> 1, 0, -1):
        _sift(v, t, base, left, n, t[base + left])
    while n > 1:
        tmp = t[base + n]
        t[base + n] = t[base + 1]
        n -= 1
        _sift(v, t, base, 1, n, tmp)


def argsort_quicksort(v: Sequence[int]) -> list[int]:
    """The permutation ``np.argsort(v, kind="quicksort")`` gave in numpy 1.x."""
    t = list(range(len(v)))
    pl, pr = 0, len(v) - 1
    stack: list[int] = []
    depths: list[int] = []
    depth = _msb(len(v)) * 2
    while True:
        if depth < 0:
            _heapsort(v, t, pl, pr - pl + 1)
        else:
            while pr - pl > SMALL_QUICKSORT:
                # Median of three, then the partition.
                pm = pl + ((pr - pl) >> 1)
                if v[t[pm]] < v[t[pl]]:
                    t[pm], t[pl] = t[pl], t[pm]
                if v[t[pr]] < v[t[pm]]:
                    t[pr], t[pm] = t[pm], t[pr]
                if v[t[pm]] < v[t[pl]]:
                    t[pm], t[pl] = t[pl], t[pm]
                vp = v[t[pm]]
                pi, pj = pl, pr - 1
                t[pm], t[pj] = t[pj], t[pm]
                while True:
                    pi += 1
                    while v[t[pi]] < vp:
                        pi += 1
                    pj -= 1
                    while vp < v[t[pj]]:
                        pj -= 1
                    if pi >= pj:
                        break
                    t[pi], t[pj] = t[pj], t[pi]
                t[pi], t[pr - 1] = t[pr - 1], t[pi]
                # The larger side waits on the stack.
                if pi - pl < pr - pi:
                    stack += [pi + 1, pr]
                    pr = pi - 1
                else:
                    stack += [pl, pi - 1]
                    pl = pi + 1
                depth -= 1
                depths.append(depth)
            for pi in range(pl + 1, pr + 1):  # insertion sort of the small rest
                vi = t[pi]
                pj = pi
                while pj > pl and v[vi] < v[t[pj - 1]]:
                    t[pj] = t[pj - 1]
                    pj -= 1
                t[pj] = vi
        if not stack:
            return t
        pr = stack.pop()
        pl = stack.pop()
        depth = depths.pop()
