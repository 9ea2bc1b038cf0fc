"""Typed messages at the edges: Order, ReturnRequest, Label, Decision and DeadLetter.

Frozen pydantic models; bytes become these objects only in ``streams`` serde and in the
HTTP body. Unknown fields are kept (``extra="allow"``) but ignored, missing optional
fields are normal, and every string and list is bounded so a hostile payload cannot
make the engine allocate without limit.
"""

from __future__ import annotations

import ipaddress
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
)

__all__ = [
    "SCHEMA_VERSION",
    "Action",
    "Address",
    "Customer",
    "DeadLetter",
    "Decision",
    "Degradation",
    "FeatureContribution",
    "Item",
    "Label",
    "Order",
    "Payment",
    "Reason",
    "ReturnRequest",
    "RuleHit",
    "TextSpan",
    "Versions",
]

#: Version of the wire format carried in every event as ``schema_version``.
SCHEMA_VERSION = 1

Action = Literal["approve", "review", "decline"]
LabelValue = Literal["fraud", "abuse", "legit"]
LabelSource = Literal["chargeback", "analyst", "refund"]


def _upper(value: Any) -> Any:
    return value.strip().upper() if isinstance(value, str) else value


def _check_ip(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError as exc:
        # The value itself stays out of the message: errors reach logs and DLQ headers.
        raise ValueError("not an IPv4 or IPv6 address") from exc


Id = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=128)]
ShortText = Annotated[str, StringConstraints(max_length=256)]
FreeText = Annotated[str, StringConstraints(max_length=4000)]
CountryCode = Annotated[
    str, BeforeValidator(_upper), StringConstraints(pattern=r"^[A-Z]{2}$")
]
CurrencyCode = Annotated[
    str, BeforeValidator(_upper), StringConstraints(pattern=r"^[A-Z]{3}$")
]
IpAddress = Annotated[str | None, AfterValidator(_check_ip)]
Money = Annotated[Decimal, Field(ge=0, le=Decimal("1e12"), max_digits=18, decimal_places=6)]
MetaValue = str | int | float | bool | None


class _Event(BaseModel):
    """Base for inbound events: frozen, unknown fields kept but ignored."""

    model_config = ConfigDict(frozen=True, extra="allow", str_max_length=4000)


class _Out(BaseModel):
    """Base for what riskwire emits: frozen and strict about its own fields."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class Address(_Event):
    name: ShortText | None = None
    line1: ShortText | None = None
    line2: ShortText | None = None
    city: ShortText | None = None
    region: ShortText | None = None
    postal_code: Annotated[str, StringConstraints(max_length=32)] | None = None
    country: CountryCode | None = None


class Customer(_Event):
    customer_id: Id | None = None
    email: ShortText | None = None
    phone: Annotated[str, StringConstraints(max_length=64)] | None = None
    name: ShortText | None = None
    account_created_at: AwareDatetime | None = None


class Payment(_Event):
    method: Annotated[str, StringConstraints(max_length=32)] | None = None
    card_fingerprint: Id | None = None
    card_bin: Annotated[str, StringConstraints(pattern=r"^[0-9]{6,8}$")] | None = None
    card_country: CountryCode | None = None
    amount: Money | None = None
    currency: CurrencyCode | None = None


class Item(_Event):
    sku: Id
    title: ShortText | None = None
    category: Annotated[str, StringConstraints(max_length=64)] | None = None
    quantity: Annotated[int, Field(ge=1, le=100_000)] = 1
    unit_price: Money | None = None


class Order(_Event):
    """An order as the shop sends it (topic ``orders``, key ``order_id``)."""

    schema_version: Literal[1] = SCHEMA_VERSION
    order_id: Id
    created_at: AwareDatetime
    customer: Customer = Field(default_factory=Customer)
    payment: Payment = Field(default_factory=Payment)
    billing_address: Address | None = None
    shipping_address: Address | None = None
    ip_address: IpAddress = None
    device_id: Id | None = None
    user_agent: Annotated[str, StringConstraints(max_length=512)] | None = None
    merchant_id: Id | None = None
    channel: Annotated[str, StringConstraints(max_length=32)] | None = None
    items: Annotated[list[Item], Field(max_length=500)] = Field(default_factory=list)
    note: FreeText | None = None
    gift_message: FreeText | None = None
    metadata: Annotated[dict[str, MetaValue], Field(max_length=50)] = Field(default_factory=dict)

    @field_validator("metadata")
    @classmethod
    def _bounded_metadata(cls, value: dict[str, MetaValue]) -> dict[str, MetaValue]:
        for key, item in value.items():
            if len(key) > 64 or (isinstance(item, str) and len(item) > 512):
                raise ValueError("metadata keys are at most 64 characters, values at most 512")
        return value


class ReturnRequest(_Event):
    """A request to return items and refund (topic ``returns``, key ``order_id``)."""

    schema_version: Literal[1] = SCHEMA_VERSION
    return_id: Id
    order_id: Id
    created_at: AwareDatetime
    customer_id: Id | None = None
    email: ShortText | None = None
    reason: FreeText | None = None
    items: Annotated[list[Item], Field(max_length=500)] = Field(default_factory=list)
    amount: Money | None = None
    currency: CurrencyCode | None = None
    order_created_at: AwareDatetime | None = None
    shipping_address: Address | None = None
    metadata: Annotated[dict[str, MetaValue], Field(max_length=50)] = Field(default_factory=dict)


class Label(_Event):
    """Ground truth about an order (topic ``labels``, key ``order_id``)."""

    schema_version: Literal[1] = SCHEMA_VERSION
    order_id: Id
    label: LabelValue
    source: LabelSource
    created_at: AwareDatetime
    return_id: Id | None = None
    case_id: Id | None = None
    #: An analyst's or system's id, never a name or email.
    actor: Id | None = None
    note: FreeText | None = None


class Reason(_Out):
    """One reason an analyst can read: a stable code, a detail and its weight."""

    code: Annotated[str, StringConstraints(max_length=64)]
    detail: Annotated[str, StringConstraints(max_length=512)]
    contribution: float = 0.0


class FeatureContribution(_Out):
    """A feature's share of the model score (positive pushes towards risky)."""

    feature: str
    value: float | str | bool | None
    contribution: float


class RuleHit(_Out):
    rule_id: str
    action: Action | Literal["allow"]
    reason_code: str
    shadow: bool = False


class TextSpan(_Out):
    """A flagged span of free text; ``snippet`` is already PII-masked."""

    field: str
    start: int
    end: int
    label: str
    snippet: Annotated[str, StringConstraints(max_length=256)]


class Degradation(_Out):
    signal: str
    reason: Annotated[str, StringConstraints(max_length=256)]


class Versions(_Out):
    engine: str
    features: str
    model: str
    ruleset: str
    prompt: str | None = None


class Decision(_Out):
    """riskwire's answer for one order or return (topic ``risk-decisions``)."""

    schema_version: Literal[1] = SCHEMA_VERSION
    decision_id: str
    order_id: str
    subject: Literal["order", "return"] = "order"
    return_id: str | None = None
    #: Increases when the same order is re-decided (a late LLM verdict, say).
    revision: int = 1
    event_time: datetime
    decided_at: datetime
    score: Annotated[int, Field(ge=0, le=100)]
    action: Action
    reasons: list[Reason] = Field(default_factory=list)
    #: Per-signal scores, each on its own documented scale (see the engine docs).
    signals: dict[str, float] = Field(default_factory=dict)
    text_labels: dict[str, float] = Field(default_factory=dict)
    text_spans: list[TextSpan] = Field(default_factory=list)
    #: Recurring-phrase cluster of the order's text, when several accounts share it.
    cluster_id: str | None = None
    contributions: list[FeatureContribution] = Field(default_factory=list)
    rule_hits: list[RuleHit] = Field(default_factory=list)
    #: Which model family produced ``score``: "unsupervised" until enough labels exist.
    model_kind: str = "unsupervised"
    versions: Versions
    latency_ms: float = 0.0
    degraded: list[Degradation] = Field(default_factory=list)
    #: A challenger's verdict, recorded and measured but never acted on.
    shadow: dict[str, Any] | None = None


class DeadLetter(_Out):
    """What the worker could not decode, and where it came from.

    On the wire the dead-letter record's value is the original bytes untouched, and
    these fields travel as ``riskwire.*`` headers (see ``streams.deadletter``).
    """

    error: str
    source_topic: str
    partition: int
    offset: int
    key: bytes | None = None
    value: bytes | None = None
