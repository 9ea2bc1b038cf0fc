"""Return-request features: the customer's and the address's return history, per micro-batch.

For each :class:`contracts.ReturnRequest`, in input order, from event-time state (the
same :class:`features.state.StateStore` the order featuriser uses, so Redis shares it
across workers):

- returns and refunded amount (base currency) per customer and per normalised shipping
  address over 7, 30 and 90 days, this return included;
- distinct customers returning to the same address over 30 days (a ring ships to one
  drop);
- the refund share of spend: refunded amount over the customer's order amount in the
  last 30 days, read from the order featuriser (``OrderFeaturizer.customer_spend``);
- time since the order (hours).

A return id seen before gets the features it got the first time and is never counted
twice (at-least-once delivery replays records). The text part (labels and the
recurring-phrase cluster of the reason) comes from the text stage, not from here.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from contracts import FeatureSchema, FeatureSpec, ReturnRequest
from features.address import address_key
from features.currency import load_rates
from features.state import MemoryState, StateStore, StateView, member_digest

__all__ = ["RETURN_FEATURES_VERSION", "RETURN_SCHEMA", "RETURN_WINDOWS", "ReturnFeaturizer"]

RETURN_FEATURES_VERSION = "returns-1"
DAY = 86400
RETURN_WINDOWS: tuple[tuple[str, int], ...] = (("7d", 7 * DAY), ("30d", 30 * DAY), ("90d", 90 * DAY))
_SPANS = tuple(s for _, s in RETURN_WINDOWS)
#: The order featuriser keeps per-customer spend 30 days (+ lateness); that bounds the share.
SPEND_WINDOW_S = 30 * DAY


def _specs() -> list[FeatureSpec]:
    specs = [
        FeatureSpec("is_return", "bool", "flag", "True for a return request (rules can tell returns from orders).",
                    model_input=False),
        FeatureSpec("return_amount_base", "number", "base currency", "Refund requested, in the base currency.",
                    reason_code="RETURN_AMOUNT", reason="refund of {value:.0f} (base currency)"),
        FeatureSpec("hours_since_order", "number", "hours", "Time from the order to this return request.",
                    reason_code="RETURN_TIMING", reason="return requested {value:.1f} h after the order"),
    ]
    for w, _ in RETURN_WINDOWS:
        specs += [
            FeatureSpec(f"customer_return_count_{w}", "number", "count",
                        f"Returns by this customer over {w}, this one included.",
                        reason_code="RETURN_CUSTOMER_COUNT", reason=f"{{value:.0f}} returns by this customer in {w}"),
            FeatureSpec(f"customer_refund_amount_{w}", "number", "base currency",
                        f"Refund amount requested by this customer over {w}.",
                        reason_code="RETURN_CUSTOMER_AMOUNT", reason=f"{{value:.0f}} refunded to this customer in {w}"),
            FeatureSpec(f"address_return_count_{w}", "number", "count",
                        f"Returns from this shipping address over {w}, this one included.",
                        reason_code="RETURN_ADDRESS_COUNT", reason=f"{{value:.0f}} returns from this address in {w}"),
            FeatureSpec(f"address_refund_amount_{w}", "number", "base currency",
                        f"Refund amount requested from this shipping address over {w}.",
                        reason_code="RETURN_ADDRESS_AMOUNT", reason=f"{{value:.0f}} refunded to this address in {w}"),
        ]
    specs += [
        FeatureSpec("address_return_customers_30d", "number", "count",
                    "Distinct customers returning from this shipping address over 30 days.",
                    reason_code="RETURN_ADDRESS_ACCOUNTS", reason="{value:.0f} accounts return from this address"),
        FeatureSpec("customer_spend_30d", "number", "base currency",
                    "The customer's order amount over the last 30 days (from order state).", model_input=False),
        FeatureSpec("refund_share_of_spend_30d", "number", "ratio",
                    "Refunds over 30 days divided by the customer's spend over 30 days.",
                    reason_code="RETURN_REFUND_SHARE", reason="refunds are {value:.0%} of this customer's spend"),
    ]
    return specs


#: The return features (the text stage adds ``phrase_cluster_*`` and text labels).
RETURN_SCHEMA = FeatureSchema.of(_specs())


class ReturnFeaturizer:
    """Return-history features from event-time state.

    Parameters
    ----------
    state : StateStore
        Where return history lives: share the order featuriser's (``OrderFeaturizer.state``)
        so Redis shares it across workers; a private ``MemoryState`` otherwise.
    spend_of : callable, optional
        ``[(customer id, event time)] -> [spend over 30 days]``, the order featuriser's
        ``customer_spend``; without it the customer's spend (and the share) is unknown.
    allowed_lateness_s : int
        Out-of-order returns up to this much older than the newest one still count.
    """

    def __init__(
        self,
        *,
        state: StateStore | None = None,
        spend_of: Callable[[Sequence[tuple[str, float]]], list[float]] | None = None,
        allowed_lateness_s: int = 3600,
        distinct_cap: int = 128,
    ) -> None:
        self.state = state if state is not None else MemoryState()
        self.schema = RETURN_SCHEMA
        self.version = f"{RETURN_FEATURES_VERSION}+{self.schema.digest}"
        self._ttl = max(_SPANS) + int(allowed_lateness_s) + DAY
        self._spend_of = spend_of
        self._cap = distinct_cap
        self._rates = load_rates()
        self._template: dict[str, Any] = dict.fromkeys(s.name for s in self.schema)

    def featurize(self, returns: Sequence[ReturnRequest]) -> list[dict[str, Any]]:
        """Features per return, in input order; records each return id once."""
        if not returns:
            return []
        ctxs = [self._static(r) for r in returns]
        if self._spend_of is not None:
            # Read before this batch's transaction: the order state is the order featuriser's.
            known = [c for c in ctxs if c["customer"]]
            for c, spent in zip(known, self._spend_of([(c["customer"], c["t"]) for c in known]), strict=True):
                c["spend"] = spent
        keys: list[str] = []
        for c in ctxs:
            keys += c["keys"]
        return self.state.transact(keys, lambda view: [self._stateful(view, c) for c in ctxs])

    # ------------------------------------------------------------------ parts
    def _static(self, ret: ReturnRequest) -> dict[str, Any]:
        row = dict(self._template)
        row["is_return"] = True
        amount = float(ret.amount) if ret.amount is not None else None
        rate = self._rates.get(ret.currency or "") if ret.currency else None
        base = amount * rate if (amount is not None and rate is not None) else amount
        row["return_amount_base"] = base
        t = ret.created_at.timestamp()
        if ret.order_created_at is not None:
            row["hours_since_order"] = round(max(t - ret.order_created_at.timestamp(), 0.0) / 3600.0, 4)
        addr = address_key(ret.shipping_address)
        keys = [f"RR|{ret.return_id}"]
        if ret.customer_id:
            keys.append(f"R.customer|{ret.customer_id}")
        if addr:
            keys.append(f"R.address|{addr}")
        return {"row": row, "t": t, "amount": base or 0.0, "customer": ret.customer_id, "address": addr,
                "return_id": ret.return_id, "keys": keys}

    def _stateful(self, view: StateView, ctx: dict[str, Any]) -> dict[str, Any]:
        row: dict[str, Any] = ctx["row"]
        t: float = ctx["t"]
        view.advance(t)
        seen = view.bundle(f"RR|{ctx['return_id']}", ttl_s=self._ttl).record()  # type: ignore[union-attr]
        if isinstance(seen.value, dict):
            # A replayed return: same answer, counted once.
            row.update(seen.value)
            return row
        cust, addr, amount = ctx["customer"], ctx["address"], ctx["amount"]
        if cust:
            bundle: Any = view.bundle(f"R.customer|{cust}", ttl_s=self._ttl)
            s = bundle.series("s", 60)
            s.add(t, amount)
            s.prune(t - self._ttl)
            for (w, _), (n, total, _sq) in zip(RETURN_WINDOWS, s.windows(t, _SPANS), strict=True):
                row[f"customer_return_count_{w}"] = float(n)
                row[f"customer_refund_amount_{w}"] = round(total, 4)
            spent = ctx.get("spend")
            if spent is not None:
                row["customer_spend_30d"] = round(spent, 4)
                refunded = row["customer_refund_amount_30d"]
                row["refund_share_of_spend_30d"] = round(refunded / spent, 4) if spent > 0 else None
        if addr:
            bundle = view.bundle(f"R.address|{addr}", ttl_s=self._ttl)
            s = bundle.series("s", 60)
            s.add(t, amount)
            s.prune(t - self._ttl)
            for (w, _), (n, total, _sq) in zip(RETURN_WINDOWS, s.windows(t, _SPANS), strict=True):
                row[f"address_return_count_{w}"] = float(n)
                row[f"address_refund_amount_{w}"] = round(total, 4)
            if cust:
                d = bundle.distinct("d", self._cap)
                m = member_digest(cust)
                (n_cust,) = d.counts(t, (30 * DAY,), extra=m)
                d.add(m, t)
                d.prune(t - self._ttl)
                row["address_return_customers_30d"] = float(n_cust)
        seen.set({k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()})
        return row
