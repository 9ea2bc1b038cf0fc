"""Order features and entity state.

- :class:`OrderFeaturizer`: the engine's featuriser (``detector.engine.Featurizer``).
- :func:`build_state`, :class:`MemoryState`, ``RedisState``: the state backends.
- :class:`WindowedCounter`, :class:`DistinctCounter`: generic windowed counters for
  other components (see ``features/README.md``).
"""

from __future__ import annotations

from features.featurizer import FEATURES_VERSION, OrderFeaturizer
from features.schema import build_schema
from features.state import (
    DistinctCounter,
    MemoryState,
    StateStore,
    WindowedCounter,
    build_state,
)

__all__ = [
    "FEATURES_VERSION",
    "DistinctCounter",
    "MemoryState",
    "OrderFeaturizer",
    "StateStore",
    "WindowedCounter",
    "build_schema",
    "build_state",
]
