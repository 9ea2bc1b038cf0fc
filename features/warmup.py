"""Compile the featuriser's kernels into numba's on-disk cache: ``python -m features.warmup``.

Numba compiles on first use (~30 s on a small machine) and caches the machine code next
to ``features/state/kernels.py``; running this once after installing means no worker,
API or test process pays that at start-up. Safe to run again: a warm cache loads in
well under a second.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from contracts import Label, Order
from features.featurizer import OrderFeaturizer

__all__ = ["warm_up"]


def warm_up() -> float:
    """Featurise and label a few synthetic orders (every kernel path); returns seconds."""
    t0 = time.perf_counter()
    f = OrderFeaturizer(label_delay_s=60)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    orders = [
        Order.model_validate({
            "order_id": f"warmup-{i}", "created_at": (start + timedelta(minutes=i)).isoformat(),
            "customer": {"customer_id": f"c{i % 2}", "email": f"u{i % 2}@example.com"},
            "payment": {"amount": "10", "currency": "EUR", "card_fingerprint": f"fp{i % 3}"},
            "shipping_address": {"line1": "1 Main St", "postal_code": "10001", "country": "US"},
            "ip_address": "203.0.113.7", "device_id": "d1", "merchant_id": "m1",
            "items": [{"sku": "S1", "quantity": 1, "unit_price": "10"}],
        })
        for i in range(3)
    ]
    f.featurize(orders)
    f.apply_labels([Label(order_id="warmup-0", label="fraud", source="chargeback", created_at=start)])
    f.featurize(orders[:1])  # a re-delivery
    return time.perf_counter() - t0


if __name__ == "__main__":
    print(f"features: kernels ready in {warm_up():.1f} s")
