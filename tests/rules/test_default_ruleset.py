"""The shipped default ruleset: compiles against the real schema, is documented, behaves."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from contracts import FeatureSchema, Order
from rules import (
    DEFAULT_LISTS,
    DEFAULT_RULESET_PATH,
    ListStore,
    NamedList,
    load_default_ruleset,
    parse_ruleset,
)

README = Path(__file__).resolve().parents[2] / "rules" / "README.md"


def real_schema() -> FeatureSchema:
    features = pytest.importorskip("features")
    from detector.engine import ENGINE_ATTRIBUTES

    return features.build_schema().merged(ENGINE_ATTRIBUTES)


def test_default_ruleset_compiles_against_features_and_engine_attributes() -> None:
    ruleset = load_default_ruleset(real_schema())
    assert ruleset.version.startswith("ecommerce_default@")
    assert len(ruleset) >= 20
    assert any(r.rule.shadow for r in ruleset.rules)
    assert {r.rule.action for r in ruleset.rules} == {"allow", "decline", "review"}
    assert set(ruleset.lists) <= set(DEFAULT_LISTS)


def test_every_default_rule_is_documented() -> None:
    parsed = parse_ruleset(DEFAULT_RULESET_PATH.read_text(encoding="utf-8"))
    documented = set(re.findall(r"^#### `([a-z0-9_]+)`", README.read_text(encoding="utf-8"), flags=re.M))
    assert {r.id for r in parsed.rules} == documented


def _attributes(featurizer: Any, orders: list[Order]) -> list[dict[str, Any]]:
    rows = featurizer.featurize(orders)
    for row in rows:
        row.setdefault("text_labels", [])
        row["model_score"] = 10.0
    return rows


def test_default_rules_on_featurised_orders(order_factory: Callable[..., Order]) -> None:
    features = pytest.importorskip("features")
    featurizer = features.OrderFeaturizer()
    lists = ListStore.from_dir(None)
    lists.put(NamedList.build("trusted_customers", "customer", ["c-trusted"]))
    ruleset = load_default_ruleset(real_schema(), lists)
    clean, disposable, abroad, trusted = orders = [
        order_factory(order_id="o-clean"),
        order_factory(
            order_id="o-disposable",
            customer={"customer_id": "c-2", "email": "someone@mailinator.com"},
            payment={"amount": "900.00", "currency": "PLN", "card_fingerprint": "fp-2"},
        ),
        order_factory(
            order_id="o-abroad",
            customer={"customer_id": "c-3", "email": "new.buyer@example.com",
                      "account_created_at": "2026-11-22T08:50:00+00:00"},
            shipping_address={"line1": "1 Main St", "city": "Wilmington", "postal_code": "19801", "country": "US"},
            metadata={"ip_country": "PL"},
            device_id="d-3",
            payment={"card_fingerprint": "fp-3"},
        ),
        order_factory(
            order_id="o-trusted",
            customer={"customer_id": "c-trusted", "email": "vip@mailinator.com"},
            payment={"amount": "900.00", "currency": "PLN", "card_fingerprint": "fp-4"},
            device_id="d-4",
        ),
    ]
    rows = _attributes(featurizer, orders)
    hits = {o.order_id: {h.rule_id for h in ruleset.evaluate(r).hits} for o, r in zip(orders, rows, strict=True)}
    assert hits[clean.order_id] == set()
    assert "disposable_email_high_amount" in hits[disposable.order_id]
    assert "geo_mismatch_new_account" in hits[abroad.order_id]
    assert {"trusted_customer", "disposable_email_high_amount"} <= hits[trusted.order_id]


def test_card_testing_burst_declines(order_factory: Callable[..., Order]) -> None:
    features = pytest.importorskip("features")
    featurizer = features.OrderFeaturizer()
    ruleset = load_default_ruleset(real_schema())
    from tests.conftest import T0

    orders = [
        order_factory(
            order_id=f"o-{i}",
            created_at=(T0 + timedelta(minutes=i)).isoformat(),
            device_id="d-burst",
            payment={"card_fingerprint": f"fp-{i}", "amount": "1.00"},
        )
        for i in range(6)
    ]
    rows = _attributes(featurizer, orders)
    fired = [{h.rule_id for h in ruleset.evaluate(r).hits} for r in rows]
    assert "card_testing" not in fired[0]
    assert "card_testing" in fired[-1]
