"""Small hand-built feature schemas and lists for the rules tests."""

from __future__ import annotations

import pytest

from contracts.schema import FeatureSchema, FeatureSpec
from rules import ListStore, NamedList

ATTRIBUTES: tuple[tuple[str, str], ...] = (
    ("amount", "number"),
    ("amount_base", "number"),
    ("account_age_days", "number"),
    ("item_count", "number"),
    ("model_score", "number"),
    ("customer_tx_count_1d", "number"),
    ("email_disposable", "bool"),
    ("email_free", "bool"),
    ("first_order", "bool"),
    ("shipping_country", "string"),
    ("billing_country", "string"),
    ("ip_country", "string"),
    ("card_country", "string"),
    ("customer_id", "string"),
    ("email", "string"),
    ("email_domain", "string"),
    ("ip_address", "string"),
    ("device_id", "string"),
    ("card_fingerprint", "string"),
    ("shipping_address_key", "string"),
    ("card_bin", "string"),
    ("text_labels", "string_list"),
)


def make_schema() -> FeatureSchema:
    return FeatureSchema.of(FeatureSpec(n, t, "", f"test attribute {n}") for n, t in ATTRIBUTES)  # type: ignore[arg-type]


def make_lists() -> ListStore:
    return ListStore(
        [
            NamedList.build("trusted_customers", "customer", ["c-trusted", "c-vip"]),
            NamedList.build("blocked_ips", "ip", ["203.0.113.0/24", "198.51.100.7", "2001:db8::/32"]),
            NamedList.build("blocked_domains", "email_domain", ["@Mailinator.com", "trash.example"]),
            NamedList.build("blocked_emails", "email", ["Fraud@Example.com"]),
            NamedList.build("blocked_cards", "card", ["fp-stolen"]),
            NamedList.build("blocked_devices", "device", ["d-bad"]),
            NamedList.build("reshippers", "address", ["1250 forwarding way unit 4410|19801|us"]),
        ]
    )


@pytest.fixture
def schema() -> FeatureSchema:
    return make_schema()


@pytest.fixture
def lists() -> ListStore:
    return make_lists()
