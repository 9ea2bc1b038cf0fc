"""Entity keys that link orders without putting raw PII in the orders index or logs.

A key is a salted SHA-256 of the normalised value, cut to 32 hex digits: equal values
give equal keys on every worker, and the index (and anything that leaks from it) holds
no email, card, IP or address in clear.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

from contracts import Order

__all__ = ["entity_key", "normalise_address", "order_entity_keys"]

_SALT = "riskwire-entity-v1"
_NON_ALNUM = re.compile(r"[^0-9a-z]+")


def entity_key(kind: str, value: str) -> str:
    """The key of one entity value (already or not yet normalised: it is folded here)."""
    folded = unicodedata.normalize("NFKC", value).strip().lower()
    digest = hashlib.sha256(f"{_SALT}:{kind}:{folded}".encode()).hexdigest()
    return digest[:32]


def normalise_address(*parts: str | None) -> str:
    """Letters and digits of the address parts, lower case, one space between parts."""
    out = []
    for part in parts:
        if part:
            text = unicodedata.normalize("NFKD", part).encode("ascii", "ignore").decode().lower()
            text = _NON_ALNUM.sub(" ", text).strip()
            if text:
                out.append(text)
    return " ".join(out)


def order_entity_keys(order: Order) -> dict[str, str | None]:
    """Keys for email, card, device, ip, address (shipping) and customer; None when absent."""
    addr = order.shipping_address or order.billing_address
    address = (
        normalise_address(addr.line1, addr.line2, addr.postal_code, addr.country) if addr is not None else ""
    )
    raw = {
        "email": order.customer.email,
        "card": order.payment.card_fingerprint,
        "device": order.device_id,
        "ip": order.ip_address,
        "address": address or None,
        "customer": order.customer.customer_id,
    }
    return {kind: (entity_key(kind, value) if value else None) for kind, value in raw.items()}
