"""OrderFeaturizer per family, on hand-built orders (``order_factory``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from contracts import Address, Label
from detector.engine import Featurizer
from features import OrderFeaturizer
from features.address import (
    address_key,
    gibberish_score,
    is_po_box,
    is_reshipper,
    normalize_address,
)
from features.geo import IpCountryTable, phone_country
from features.identity import parse_email

T0 = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)


def at(minutes: float) -> str:
    return (T0 + timedelta(minutes=minutes)).isoformat()


@pytest.fixture
def fz() -> OrderFeaturizer:
    return OrderFeaturizer()


def test_satisfies_engine_protocol_and_schema_covers_rows(fz, order_factory):
    assert isinstance(fz, Featurizer)
    row = fz.featurize([order_factory()])[0]
    assert set(row) == {s.name for s in fz.schema}
    for spec in fz.schema:
        assert spec.description and spec.unit
        if spec.type in ("string", "string_list"):
            assert not spec.model_input
    assert fz.version.endswith(fz.schema.digest)


def test_amount_in_base_currency_and_basket(fz, order_factory):
    o = order_factory(payment={"amount": "100.00", "currency": "PLN"},
                      items=[{"sku": "A", "quantity": 2, "unit_price": "30"}, {"sku": "B", "quantity": 1, "unit_price": "40"},
                             {"sku": "A", "quantity": 3, "unit_price": "30"}])
    row = fz.featurize([o])[0]
    rate = fz.rates["PLN"]
    assert row["amount"] == 100.0
    assert row["amount_base"] == pytest.approx(100.0 * rate)
    assert (row["item_count"], row["line_count"], row["distinct_skus"], row["max_sku_quantity"]) == (6, 3, 2, 5)
    assert row["skus"] == ["A", "B"]
    unknown = fz.featurize([order_factory(order_id="o-x", payment={"currency": "XXX"})])[0]
    assert unknown["amount_base"] is None and unknown["currency_known"] is False


def test_countries_mismatch_and_ip_country(fz, order_factory):
    o = order_factory(shipping_address={"country": "US", "line1": "1 Main St", "postal_code": "10001"},
                      ip_address="100.77.1.2", payment={"card_country": "PL"})
    row = fz.featurize([o])[0]
    assert row["ip_country"] == "NG"  # demo CIDR table
    assert row["ship_bill_country_mismatch"] and row["ship_ip_country_mismatch"] and row["bill_ip_country_mismatch"]
    assert row["card_ship_country_mismatch"] and not row["card_bill_country_mismatch"]
    assert row["countries_distinct"] == 3
    meta = fz.featurize([order_factory(order_id="o-2", ip_address="100.77.1.2", metadata={"ip_country": "pl"})])[0]
    assert meta["ip_country"] == "PL" and not meta["bill_ip_country_mismatch"]  # the shop's value wins


def test_ip_table_formats(tmp_path):
    t = IpCountryTable.demo()
    assert t.lookup("198.51.100.7") == "PL" and t.lookup("2001:db8:2::1") == "DE"
    assert t.lookup("8.8.8.8") is None and t.lookup("not-an-ip") is None
    blocks = tmp_path / "GeoLite2-Country-Blocks-IPv4.csv"
    blocks.write_text("network,geoname_id,registered_country_geoname_id,represented_country_geoname_id,is_anonymous_proxy,is_satellite_provider\n"
                      "8.8.8.0/24,6252001,6252001,,0,0\n")
    locs = tmp_path / "GeoLite2-Country-Locations-en.csv"
    locs.write_text("geoname_id,locale_code,continent_code,continent_name,country_iso_code,country_name,is_in_european_union\n"
                    "6252001,en,NA,North America,US,United States,0\n")
    assert IpCountryTable.from_maxmind([blocks], locs).lookup("8.8.8.8") == "US"


def test_email_identity_signals(fz, order_factory):
    row = fz.featurize([order_factory(customer={"email": "xk93jd8s2@mailinator.com", "name": "Anna Nowak"})])[0]
    assert row["email_disposable"] and not row["email_freemail"]
    assert row["email_local_digits"] == 4
    assert row["email_local_entropy"] > 2.5
    assert row["name_email_similarity"] < 0.2
    good = fz.featurize([order_factory(order_id="o-2", customer={"email": "Anna.Nowak+shop@gmail.com", "name": "Anna Nowak"})])[0]
    assert good["email_freemail"] and not good["email_disposable"]
    assert good["name_email_similarity"] == 1.0
    assert parse_email("A.n.n.a+x@googlemail.com").normalized == "anna@gmail.com"
    assert parse_email("not an email") is None
    assert phone_country("+48 600 100 200") == "PL" and phone_country("0049 30 1234") == "DE" and phone_country("600") is None
    mismatch = fz.featurize([order_factory(order_id="o-3", customer={"phone": "+49 30 1234", "email": "a@wp.de"})])[0]
    assert mismatch["phone_country_mismatch"] and mismatch["email_country_mismatch"]


def test_address_normalisation_po_box_reshipper_gibberish():
    a = Address(line1="ul. Długa 5, Apt #4", postal_code="80-827", city="Gdańsk", country="PL")
    b = Address(line1="UL DLUGA 5  apartment 4", postal_code="80827", city="GDANSK", country="pl")
    assert address_key(a) == address_key(b)
    assert address_key(Address(line1="Long Street 5", country="GB")) == address_key(Address(line1="long st. 5", country="GB"))
    assert address_key(Address(line1="ul. Dluga 6", postal_code="80-827", country="PL")) != address_key(a)
    assert is_po_box(Address(line1="P.O. Box 123")) and is_po_box(Address(line1="Postfach 12 34"))
    assert not is_po_box(Address(line1="Boxhagener Str. 5"))
    fwd = Address(line1="1250 Forwarding Way, Unit 4410", city="Wilmington", postal_code="19801", country="US")
    assert is_reshipper(normalize_address(fwd))
    assert not is_reshipper(normalize_address(a))
    assert gibberish_score("asdfgh qwerty") >= 0.6
    assert gibberish_score("Kerkstraat 12 Amsterdam") == 0.0
    assert gibberish_score("ul. Dluga 5 Gdansk") == 0.0


def test_velocity_windows_in_event_time_and_batch_order(fz, order_factory):
    orders = [order_factory(order_id=f"o-{i}", created_at=at(m), payment={"amount": str(a), "currency": "EUR"})
              for i, (m, a) in enumerate([(0, 10), (30, 20), (59.9, 30), (200, 40)])]
    rows = fz.featurize(orders)
    assert [r["customer_tx_count_1h"] for r in rows] == [1, 2, 3, 1]  # (t - 1h, t], this order included
    assert [r["customer_tx_count_1d"] for r in rows] == [1, 2, 3, 4]
    assert rows[2]["customer_amount_mean_1h"] == pytest.approx(20.0)
    assert rows[3]["customer_amount_mean_1d"] == pytest.approx(25.0)
    assert rows[3]["customer_amount_sum_1d"] == pytest.approx(100.0) and rows[3]["customer_amount_sum_1h"] == pytest.approx(40.0)
    assert rows[0]["customer_seconds_since_prev"] is None and rows[1]["customer_seconds_since_prev"] == 1800
    assert rows[0]["customer_first_order"] and not rows[1]["customer_first_order"]
    assert rows[1]["amount_to_customer_mean_30d"] == pytest.approx(2.0)


def test_out_of_order_event_sees_only_earlier_events(fz, order_factory):
    fz.featurize([order_factory(order_id="late-0", created_at=at(0)), order_factory(order_id="late-2", created_at=at(40))])
    late = fz.featurize([order_factory(order_id="late-1", created_at=at(20))])[0]
    assert late["customer_tx_count_1h"] == 2  # the 09:00 order and itself, not the 09:40 one
    after = fz.featurize([order_factory(order_id="late-3", created_at=at(50))])[0]
    assert after["customer_tx_count_1h"] == 4


def test_distinct_links(fz, order_factory):
    orders = [order_factory(order_id=f"o-{i}", created_at=at(i), payment={"card_fingerprint": f"fp-{i % 3}"},
                            customer={"customer_id": f"c-{i}"}) for i in range(5)]
    rows = fz.featurize(orders)
    assert [r["device_distinct_cards_1d"] for r in rows] == [1, 2, 3, 3, 3]
    assert [r["device_distinct_customers_30d"] for r in rows] == [1, 2, 3, 4, 5]
    assert rows[3]["card_distinct_customers_1d"] == 2  # fp-0 used by c-0 and c-3


def test_redelivered_order_gets_same_features_and_is_recorded_once(fz, order_factory):
    a, b = order_factory(order_id="a", created_at=at(0)), order_factory(order_id="b", created_at=at(1))
    first = fz.featurize([a, b])
    again = fz.featurize([b, a, a]).rows()
    assert again == [first[1], first[0], first[0]]
    c = fz.featurize([order_factory(order_id="c", created_at=at(2))])[0]
    assert c["customer_tx_count_1h"] == 3  # a and b counted once each


def test_delayed_label_risk(order_factory):
    fz = OrderFeaturizer(label_delay_s=86400)
    day = 24 * 60
    orders = [order_factory(order_id=f"m-{i}", created_at=at(i), merchant_id="m-bad", device_id=f"d-{i}",
                            customer={"customer_id": f"c-{i}"}) for i in range(4)]
    fz.featurize(orders)
    assert fz.apply_labels([Label(order_id="m-1", label="fraud", source="chargeback", created_at=T0 + timedelta(days=1))]) == 1
    assert fz.apply_labels([Label(order_id="m-1", label="fraud", source="analyst", created_at=T0 + timedelta(days=1))]) == 0
    assert fz.apply_labels([Label(order_id="unknown", label="fraud", source="chargeback", created_at=T0)]) == 0
    early = fz.featurize([order_factory(order_id="x-1", created_at=at(day - 10), merchant_id="m-bad")])[0]
    assert early["merchant_fraud_risk_1d"] == 0.0 and early["merchant_tx_count_1d"] == 0  # window still empty
    later = fz.featurize([order_factory(order_id="x-2", created_at=at(day + 10), merchant_id="m-bad", device_id="d-1")])[0]
    assert later["merchant_tx_count_1d"] == 4
    assert later["merchant_fraud_risk_1d"] == pytest.approx(0.25)
    assert later["device_fraud_risk_1d"] == pytest.approx(1.0)
    fz.apply_labels([Label(order_id="m-1", label="legit", source="analyst", created_at=T0 + timedelta(days=1))])
    cleared = fz.featurize([order_factory(order_id="x-3", created_at=at(day + 11), merchant_id="m-bad")])[0]
    assert cleared["merchant_fraud_risk_1d"] == 0.0


def test_sku_quantity_from_unusual_countries_and_combo_rarity(fz, order_factory):
    normal = [order_factory(order_id=f"n-{i}", created_at=at(i), customer={"customer_id": f"c-{i}"},
                            items=[{"sku": "GPU", "quantity": 1, "unit_price": "300"}]) for i in range(20)]
    fz.featurize(normal)
    odd = order_factory(order_id="odd", created_at=at(30), ip_address="100.71.0.9", customer={"customer_id": "c-x"},
                        shipping_address={"country": "US", "line1": "9 Elm St", "postal_code": "19801"},
                        items=[{"sku": "GPU", "quantity": 6, "unit_price": "150"}])
    row = fz.featurize([odd])[0]
    assert row["sku_qty_ratio_max"] == pytest.approx(6.0)  # vs the SKU's mean (new country pair)
    assert row["sku_country_surprise_max"] == pytest.approx(-__import__("math").log10(1 / 21))
    assert row["country_combo_count_30d"] == 0 and row["country_combo_surprise_30d"] > 1.0
    assert row["unit_price_dev_max"] == pytest.approx(0.5)
    usual = fz.featurize([order_factory(order_id="n-x", created_at=at(31), customer={"customer_id": "c-y"},
                                        items=[{"sku": "GPU", "quantity": 2, "unit_price": "300"}])])[0]
    assert usual["sku_qty_ratio_max"] == pytest.approx(2.0)
    assert usual["country_combo_share_30d"] == pytest.approx(20 / 21)


def test_local_time_at_shipping_country(fz, order_factory):
    row = fz.featurize([order_factory(created_at="2026-11-22T23:30:00+00:00",
                                      shipping_address={"country": "JP", "line1": "1-1 Chiyoda", "postal_code": "100-0001"})])[0]
    assert (row["local_hour"], row["local_weekday"], row["is_night"], row["is_weekend"]) == (8, 0, False, False)
    acc = fz.featurize([order_factory(order_id="o-2", customer={"account_created_at": at(-30)})])[0]
    assert acc["account_age_days"] == pytest.approx(30 / 1440)


def test_missing_fields_are_none_not_errors(fz):
    from contracts import Order

    row = fz.featurize([Order(order_id="bare", created_at=T0)])[0]
    assert row["email_disposable"] is None and row["customer_tx_count_1h"] is None and row["amount_base"] is None
    assert row["country_combo_count_30d"] == 0


def test_bucket_sizes_come_from_settings_and_change_the_version(monkeypatch, order_factory):
    from detector.settings import Settings
    from detector.wiring import build_featurizer

    def live_count(fz) -> float:
        first = order_factory(order_id="r-1", created_at=T0 + timedelta(seconds=50), merchant_id="m-hot")
        second = order_factory(order_id="r-2", created_at=T0 + timedelta(seconds=3640), merchant_id="m-hot")
        return fz.featurize([first, second])[1]["merchant_live_count_1h"]

    exact = build_featurizer(Settings())
    monkeypatch.setenv("RISKWIRE_STATE__RESOLUTIONS", '{"merchant": 60}')
    coarse = build_featurizer(Settings())
    # (t - 1 h, t] from 3,640 s starts at 40 s: the first order (50 s) is in it, but its
    # one-minute bucket (starting at 0 s) is not.
    assert (live_count(exact), live_count(coarse)) == (2, 1)
    assert coarse.version == exact.version + "+res:merchant=60"


@pytest.mark.parametrize("bad", [{"merchnat": 60}, {"skuc": 60}, {"merchant": 0}, {"merchant": 1.5}, {"sku": True}])
def test_bad_bucket_sizes_are_refused(bad):
    from contracts import ConfigError

    with pytest.raises(ConfigError):
        OrderFeaturizer(resolutions=bad)
