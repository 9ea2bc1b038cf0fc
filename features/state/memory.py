"""In-process state: the embedded default. Objects live in one dict, guarded by a lock."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from features.state.structures import Bundle

__all__ = ["MemoryState"]

T = TypeVar("T")
_BUCKET = 3600


class MemoryState:
    """Event-time state in this process.

    Memory is bounded by expiry: an object is dropped once the watermark (the newest
    event time seen) passes its deadline, ``ttl_s`` after the newest event time at which
    it was touched; an expired object is treated as absent from that moment on, so
    results never depend on when a sweep happens to run. Expiry is indexed by hour of deadline, so a sweep only visits the keys
    that may have expired (amortised O(1) per key and TTL period).
    """

    backend = "memory"

    def __init__(self, *, sweep_every_s: int = 3600) -> None:
        self._objects: dict[str, Bundle] = {}
        self._expiry: dict[int, list[str]] = {}
        self._lock = threading.RLock()
        self._watermark = float("-inf")
        self._last_sweep = float("-inf")
        self._sweep_every = sweep_every_s
        self._view = _MemoryView(self)

    def transact(self, keys: Iterable[str], fn: Callable[[Any], T]) -> T:
        with self._lock:
            result = fn(self._view)
            if self._watermark - self._last_sweep >= self._sweep_every:
                self.sweep()
            return result

    def _file(self, key: str, deadline: float) -> None:
        self._expiry.setdefault(int(deadline // _BUCKET), []).append(key)

    def sweep(self) -> int:
        """Drop every object whose deadline passed; returns how many were dropped."""
        with self._lock:
            wm = self._watermark
            now_bucket = int(wm // _BUCKET)
            dropped = 0
            for b in [b for b in self._expiry if b < now_bucket]:
                for key in self._expiry.pop(b):
                    obj = self._objects.get(key)
                    if obj is None:
                        continue
                    if obj.deadline < wm:
                        del self._objects[key]
                        dropped += 1
                    else:
                        self._file(key, obj.deadline)
            self._last_sweep = wm
            return dropped

    def __len__(self) -> int:
        return len(self._objects)

    def close(self) -> None:
        with self._lock:
            self._objects.clear()
            self._expiry.clear()


class _MemoryView:
    __slots__ = ("_s",)

    def __init__(self, store: MemoryState) -> None:
        self._s = store

    def prefetch(self, keys: Iterable[str]) -> None:
        return None

    def advance(self, t: float) -> None:
        if t > self._s._watermark:
            self._s._watermark = t

    @property
    def watermark(self) -> float:
        return self._s._watermark

    def bundle(self, key: str, *, ttl_s: int, create: bool = True) -> Bundle | None:
        s = self._s
        obj = s._objects.get(key)
        wm = s._watermark
        if obj is not None and obj.deadline < wm:
            # Expired but not swept yet: the same answer whenever the sweep runs.
            del s._objects[key]
            obj = None
        deadline = wm + ttl_s
        if obj is None:
            if not create:
                return None
            obj = s._objects[key] = Bundle()
            obj.deadline = deadline
            s._file(key, deadline)
        elif deadline > obj.deadline:
            obj.deadline = deadline
        return obj
