"""Entity state: one interface (:class:`StateStore`), two backends with identical results.

- :class:`MemoryState`: in-process, the embedded default.
- :class:`RedisState`: shared by every worker of a consumer group.

Generic helpers for other components: :class:`WindowedCounter` and
:class:`DistinctCounter` (see ``features/README.md``).
"""

from __future__ import annotations

from contracts import ConfigError
from features.state.base import StateStore, StateView
from features.state.counters import DistinctCounter, WindowedCounter, member_digest
from features.state.memory import MemoryState
from features.state.structures import Bundle, DistinctSet, Record, WindowSeries

__all__ = [
    "Bundle",
    "DistinctCounter",
    "DistinctSet",
    "MemoryState",
    "Record",
    "RedisState",
    "StateStore",
    "StateView",
    "WindowSeries",
    "WindowedCounter",
    "build_state",
    "member_digest",
]


def __getattr__(name: str) -> object:
    # redis-py is imported only when the Redis backend is used.
    if name == "RedisState":
        from features.state.redis import RedisState

        return RedisState
    raise AttributeError(name)


def build_state(backend: str = "memory", *, redis_url: str = "redis://127.0.0.1:6379/0",
                key_prefix: str = "rw") -> StateStore:
    """The state backend named in settings (``state.backend``)."""
    if backend == "memory":
        return MemoryState()
    if backend == "redis":
        from features.state.redis import RedisState, _check_url

        _check_url(redis_url)
        return RedisState(redis_url=redis_url, key_prefix=key_prefix)
    raise ConfigError(f"unknown state backend {backend!r} (memory or redis)")
