"""The order feature schema, declared once: the featuriser, models and rules read it.

Names are stable; windows are written ``1h``, ``1d``, ``7d``, ``30d`` and always end at
the order's own event time (``(t - w, t]``), except the delayed-label families, whose
windows end a label delay before it (``(t - delay - w, t - delay]``).
"""

from __future__ import annotations

from contracts import FeatureSchema, FeatureSpec

__all__ = [
    "DIST_WINDOWS",
    "LINKS",
    "RISK_ENTITIES",
    "RISK_WINDOWS",
    "VEL_ENTITIES",
    "VEL_WINDOWS",
    "build_schema",
    "plural",
]

HOUR, DAY = 3600, 86400
VEL_WINDOWS: tuple[tuple[str, int], ...] = (("1h", HOUR), ("1d", DAY), ("7d", 7 * DAY), ("30d", 30 * DAY))
DIST_WINDOWS: tuple[tuple[str, int], ...] = (("1d", DAY), ("30d", 30 * DAY))
RISK_WINDOWS: tuple[tuple[str, int], ...] = (("1d", DAY), ("7d", 7 * DAY), ("30d", 30 * DAY))

#: Entities with velocity features (count and mean amount per window, time since previous).
VEL_ENTITIES: tuple[str, ...] = ("customer", "email", "card", "ip", "ip24", "device", "address")
#: Entities with delayed-label fraud risk.
RISK_ENTITIES: tuple[str, ...] = ("merchant", "card", "device", "address", "email_domain", "ip24")
#: Distinct-count links: (entity, linked entity) -> "<entity>_distinct_<linked>s_<w>".
LINKS: tuple[tuple[str, str], ...] = (
    ("device", "card"), ("device", "customer"), ("device", "email"),
    ("card", "email"), ("card", "customer"), ("card", "device"), ("card", "address"),
    ("email", "card"), ("email", "device"),
    ("address", "customer"), ("address", "card"), ("address", "email"),
    ("ip", "customer"), ("ip", "card"),
    ("customer", "card"), ("customer", "address"), ("customer", "device"), ("customer", "ip"),
)

_WHAT = {
    "customer": "customer", "email": "normalised e-mail", "card": "card fingerprint",
    "ip": "IP address", "ip24": "IP /24 (IPv6 /48)", "device": "device",
    "address": "normalised shipping address", "merchant": "merchant (seller or terminal)",
    "email_domain": "e-mail domain",
}
_PLURAL = {"address": "addresses"}


def plural(entity: str) -> str:
    return _PLURAL.get(entity, entity + "s")


def _attrs() -> list[FeatureSpec]:
    s = "string"
    return [
        FeatureSpec("customer_id", s, "id", "Customer id.", model_input=False),
        FeatureSpec("email", s, "text", "Customer e-mail, lower case.", model_input=False),
        FeatureSpec("email_domain", s, "domain", "Domain of the customer's e-mail.", model_input=False),
        FeatureSpec("card_fingerprint", s, "id", "Card fingerprint.", model_input=False),
        FeatureSpec("card_bin", s, "digits", "Card BIN (first 6-8 digits).", model_input=False),
        FeatureSpec("payment_method", s, "code", "Payment method as sent by the shop.", model_input=False),
        FeatureSpec("currency", s, "ISO-4217", "Order currency.", model_input=False),
        FeatureSpec("ip_address", s, "ip", "Client IP address.", model_input=False),
        FeatureSpec("ip_prefix", s, "cidr", "The IP's /24 (IPv6 /48).", model_input=False),
        FeatureSpec("device_id", s, "id", "Device id.", model_input=False),
        FeatureSpec("shipping_country", s, "ISO-3166", "Shipping country.", model_input=False),
        FeatureSpec("billing_country", s, "ISO-3166", "Billing country.", model_input=False),
        FeatureSpec("ip_country", s, "ISO-3166", "IP country: the shop's metadata.ip_country, else the CIDR table.", model_input=False),
        FeatureSpec("card_country", s, "ISO-3166", "Card issuing country.", model_input=False),
        FeatureSpec("phone_country", s, "ISO-3166", "Country of the phone's calling code.", model_input=False),
        FeatureSpec("merchant_id", s, "id", "Merchant (seller or terminal).", model_input=False),
        FeatureSpec("channel", s, "code", "Sales channel (web, app, ...).", model_input=False),
        FeatureSpec("address_key", s, "text", "Normalised shipping address key (street lines, postal code, country).", model_input=False),
        FeatureSpec("skus", "string_list", "sku", "SKUs in the basket.", model_input=False),
        FeatureSpec("categories", "string_list", "category", "Item categories in the basket.", model_input=False),
    ]


def _order() -> list[FeatureSpec]:
    n, b = "number", "bool"
    return [
        FeatureSpec("amount", n, "order currency", "Order amount as sent.", model_input=False),
        FeatureSpec("amount_base", n, "EUR", "Order amount in the base currency (static rates table).",
                    reason_code="high_amount", reason="amount {value:.0f} EUR"),
        FeatureSpec("currency_known", b, "flag", "The currency is in the rates table (or absent = EUR)."),
        FeatureSpec("item_count", n, "items", "Total quantity over all lines."),
        FeatureSpec("line_count", n, "lines", "Number of order lines."),
        FeatureSpec("distinct_skus", n, "skus", "Distinct SKUs in the basket."),
        FeatureSpec("max_sku_quantity", n, "items", "Largest quantity of one SKU.",
                    reason_code="bulk_quantity", reason="{value:.0f} units of one SKU"),
        FeatureSpec("unit_price_max", n, "EUR", "Highest unit price in the basket (base currency)."),
        FeatureSpec("local_hour", n, "hour", "Hour of day at the shipping country (UTC when unknown)."),
        FeatureSpec("local_weekday", n, "day", "Weekday at the shipping country, Monday = 0."),
        FeatureSpec("is_night", b, "flag", "Local time between 00:00 and 06:59 (the handbook's definition)."),
        FeatureSpec("is_weekend", b, "flag", "Local Saturday or Sunday."),
        FeatureSpec("account_age_days", n, "days", "Days between account creation and the order.",
                    reason_code="new_account", reason="account {value:.1f} days old"),
        FeatureSpec("customer_first_order", b, "flag", "No earlier order of this customer within 30 days (state horizon).",
                    reason_code="first_order", reason="first order of this customer"),
        FeatureSpec("has_note", b, "flag", "The order carries a note or gift message."),
    ]


def _geo() -> list[FeatureSpec]:
    b, n = "bool", "number"
    pairs = [("ship", "bill", "shipping", "billing"), ("ship", "ip", "shipping", "IP"),
             ("bill", "ip", "billing", "IP"), ("card", "bill", "card", "billing"),
             ("card", "ip", "card", "IP"), ("card", "ship", "card", "shipping")]
    out = [
        FeatureSpec(f"{a}_{c}_country_mismatch", b, "flag", f"Both known and {x} country != {y} country.",
                    reason_code=f"{a}_{c}_country_mismatch", reason=f"{x} country differs from {y} country")
        for a, c, x, y in pairs
    ]
    out += [
        FeatureSpec("countries_distinct", n, "countries", "Distinct known countries among shipping, billing, IP and card."),
        FeatureSpec("phone_country_mismatch", b, "flag", "Phone calling-code country known and != billing country."),
        FeatureSpec("email_country_mismatch", b, "flag", "E-mail ccTLD country known and != billing country."),
        FeatureSpec("country_combo_count_30d", n, "orders", "Earlier orders with this (shipping, billing, IP) country combination, 30 days (hourly buckets)."),
        FeatureSpec("country_combo_share_30d", n, "share", "Share of all orders in 30 days with this country combination (None before any history)."),
        FeatureSpec("country_combo_surprise_30d", n, "-log10", "Rarity of the country combination: -log10((combo+1)/(all+1)) over 30 days.",
                    reason_code="rare_country_combo", reason="rare country combination (surprise {value:.1f})"),
        FeatureSpec("sku_qty_ratio_max", n, "ratio", "Max over lines: quantity / that SKU's mean quantity from the same (shipping, IP) countries in 30 days (SKU mean overall when the pair is new).",
                    reason_code="unusual_sku_quantity", reason="{value:.1f}x the usual quantity of a SKU from these countries"),
        FeatureSpec("sku_country_surprise_max", n, "-log10", "Max over lines: -log10((orders of the SKU from these countries + 1)/(orders of the SKU + 1)), 30 days.",
                    reason_code="rare_sku_country", reason="SKU rarely bought from these countries (surprise {value:.1f})"),
        FeatureSpec("sku_orders_1d_max", n, "orders", "Max over lines: earlier orders of that SKU in the last day (hourly buckets)."),
        FeatureSpec("unit_price_dev_max", n, "ratio", "Max over lines: |unit price / SKU's recent median - 1| (last 25 prices)."),
    ]
    return out


def _identity() -> list[FeatureSpec]:
    b, n = "bool", "number"
    return [
        FeatureSpec("email_disposable", b, "flag", "Disposable e-mail domain (disposable-email-domains package).",
                    reason_code="disposable_email", reason="disposable e-mail domain"),
        FeatureSpec("email_freemail", b, "flag", "Free web-mail domain."),
        FeatureSpec("email_invalid", b, "flag", "An e-mail is given but is not a valid address (no domain with a dot).",
                    reason_code="invalid_email", reason="e-mail address is not valid"),
        FeatureSpec("email_local_digits", n, "digits", "Digits in the e-mail local part."),
        FeatureSpec("email_local_digit_share", n, "share", "Share of digits in the local part."),
        FeatureSpec("email_local_entropy", n, "bits/char", "Shannon entropy of the local part."),
        FeatureSpec("email_local_length", n, "chars", "Length of the local part."),
        FeatureSpec("name_email_similarity", n, "0-1", "How much of the customer's name shows in the e-mail local part."),
        FeatureSpec("shipping_po_box", b, "flag", "Shipping address is a PO box.", reason_code="po_box", reason="ships to a PO box"),
        FeatureSpec("shipping_reshipper", b, "flag", "Shipping address matches a known reshipper / forwarder pattern.",
                    reason_code="reshipper", reason="ships to a known reshipper / forwarder"),
        FeatureSpec("address_gibberish", n, "0-1", "Keyboard-walk / gibberish score of the shipping street and city.",
                    reason_code="gibberish_address", reason="address looks like gibberish"),
        FeatureSpec("billing_shipping_same", b, "flag", "Billing and shipping normalise to the same address."),
    ]


def _velocity() -> list[FeatureSpec]:
    n = "number"
    out: list[FeatureSpec] = []
    for e in VEL_ENTITIES:
        what = _WHAT[e]
        for w, _ in VEL_WINDOWS:
            out.append(FeatureSpec(f"{e}_tx_count_{w}", n, "orders", f"Orders of this {what} in the last {w}, this one included.",
                                   reason_code=f"{e}_velocity", reason=f"{{value:.0f}} orders of this {what} in {w}"))
            out.append(FeatureSpec(f"{e}_amount_sum_{w}", n, "EUR", f"Amount of this {what}'s orders in the last {w}, this one included."))
            out.append(FeatureSpec(f"{e}_amount_mean_{w}", n, "EUR", f"Mean amount of this {what}'s orders in the last {w}, this one included."))
        out.append(FeatureSpec(f"{e}_seconds_since_prev", n, "s", f"Seconds since this {what}'s previous order (None: none in the state horizon)."))
    out += [
        FeatureSpec("customer_amount_std_30d", n, "EUR", "Standard deviation of the customer's earlier order amounts, 30 days."),
        FeatureSpec("amount_to_customer_mean_30d", n, "ratio", "Amount / the customer's mean amount of earlier orders in 30 days.",
                    reason_code="amount_vs_customer", reason="amount {value:.1f}x this customer's 30-day mean"),
        FeatureSpec("amount_zscore_customer_30d", n, "z", "(amount - customer's 30-day mean) / max(std, 5% of mean), 3+ earlier orders."),
        FeatureSpec("merchant_live_count_1h", n, "orders", "Orders at this merchant in the last hour, this one included."),
        FeatureSpec("merchant_live_count_1d", n, "orders", "Orders at this merchant in the last day, this one included."),
        FeatureSpec("merchant_seconds_since_prev", n, "s", "Seconds since the merchant's previous order."),
    ]
    for e, link in LINKS:
        for w, _ in DIST_WINDOWS:
            out.append(FeatureSpec(f"{e}_distinct_{plural(link)}_{w}", n, plural(link),
                                   f"Distinct {plural(_WHAT[link])} seen with this {_WHAT[e]} in the last {w}, this order's included.",
                                   reason_code=f"{e}_{plural(link)}_link", reason=f"{{value:.0f}} {plural(_WHAT[link])} on this {_WHAT[e]} in {w}"))
    return out


def _risk() -> list[FeatureSpec]:
    n = "number"
    out = [
        FeatureSpec(f"merchant_tx_count_{w}", n, "orders",
                    f"Orders at this merchant in the {w} ending one label delay before this order (the risk denominator).")
        for w, _ in RISK_WINDOWS
    ]
    for e in RISK_ENTITIES:
        for w, _ in RISK_WINDOWS:
            out.append(FeatureSpec(f"{e}_fraud_risk_{w}", n, "share",
                                   f"Share of confirmed-fraud orders of this {_WHAT[e]} in the {w} ending one label delay before this order (0 without orders).",
                                   reason_code=f"{e}_fraud_risk", reason=f"{{value:.0%}} confirmed fraud on this {_WHAT[e]} ({w}, delayed)"))
    return out


def build_schema() -> FeatureSchema:
    return FeatureSchema.of([*_attrs(), *_order(), *_geo(), *_identity(), *_velocity(), *_risk()])
