"""Per-order records with event-time deadlines: the order record and the re-delivery cache.

An entry counts as absent from the moment the watermark passes its deadline, so answers
never depend on when a sweep runs; ``sweep`` frees the memory, visiting only the hour
buckets whose deadlines may have passed (amortised O(1) per entry). Values and deadlines
sit in two flat dicts of immutable values (tuples, bytes, floats): nothing here is a
container the garbage collector has to walk, whatever the number of orders.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ExpiringMap"]

_BUCKET = 3600


class ExpiringMap:
    """``key -> value`` with an event-time deadline per key."""

    __slots__ = ("_by_hour", "deadlines", "dirty", "values")

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}
        self.deadlines: dict[str, float] = {}
        self._by_hour: dict[int, list[str]] = {}
        #: Keys written since the map was loaded or last cleared (the Redis backend writes
        #: those back; the in-process one clears them after each transaction).
        self.dirty: set[str] = set()

    def __len__(self) -> int:
        return len(self.values)

    def get(self, key: str, watermark: float, *, extend_to: float | None = None) -> Any:
        """The live value at ``key`` (None if absent or expired); ``extend_to`` pushes its deadline."""
        deadline = self.deadlines.get(key)
        if deadline is None:
            return None
        if deadline < watermark:
            del self.values[key], self.deadlines[key]
            return None
        if extend_to is not None and extend_to > deadline:
            self.deadlines[key] = extend_to  # refiled by the sweep that finds it still alive
            self.dirty.add(key)
        return self.values[key]

    def put(self, key: str, value: Any, deadline: float) -> None:
        self.values[key] = value
        self.deadlines[key] = deadline
        self.dirty.add(key)
        hour = int(deadline // _BUCKET)
        bucket = self._by_hour.get(hour)  # not setdefault: that builds a list per call
        if bucket is None:
            self._by_hour[hour] = [key]
        else:
            bucket.append(key)

    def load(self, key: str, value: Any, deadline: float) -> None:
        """An entry read from a store (not dirty)."""
        self.values[key] = value
        self.deadlines[key] = deadline

    def sweep(self, watermark: float) -> int:
        """Drop every entry whose deadline passed; returns how many."""
        now = int(watermark // _BUCKET)
        dropped = 0
        deadlines = self.deadlines
        for hour in [h for h in self._by_hour if h < now]:
            for key in self._by_hour.pop(hour):
                deadline = deadlines.get(key)
                if deadline is None:
                    continue
                if deadline < watermark:
                    del self.values[key], deadlines[key]
                    dropped += 1
                else:
                    self._by_hour.setdefault(int(deadline // _BUCKET), []).append(key)
        return dropped

