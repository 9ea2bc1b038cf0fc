"""Feature extraction on the fictional e-commerce identities in ../shared/data (skips if absent)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from contracts import Order
from features import OrderFeaturizer
from features.identity import is_freemail

DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "ecommerce_customers"
T0 = datetime(2026, 11, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    if not (DATA / "Customer_DF.csv").exists():
        pytest.skip(f"ecommerce_customers data absent: {DATA}")
    return pd.read_csv(DATA / "Customer_DF.csv"), pd.read_csv(DATA / "cust_transaction_details.csv")


def _address(text: str) -> dict[str, str | None]:
    """``"5493 Jones Islands\\nBrownside, CA 51896"`` -> address fields (US)."""
    line1, _, rest = text.partition("\n")
    m = re.match(r"(?P<city>.*?),?\s+(?P<region>[A-Z]{2})\s+(?P<postal>\d{5})$", rest.strip())
    if m:
        return {"line1": line1, "city": m["city"], "region": m["region"], "postal_code": m["postal"], "country": "US"}
    return {"line1": line1, "line2": rest or None, "country": "US"}


@pytest.fixture(scope="module")
def featurised(frames):
    customers, txs = frames
    by_email = customers.drop_duplicates("customerEmail").set_index("customerEmail")
    orders = []
    for i, tx in enumerate(txs.itertuples()):
        c = by_email.loc[tx.customerEmail]
        addr = _address(c.customerBillingAddress)
        orders.append(Order.model_validate({
            "order_id": f"{tx.orderId}-{i}", "created_at": (T0 + timedelta(minutes=i)).isoformat(),
            "customer": {"customer_id": tx.customerEmail, "email": tx.customerEmail, "phone": c.customerPhone},
            "payment": {"method": tx.paymentMethodType, "card_fingerprint": tx.paymentMethodId,
                        "amount": str(tx.transactionAmount), "currency": "USD"},
            "billing_address": addr, "shipping_address": addr,
            "ip_address": c.customerIPAddress, "device_id": c.customerDevice,
        }))
    f = OrderFeaturizer()
    rows = []
    for k in range(0, len(orders), 100):
        rows += f.featurize(orders[k : k + 100])
    return orders, rows


def test_every_identity_is_parsed(frames, featurised):
    orders, rows = featurised
    assert len(rows) == len(frames[1])
    usd = OrderFeaturizer().rates["USD"]
    for o, r in zip(orders, rows, strict=True):
        domain = o.customer.email.lower().rsplit("@", 1)[1]
        if "." not in domain:  # a few fictional addresses have no real domain
            assert r["email_invalid"] and r["email_domain"] is None and r["email_disposable"] is None
            continue
        assert not r["email_invalid"] and r["email_domain"] == domain
        assert r["email_freemail"] == is_freemail(domain)
        assert r["email_local_digits"] == sum(ch.isdigit() for ch in o.customer.email.split("@")[0])
        assert r["address_key"] is not None and r["billing_shipping_same"]
        assert r["shipping_po_box"] == bool(re.search(r"\bBox \d+", o.shipping_address.line1 or "") or
                                            re.search(r"\bBox \d+", o.shipping_address.line2 or ""))
        assert r["ip_country"] is None  # not in the demo table, no metadata
        assert r["phone_country"] is None or (o.customer.phone or "").startswith(("+", "00"))
        assert r["amount_base"] == pytest.approx(float(o.payment.amount) * usd)


def test_per_customer_state_matches_the_raw_tables(frames, featurised):
    _, txs = frames
    orders, rows = featurised
    last = {o.customer.email: r for o, r in zip(orders, rows, strict=True)}
    expected_tx = txs.groupby("customerEmail").size()
    expected_cards = txs.groupby("customerEmail").paymentMethodId.nunique()
    for email, row in last.items():
        # All of a customer's transactions fall within 30 days here (one per minute).
        assert row["customer_tx_count_30d"] == expected_tx[email]
        assert row["customer_distinct_cards_30d"] == expected_cards[email]
    shared = txs.groupby("paymentMethodId").customerEmail.nunique()
    for o, r in zip(orders, rows, strict=True):
        assert r["card_distinct_customers_30d"] <= shared[o.payment.card_fingerprint]
