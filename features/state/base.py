"""The one state interface: a store runs a function over a view of keyed state bundles.

A *transaction* (:meth:`StateStore.transact`) is one micro-batch: the caller names the
keys it will touch, the store loads them (the Redis backend in one round trip), the
function reads and mutates them through a :class:`StateView`, and the store writes back
what changed (Redis: atomically, re-running the function if another worker wrote one
of those keys meanwhile, so the function must have no side effects outside the view).

Each key holds a :class:`~features.state.structures.Bundle`: named parts (event-time
series, distinct sets, small records) stored together, one Redis value per entity.
Keys are plain strings ``"<family>|<value>"``; Redis hashes them, so no personal data
appears in key names.

Expiry runs in event time: a bundle is kept ``ttl_s`` past the newest event time at
which a transaction touched it (in-process: swept by watermark; Redis: the same TTL on
the wall clock, set on write). Either way a bundle outlives every window that can
still query it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Protocol, TypeVar, runtime_checkable

from features.state.structures import Bundle

__all__ = ["StateStore", "StateView"]

T = TypeVar("T")


@runtime_checkable
class StateView(Protocol):
    """The bundles of one transaction."""

    def prefetch(self, keys: Iterable[str]) -> None:
        """Load more keys in one round trip (e.g. after reading order records)."""
        ...

    def bundle(self, key: str, *, ttl_s: int, create: bool = True) -> Bundle | None:
        """The bundle at ``key``; a missing one is created empty, or None if not ``create``."""
        ...

    def advance(self, t: float) -> None:
        """Tell the store the event time reached ``t`` (drives event-time expiry)."""
        ...

    @property
    def watermark(self) -> float:
        """The newest event time the store has been told of (what expiry is measured against)."""
        ...


@runtime_checkable
class StateStore(Protocol):
    """Entity state behind one interface; ``MemoryState`` and ``RedisState`` implement it."""

    backend: str

    def transact(self, keys: Iterable[str], fn: Callable[[StateView], T]) -> T: ...

    def close(self) -> None: ...
