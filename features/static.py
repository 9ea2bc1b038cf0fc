"""The stateless half of an order's features: a pure function of the order and static tables.

:meth:`StaticFeatures.extract` returns the static feature values plus what the stateful
kernel needs (event time, base amount, entity values, basket lines). What
repeats across orders (an address, an e-mail, a phone, a local hour) is computed once
and cached, so a returning customer costs a few dictionary look-ups.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, NamedTuple

from contracts import Address, Order
from features.address import (
    address_key,
    gibberish_score,
    is_po_box,
    is_reshipper,
    normalize_address,
)
from features.geo import (
    IpCountryTable,
    country_timezone,
    email_tld_country,
    ip_prefix,
    local_time,
    phone_country,
)
from features.identity import name_email_similarity, parse_email
from features.state import member_digest

__all__ = [
    "ENTITY_FAMILIES",
    "MAX_ITEMS",
    "MEMBER_FAMILIES",
    "Extracted",
    "StaticFeatures",
    "address_facts",
    "member_id",
    "time_block",
]

DAY = 86400
MAX_ITEMS = 20
#: Entity families with state, in the column order of the kernel's entity matrix.
ENTITY_FAMILIES = ("customer", "email", "card", "ip", "ip24", "device", "address", "merchant", "email_domain")
#: Families whose value is a member of a distinct-count link, in member-column order.
MEMBER_FAMILIES = ("customer", "email", "card", "device", "address", "ip")
_INT64 = 1 << 63


class Extracted(NamedTuple):
    """One order's static part."""

    order_id: str
    t: int
    amount: float
    row: dict[str, Any]
    #: Entity values per ``ENTITY_FAMILIES`` (None when absent).
    entities: tuple[str | None, ...]
    combo: str
    #: (sku, quantity, unit price in base currency or None), at most ``MAX_ITEMS``.
    items: list[tuple[str, int, float | None]]
    ship_ip: str


def member_id(value: str) -> int:
    """The member digest as a signed 64-bit integer that sorts like the digest bytes."""
    return int.from_bytes(member_digest(value), "big") - _INT64


_ADDRESSES: dict[tuple[str | None, ...], tuple[str | None, bool, bool, float | None]] = {}


def address_facts(a: Address) -> tuple[str | None, bool, bool, float | None]:
    """(normalised key, PO box, reshipper, gibberish score) of an address, cached by its fields."""
    fields = (a.line1, a.line2, a.city, a.region, a.postal_code, a.country)
    hit = _ADDRESSES.get(fields)
    if hit is None:
        street = " ".join(x for x in (a.line1, a.city) if x)
        hit = (address_key(a), is_po_box(a), is_reshipper(normalize_address(a)),
               gibberish_score(street) if street else None)
        if len(_ADDRESSES) >= 1 << 16:
            _ADDRESSES.clear()
        _ADDRESSES[fields] = hit
    return hit


@lru_cache(maxsize=1 << 14)
def _zone_time_block(country: str, quarter: int) -> dict[str, Any]:
    # Every zone's UTC offset is a multiple of 15 minutes, so the local hour and weekday
    # are constant over a UTC quarter-hour: one zoneinfo conversion per country and quarter.
    local = local_time(datetime.fromtimestamp(quarter * 900, UTC), country)
    return _time_block(local.hour, local.weekday())


def time_block(when: datetime, t: float, country: str | None) -> dict[str, Any]:
    """Local hour, weekday, night and weekend at the country's zone (the timestamp's own
    offset when the country's zone is unknown)."""
    if country_timezone(country) is None:
        return _time_block(when.hour, when.weekday())
    return _zone_time_block(country, int(t // 900))  # type: ignore[arg-type]


@lru_cache(maxsize=1 << 16)
def _email_block(email: str, name: str | None) -> tuple[dict[str, Any], str | None, str | None, str | None]:
    """(row values, normalised e-mail, domain, ccTLD country) of an e-mail and name."""
    info = parse_email(email)
    if info is None:
        return {"email_invalid": True}, None, None, None
    return {
        "email_invalid": False,
        "email": info.local + "@" + info.domain,
        "email_domain": info.domain,
        "email_disposable": info.disposable,
        "email_freemail": info.freemail,
        "email_local_digits": info.digits,
        "email_local_digit_share": info.digit_share,
        "email_local_entropy": info.entropy,
        "email_local_length": info.length,
        "name_email_similarity": name_email_similarity(name, info.local),
    }, info.normalized, info.domain, email_tld_country(info.domain)


@lru_cache(maxsize=1 << 14)
def _geo_block(ship_c: str | None, bill_c: str | None, ip_c: str | None, card_c: str | None,
               phone_c: str | None, tld_c: str | None) -> dict[str, Any]:
    """Country values and their disagreements (a few hundred combinations in practice)."""
    return {
        "shipping_country": ship_c, "billing_country": bill_c, "ip_country": ip_c, "card_country": card_c,
        "ship_bill_country_mismatch": bool(ship_c and bill_c and ship_c != bill_c),
        "ship_ip_country_mismatch": bool(ship_c and ip_c and ship_c != ip_c),
        "bill_ip_country_mismatch": bool(bill_c and ip_c and bill_c != ip_c),
        "card_bill_country_mismatch": bool(card_c and bill_c and card_c != bill_c),
        "card_ip_country_mismatch": bool(card_c and ip_c and card_c != ip_c),
        "card_ship_country_mismatch": bool(card_c and ship_c and card_c != ship_c),
        "countries_distinct": len({c for c in (ship_c, bill_c, ip_c, card_c) if c}),
        "phone_country": phone_c,
        "phone_country_mismatch": bool(phone_c and bill_c and phone_c != bill_c),
        "email_country_mismatch": bool(tld_c and bill_c and tld_c != bill_c),
    }


@lru_cache(maxsize=1 << 14)
def _time_block(hour: int, weekday: int) -> dict[str, Any]:
    return {"local_hour": hour, "local_weekday": weekday, "is_night": hour <= 6, "is_weekend": weekday >= 5}


class StaticFeatures:
    """Static feature values of an order, and the keys its stateful part needs.

    What depends only on one e-mail, address, country combination or local hour comes
    from a cached block of row values, merged with one ``dict.update``.
    """

    def __init__(self, *, names: tuple[str, ...], rates: dict[str, float], ip_table: IpCountryTable) -> None:
        self._template = dict.fromkeys(names)
        self._rates = rates
        self._ip_table = ip_table

    def extract(self, order: Order) -> Extracted:
        row = self._template.copy()
        cust, pay = order.customer, order.payment
        ship, bill = order.shipping_address, order.billing_address

        amount = float(pay.amount) if pay.amount is not None else None
        rate = self._rates.get(pay.currency or "EUR")
        base = amount * rate if (amount is not None and rate is not None) else None
        row["amount"] = amount
        row["amount_base"] = base
        row["currency"] = pay.currency
        row["currency_known"] = rate is not None
        row["payment_method"] = pay.method
        row["card_bin"] = pay.card_bin
        row["channel"] = order.channel

        customer = cust.customer_id or None
        email = domain = tld_c = None
        if cust.email:
            values, email, domain, tld_c = _email_block(cust.email, cust.name)
            row.update(values)
        card = pay.card_fingerprint or None
        ip = order.ip_address or None
        prefix = ip_prefix(ip) if ip else None
        device = order.device_id or None
        merchant = order.merchant_id or None
        row["customer_id"], row["card_fingerprint"], row["ip_address"] = customer, card, ip
        row["ip_prefix"], row["device_id"], row["merchant_id"] = prefix, device, merchant

        # Countries.
        ship_c = ship.country if ship is not None else None
        bill_c = bill.country if bill is not None else None
        meta_ip = order.metadata.get("ip_country") if order.metadata else None
        ip_c = meta_ip.upper() if isinstance(meta_ip, str) and len(meta_ip) == 2 else self._ip_table.lookup(ip)
        row.update(_geo_block(ship_c, bill_c, ip_c, pay.card_country, phone_country(cust.phone), tld_c))

        # Time.
        created = order.created_at
        ts = created.timestamp()
        row.update(time_block(created, ts, ship_c or bill_c or ip_c))
        if cust.account_created_at is not None:
            row["account_age_days"] = (created - cust.account_created_at).total_seconds() / DAY
        row["has_note"] = bool(order.note or order.gift_message)

        # Address.
        key = None
        if ship is not None:
            key, po_box, reshipper, gibberish = address_facts(ship)
            row["address_key"] = key or None
            row["shipping_po_box"] = po_box
            row["shipping_reshipper"] = reshipper
            row["address_gibberish"] = gibberish
            row["billing_shipping_same"] = bool(key) and bill is not None and key == address_facts(bill)[0]

        # Basket.
        items = order.items
        lines: list[tuple[str, int, float | None]] = []
        if items:
            qty: dict[str, int] = {}
            price: dict[str, float | None] = {}
            cats: list[str] = []
            umax = None
            for it in items:
                qty[it.sku] = qty.get(it.sku, 0) + it.quantity
                p = None
                if it.unit_price is not None and rate is not None:
                    p = float(it.unit_price) * rate
                    umax = p if umax is None or p > umax else umax
                price.setdefault(it.sku, p)
                if it.category and it.category not in cats:
                    cats.append(it.category)
            row["item_count"] = sum(qty.values())
            row["line_count"] = len(items)
            row["distinct_skus"] = len(qty)
            row["max_sku_quantity"] = max(qty.values())
            row["unit_price_max"] = umax
            row["skus"] = list(qty)
            row["categories"] = cats
            lines = [(s, q, price[s]) for s, q in list(qty.items())[:MAX_ITEMS]]
        else:
            row["item_count"] = row["line_count"] = row["distinct_skus"] = 0
            row["skus"], row["categories"] = [], []
        return Extracted(
            order.order_id, int(ts), base if base is not None else 0.0, row,
            (customer, email, card, ip, prefix, device, key or None, merchant, domain),
            f"{ship_c or '-'}|{bill_c or '-'}|{ip_c or '-'}", lines, f"{ship_c or '-'}|{ip_c or '-'}",
        )
