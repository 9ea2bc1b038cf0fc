"""The compiled loops of the forward pass give the numpy formulation's vectors bit for bit.

``_numpy_pool`` is ``_Forward._pool`` as it was before the loops around the GEMMs moved
to ``features.text.embed_kernels`` (gathers of whole table rows, shifted sums, window
matrices by fancy index, bias / ReLU / residual as array passes).
"""

from __future__ import annotations

import numpy as np

from detector.text_train import load_curated
from features.text.embed import _GAP, _TOKEN_BUDGET, DIM, _flat_layout, _Forward, _pool_rows
from features.text.embed_kernels import row_stats
from tests.text.text_support import embedder


def _numpy_pool(self: _Forward, group: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    b, c = self.b, self.cnn
    lens, flat, starts, rows, pos = _flat_layout(group)
    gaps = (starts[1:, None] - np.arange(1, _GAP + 1)).ravel()
    table, slots = self._slots(flat)
    at = np.zeros(rows, dtype=np.int64)
    at[pos] = slots
    emb = table[slots, :DIM]
    proj = table[at, DIM : DIM + len(self.orders) * c]
    firsts = [table[at, o : o + n * c] for o, (n, _) in zip(self.q_off, self.orders, strict=True)]
    lo, hi = _GAP, rows - _GAP
    inner = pos - lo
    parts = [emb]
    for i, (n, left) in enumerate(self.orders):
        q = firsts[i]
        h = np.empty((rows, c), dtype=np.float32)
        h[:lo] = 0.0
        h[hi:] = 0.0
        hv = h[lo:hi]
        np.add(q[lo - left : hi - left, :c], q[lo + 1 - left : hi + 1 - left, c : 2 * c], out=hv)
        for k in range(2, n):
            hv += q[lo + k - left : hi + k - left, k * c : (k + 1) * c]
        np.maximum(hv, 0, out=hv)
        hv += proj[lo:hi, i * c : (i + 1) * c]
        h[gaps] = 0.0
        win = np.lib.stride_tricks.as_strided(h[lo - left :], shape=(hi - lo, n * c), strides=h.strides)
        out = win[inner] @ b.w2[i]
        out += b.b2[i]
        np.maximum(out, 0, out=out)
        out += hv[inner]
        parts.append(out)
    width = DIM + len(self.orders) * c
    mu = sum(p.sum(axis=1) for p in parts) / width
    var = sum(np.einsum("ij,ij->i", p, p) for p in parts) / width - mu * mu
    return _pool_rows(parts, mu, var, lens, b.eps)


def _groups(fw: _Forward, texts: list[str]) -> list[list[list[int]]]:
    groups, group, n = [], [], 0
    for text in texts:
        ids = fw.encode_ids(text)
        if group and n + len(ids) > _TOKEN_BUDGET:
            groups.append(group)
            group, n = [], 0
        group.append(ids)
        n += len(ids)
    groups.append(group)
    return groups


def test_compiled_pool_is_bit_identical_to_the_numpy_formulation():
    emb = embedder()
    emb.warm()
    texts = [r.text for r in load_curated()] + ["a", "ok ok", "x" * 300, "please leave at the door " * 12]
    # A roomy table, a tiny one (eviction and the per-batch fallback) and none at all.
    for token_cache in (4096, 16, 0):
        fw = _Forward(emb._model._model, emb._fast.encode_ids, token_cache=token_cache)
        ref = _Forward(emb._model._model, emb._fast.encode_ids, token_cache=token_cache)
        for group in _groups(fw, texts):
            got, want = fw._pool(group), _numpy_pool(ref, group)
            assert np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1])


def test_row_reductions_are_numpys_own():
    rng = np.random.default_rng(5)
    for n in (1, 3, 7, 8, 9, 15, 16, 17, 100, 128, 129, 255, 256, 257, 512, 1000, 1280):
        x = (rng.standard_normal((64, n)) * rng.random((64, 1)) * 50).astype(np.float32)
        x[0] = -0.0
        sums, squares = np.empty(64, dtype=np.float32), np.empty(64, dtype=np.float32)
        row_stats(x, sums, squares)
        assert np.array_equal(sums, x.sum(axis=1)), n
        assert np.array_equal(squares, np.einsum("ij,ij->i", x, x)), n
        assert np.array_equal(np.signbit(sums), np.signbit(x.sum(axis=1))), n
