"""Feature-schema types: every feature has a name, a type, a unit and a description.

The declared list lives in ``features.schema``; the rules compiler and the models
receive it as data, so they need not import ``features``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Literal

__all__ = ["FeatureSchema", "FeatureSpec", "FeatureType"]

FeatureType = Literal["number", "bool", "string", "string_list"]


@dataclass(frozen=True, slots=True)
class FeatureSpec:
    name: str
    type: FeatureType
    unit: str
    description: str
    #: Whether models may use it as a numeric input (bools count as 0/1).
    model_input: bool = True
    #: How a high contribution of this feature reads to an analyst: a reason code and
    #: a ``str.format`` template with ``{value}``, e.g. "amount {value:.1f}x the mean".
    reason_code: str | None = None
    reason: str | None = None


@dataclass(frozen=True)
class FeatureSchema:
    """An ordered, hashable set of feature specs."""

    specs: tuple[FeatureSpec, ...]
    _index: dict[str, FeatureSpec] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        index = {spec.name: spec for spec in self.specs}
        if len(index) != len(self.specs):
            raise ValueError("duplicate feature names in schema")
        object.__setattr__(self, "_index", index)

    @classmethod
    def of(cls, specs: Iterable[FeatureSpec]) -> FeatureSchema:
        return cls(tuple(specs))

    def __iter__(self) -> Iterator[FeatureSpec]:
        return iter(self.specs)

    def __len__(self) -> int:
        return len(self.specs)

    def __contains__(self, name: object) -> bool:
        return name in self._index

    def get(self, name: str) -> FeatureSpec | None:
        return self._index.get(name)

    def model_inputs(self) -> tuple[str, ...]:
        """Names of the numeric columns, in schema order, that models consume."""
        return tuple(
            s.name for s in self.specs if s.model_input and s.type in ("number", "bool")
        )

    def merged(self, other: FeatureSchema) -> FeatureSchema:
        return FeatureSchema(self.specs + tuple(s for s in other.specs if s.name not in self))

    @property
    def digest(self) -> str:
        """Stable short hash of names and types; models check it before they load."""
        payload = json.dumps([[s.name, s.type, s.model_input] for s in self.specs])
        return hashlib.sha256(payload.encode()).hexdigest()[:16]
