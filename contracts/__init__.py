"""Shared bottom layer: the event contracts, the feature-schema types and the exception root.

Every package may import from here; this package imports nothing of the project.
"""

from contracts.errors import (
    ConfigError,
    InvalidEvent,
    RiskwireError,
    SignalUnavailable,
)
from contracts.events import (
    SCHEMA_VERSION,
    Action,
    Address,
    Customer,
    DeadLetter,
    Decision,
    Degradation,
    Item,
    Label,
    Order,
    Payment,
    Reason,
    ReturnRequest,
    RuleHit,
    Versions,
)
from contracts.schema import FeatureSchema, FeatureSpec

__all__ = [
    "SCHEMA_VERSION",
    "Action",
    "Address",
    "ConfigError",
    "Customer",
    "DeadLetter",
    "Decision",
    "Degradation",
    "FeatureSchema",
    "FeatureSpec",
    "InvalidEvent",
    "Item",
    "Label",
    "Order",
    "Payment",
    "Reason",
    "ReturnRequest",
    "RiskwireError",
    "RuleHit",
    "SignalUnavailable",
    "Versions",
]
