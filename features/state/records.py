"""Per-order records with event-time deadlines: the order record and the re-delivery cache.

An entry counts as absent from the moment the watermark passes its deadline, so answers
never depend on when a sweep runs; ``sweep`` frees the memory, visiting only the hour
buckets whose deadlines may have passed (amortised O(1) per entry).
"""

from __future__ import annotations

from typing import Any

__all__ = ["ExpiringMap"]

_BUCKET = 3600


class ExpiringMap:
    """``key -> [value, deadline]`` with event-time expiry."""

    __slots__ = ("_by_hour", "data", "dirty")

    def __init__(self) -> None:
        self.data: dict[str, list[Any]] = {}
        self._by_hour: dict[int, list[str]] = {}
        #: Keys written since the map was loaded (the Redis backend writes those back).
        self.dirty: set[str] = set()

    def __len__(self) -> int:
        return len(self.data)

    def get(self, key: str, watermark: float, *, extend_to: float | None = None) -> Any:
        """The live value at ``key`` (None if absent or expired); ``extend_to`` pushes its deadline."""
        entry = self.data.get(key)
        if entry is None:
            return None
        if entry[1] < watermark:
            del self.data[key]
            return None
        if extend_to is not None and extend_to > entry[1]:
            entry[1] = extend_to  # refiled by the sweep that finds it still alive
            self.dirty.add(key)
        return entry[0]

    def put(self, key: str, value: Any, deadline: float) -> None:
        self.data[key] = [value, deadline]
        self.dirty.add(key)
        self._file(key, deadline)

    def load(self, key: str, value: Any, deadline: float) -> None:
        """An entry read from a store (not dirty)."""
        self.data[key] = [value, deadline]

    def deadline(self, key: str) -> float:
        return self.data[key][1]

    def _file(self, key: str, deadline: float) -> None:
        self._by_hour.setdefault(int(deadline // _BUCKET), []).append(key)

    def sweep(self, watermark: float) -> int:
        """Drop every entry whose deadline passed; returns how many."""
        now = int(watermark // _BUCKET)
        dropped = 0
        for hour in [h for h in self._by_hour if h < now]:
            for key in self._by_hour.pop(hour):
                entry = self.data.get(key)
                if entry is None:
                    continue
                if entry[1] < watermark:
                    del self.data[key]
                    dropped += 1
                else:
                    self._file(key, entry[1])
        return dropped
