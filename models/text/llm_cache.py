"""Caches for LLM verdicts: a bounded in-process LRU and an optional Redis cache.

Keys are sha256 hex digests of the prompt id and the normalised, redacted text (see
:func:`models.text.llm.cache_key`), so no personal data is ever a key. Values are
plain ``{label: confidence}`` dicts.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

__all__ = ["LlmCache", "LruCache", "RedisCache", "TieredCache"]


@runtime_checkable
class LlmCache(Protocol):
    def get(self, key: str) -> dict[str, float] | None: ...

    def put(self, key: str, labels: Mapping[str, float]) -> None: ...


class LruCache:
    """Thread-safe LRU bounded by entry count."""

    def __init__(self, maxsize: int = 50_000) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be >= 1")
        self.maxsize = maxsize
        self._data: OrderedDict[str, dict[str, float]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._data)

    def get(self, key: str) -> dict[str, float] | None:
        with self._lock:
            value = self._data.get(key)
            if value is not None:
                self._data.move_to_end(key)
                return dict(value)
            return None

    def put(self, key: str, labels: Mapping[str, float]) -> None:
        with self._lock:
            self._data[key] = dict(labels)
            self._data.move_to_end(key)
            while len(self._data) > self.maxsize:
                self._data.popitem(last=False)


class RedisCache:
    """Verdicts shared by every worker; entries expire after ``ttl_s``.

    Redis errors read as a miss (get) or are dropped (put): the cache is an
    optimisation, never a reason to fail a decision.
    """

    def __init__(self, client: Any, *, prefix: str = "rw:llm:", ttl_s: int = 7 * 86400) -> None:
        self._client = client
        self._prefix = prefix
        self._ttl = ttl_s

    def get(self, key: str) -> dict[str, float] | None:
        try:
            raw = self._client.get(self._prefix + key)
        except Exception:
            return None
        if raw is None:
            return None
        try:
            data = json.loads(raw)
        except ValueError:
            return None
        if not isinstance(data, dict):
            return None
        return {str(k): float(v) for k, v in data.items() if isinstance(v, int | float)}

    def put(self, key: str, labels: Mapping[str, float]) -> None:
        try:
            self._client.set(self._prefix + key, json.dumps(dict(labels), sort_keys=True), ex=self._ttl)
        except Exception:
            return


class TieredCache:
    """In-process LRU in front of a shared cache; a shared hit fills the LRU."""

    def __init__(self, local: LruCache, shared: LlmCache) -> None:
        self._local = local
        self._shared = shared

    def get(self, key: str) -> dict[str, float] | None:
        value = self._local.get(key)
        if value is None:
            value = self._shared.get(key)
            if value is not None:
                self._local.put(key, value)
        return value

    def put(self, key: str, labels: Mapping[str, float]) -> None:
        self._local.put(key, labels)
        self._shared.put(key, labels)
