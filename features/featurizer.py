"""The order featuriser: static signals plus event-time entity state, per micro-batch.

For each order, in input order: read state, then record the order (so order ``i`` of a
batch sees orders ``< i``). Re-featurising an order id that is already recorded returns
the features it got the first time (cached for ``dedup_ttl_s`` of event time) and never
records it twice. Labels (``apply_labels``) feed the delayed-label fraud risk.

Training and serving share this code: ``riskwire featurize`` replays history through
:meth:`OrderFeaturizer.featurize` and :meth:`OrderFeaturizer.apply_labels` in
event-time order.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from contracts import Label, Order
from features.address import (
    address_key,
    gibberish_score,
    is_po_box,
    is_reshipper,
    normalize_address,
)
from features.currency import load_rates
from features.geo import IpCountryTable, email_tld_country, ip_prefix, local_time, phone_country
from features.identity import name_email_similarity, parse_email
from features.schema import (
    DIST_WINDOWS,
    LINKS,
    RISK_ENTITIES,
    RISK_WINDOWS,
    VEL_ENTITIES,
    VEL_WINDOWS,
    build_schema,
    plural,
)
from features.state import MemoryState, StateStore, StateView, member_digest

__all__ = ["FEATURES_VERSION", "OrderFeaturizer"]

FEATURES_VERSION = "features-1"
DAY = 86400
_VEL_SPANS = tuple(s for _, s in VEL_WINDOWS)
_DIST_SPANS = tuple(s for _, s in DIST_WINDOWS)
_RISK_SPANS = tuple(s for _, s in RISK_WINDOWS)
_MAX_ITEMS = 20
_PRICE_RING = 25

# Feature names precomputed once: the hot path only indexes tuples.
_VEL_NAMES = {
    e: (tuple(f"{e}_tx_count_{w}" for w, _ in VEL_WINDOWS), tuple(f"{e}_amount_mean_{w}" for w, _ in VEL_WINDOWS),
        f"{e}_seconds_since_prev", tuple(f"{e}_amount_sum_{w}" for w, _ in VEL_WINDOWS))
    for e in VEL_ENTITIES
}
_LINKS_BY_ENTITY: dict[str, list[tuple[str, str, tuple[str, ...]]]] = {}
for _e, _link in LINKS:
    _LINKS_BY_ENTITY.setdefault(_e, []).append(
        (_link, f"d>{_link}", tuple(f"{_e}_distinct_{plural(_link)}_{w}" for w, _ in DIST_WINDOWS))
    )

_RISK_NAMES = {e: tuple(f"{e}_fraud_risk_{w}" for w, _ in RISK_WINDOWS) for e in RISK_ENTITIES}
_MERCHANT_COUNT_NAMES = tuple(f"merchant_tx_count_{w}" for w, _ in RISK_WINDOWS)


class _Ctx:
    """What the stateful part needs from one order (computed once, outside the lock)."""

    __slots__ = ("amount", "combo", "digests", "entities", "items", "order_id", "row", "t")

    def __init__(self) -> None:
        self.entities: dict[str, str] = {}
        self.digests: dict[str, bytes] = {}
        self.items: list[tuple[str, int, float | None]] = []


class OrderFeaturizer:
    """Features for orders from event-time entity state (see ``features/README.md``).

    Parameters
    ----------
    state : StateStore
        ``MemoryState`` (default) or ``RedisState``; both give identical features.
    label_delay_s : int
        The delayed-label risk windows end this long before the order.
    allowed_lateness_s : int
        Out-of-order events up to this much older than the newest one still count;
        state is kept this long past the longest window.
    dedup_ttl_s : int
        How long (event time) the features of a recorded order are kept, so that a
        re-delivered order gets exactly the same features.
    resolutions : mapping, optional
        Time-bucket size in seconds per entity family (default 1 s: exact windows;
        ``email_domain``, SKU and country-combination families default to 1 h). Raise it
        for very hot keys (a merchant with many orders per second) to bound memory.
    ip_table : IpCountryTable, optional
        CIDR -> country table; the demo table by default.
    """

    def __init__(
        self,
        *,
        state: StateStore | None = None,
        label_delay_s: int = 7 * DAY,
        allowed_lateness_s: int = 3600,
        dedup_ttl_s: int = 3600,
        resolutions: Mapping[str, int] | None = None,
        ip_table: IpCountryTable | None = None,
        fraud_labels: Sequence[str] = ("fraud",),
        distinct_cap: int = 128,
    ) -> None:
        self.state = state if state is not None else MemoryState()
        self.schema = build_schema()
        self.version = f"{FEATURES_VERSION}+{self.schema.digest}"
        self.label_delay_s = int(label_delay_s)
        self.allowed_lateness_s = int(allowed_lateness_s)
        self.dedup_ttl_s = int(dedup_ttl_s)
        self._res = {"email_domain": 3600, "combo": 3600, "sku": 3600}
        self._res.update(resolutions or {})
        self._ip_table = ip_table or IpCountryTable.demo()
        self._rates = load_rates()
        self._fraud_labels = frozenset(fraud_labels)
        self._cap = distinct_cap
        slack = DAY
        longest = max(_VEL_SPANS)
        risk_back = self.label_delay_s + max(_RISK_SPANS)
        # How far back each family is ever queried (+ lateness), and how long it is kept.
        self._horizon = {e: longest + self.allowed_lateness_s for e in (*VEL_ENTITIES, "merchant", "email_domain")}
        for e in RISK_ENTITIES:
            self._horizon[e] = max(longest, risk_back) + self.allowed_lateness_s
        self._ttl = {e: h + slack for e, h in self._horizon.items()}
        self._ttl_small = longest + self.allowed_lateness_s + slack
        self._ttl_order = max(longest, risk_back) + self.allowed_lateness_s + slack
        self._numeric = tuple(s.name for s in self.schema if s.type in ("number", "bool"))
        self._is_bool = tuple(s.type == "bool" for s in self.schema if s.type in ("number", "bool"))
        self._names = tuple(s.name for s in self.schema)
        self._row_template = dict.fromkeys(self._names)

    # ------------------------------------------------------------------ static part
    def _static(self, order: Order) -> _Ctx:
        ctx = _Ctx()
        row = dict(self._row_template)
        ctx.row = row
        ctx.order_id = order.order_id
        ctx.t = int(order.created_at.timestamp())
        cust, pay = order.customer, order.payment
        ship, bill = order.shipping_address, order.billing_address
        ent = ctx.entities

        amount = float(pay.amount) if pay.amount is not None else None
        currency = pay.currency or "EUR"
        rate = self._rates.get(currency)
        base = amount * rate if (amount is not None and rate is not None) else None
        ctx.amount = base if base is not None else 0.0
        row["amount"] = amount
        row["amount_base"] = base
        row["currency"] = pay.currency
        row["currency_known"] = rate is not None
        row["payment_method"] = pay.method
        row["card_bin"] = pay.card_bin
        row["channel"] = order.channel

        if cust.customer_id:
            ent["customer"] = row["customer_id"] = cust.customer_id
        info = parse_email(cust.email)
        if cust.email:
            row["email_invalid"] = info is None
        if info is not None:
            row["email"] = info.local + "@" + info.domain
            ent["email"] = info.normalized
            ent["email_domain"] = row["email_domain"] = info.domain
            row["email_disposable"] = info.disposable
            row["email_freemail"] = info.freemail
            row["email_local_digits"] = info.digits
            row["email_local_digit_share"] = info.digit_share
            row["email_local_entropy"] = info.entropy
            row["email_local_length"] = info.length
            row["name_email_similarity"] = name_email_similarity(cust.name, info.local)
        if pay.card_fingerprint:
            ent["card"] = row["card_fingerprint"] = pay.card_fingerprint
        ip = order.ip_address
        if ip:
            ent["ip"] = row["ip_address"] = ip
            prefix = ip_prefix(ip)
            if prefix:
                ent["ip24"] = row["ip_prefix"] = prefix
        if order.device_id:
            ent["device"] = row["device_id"] = order.device_id
        if order.merchant_id:
            ent["merchant"] = row["merchant_id"] = order.merchant_id

        # Countries.
        ship_c = ship.country if ship is not None else None
        bill_c = bill.country if bill is not None else None
        meta_ip = order.metadata.get("ip_country") if order.metadata else None
        ip_c = meta_ip.upper() if isinstance(meta_ip, str) and len(meta_ip) == 2 else self._ip_table.lookup(ip)
        card_c = pay.card_country
        row["shipping_country"], row["billing_country"], row["ip_country"], row["card_country"] = ship_c, bill_c, ip_c, card_c
        row["ship_bill_country_mismatch"] = bool(ship_c and bill_c and ship_c != bill_c)
        row["ship_ip_country_mismatch"] = bool(ship_c and ip_c and ship_c != ip_c)
        row["bill_ip_country_mismatch"] = bool(bill_c and ip_c and bill_c != ip_c)
        row["card_bill_country_mismatch"] = bool(card_c and bill_c and card_c != bill_c)
        row["card_ip_country_mismatch"] = bool(card_c and ip_c and card_c != ip_c)
        row["card_ship_country_mismatch"] = bool(card_c and ship_c and card_c != ship_c)
        row["countries_distinct"] = len({c for c in (ship_c, bill_c, ip_c, card_c) if c})
        phone_c = phone_country(cust.phone)
        row["phone_country"] = phone_c
        row["phone_country_mismatch"] = bool(phone_c and bill_c and phone_c != bill_c)
        tld_c = email_tld_country(info.domain) if info is not None else None
        row["email_country_mismatch"] = bool(tld_c and bill_c and tld_c != bill_c)
        ctx.combo = f"{ship_c or '-'}|{bill_c or '-'}|{ip_c or '-'}"

        # Time.
        local = local_time(order.created_at, ship_c or bill_c or ip_c)
        row["local_hour"] = local.hour
        row["local_weekday"] = wd = local.weekday()
        row["is_night"] = local.hour <= 6
        row["is_weekend"] = wd >= 5
        if cust.account_created_at is not None:
            row["account_age_days"] = (order.created_at - cust.account_created_at).total_seconds() / DAY
        row["has_note"] = bool(order.note or order.gift_message)

        # Address.
        if ship is not None:
            key = address_key(ship)
            if key:
                ent["address"] = row["address_key"] = key
            norm = normalize_address(ship)
            row["shipping_po_box"] = is_po_box(ship)
            row["shipping_reshipper"] = is_reshipper(norm)
            street = " ".join(x for x in (ship.line1, ship.city) if x)
            row["address_gibberish"] = gibberish_score(street) if street else None
            row["billing_shipping_same"] = bool(key) and key == address_key(bill)

        # Basket.
        items = order.items
        if items:
            qty: dict[str, int] = {}
            price: dict[str, float | None] = {}
            cats = []
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
            ctx.items = [(s, q, price[s]) for s, q in list(qty.items())[:_MAX_ITEMS]]
        else:
            row["item_count"] = row["line_count"] = row["distinct_skus"] = 0
            row["skus"], row["categories"] = [], []
        ctx.digests = {k: member_digest(v) for k, v in ent.items() if k in ("customer", "email", "card", "device", "address", "ip")}
        return ctx

    def _keys(self, ctx: _Ctx) -> list[str]:
        keys = [f"O|{ctx.order_id}", f"C|{ctx.order_id}", f"G.combo|{ctx.combo}", "G.combo|*"]
        keys += [f"E.{e}|{v}" for e, v in ctx.entities.items()]
        if ctx.items:
            ship_ip = f"{ctx.row['shipping_country'] or '-'}|{ctx.row['ip_country'] or '-'}"
            for sku, _, _ in ctx.items:
                keys += [f"K|{sku}", f"K|{sku}|{ship_ip}"]
        return keys

    # ------------------------------------------------------------------ public API
    def featurize(self, orders: Sequence[Order]) -> list[dict[str, Any]]:
        """Features per order, in input order; records each order once in state."""
        if not orders:
            return []
        ctxs = [self._static(o) for o in orders]
        keys: list[str] = []
        for c in ctxs:
            keys += self._keys(c)
        return self.state.transact(keys, lambda view: [self._stateful(view, c) for c in ctxs])

    def apply_labels(self, labels: Sequence[Label]) -> int:
        """Feed labels into delayed-label risk; returns how many changed state.

        A fraud label counts the order (at its own event time) as fraud for each of
        its risk entities; a later ``legit`` label for the same order takes it back. A
        label for an order that is not (or no longer) in state is ignored.
        """
        if not labels:
            return 0
        okeys = [f"O|{lb.order_id}" for lb in labels]
        return self.state.transact(okeys, lambda view: self._apply(view, labels))

    def _apply(self, view: StateView, labels: Sequence[Label]) -> int:
        records = []
        for lb in labels:
            b = view.bundle(f"O|{lb.order_id}", ttl_s=self._ttl_order, create=False)
            records.append(b.record() if b is not None else None)
        more = []
        for rec in records:
            if rec is not None and rec.value:
                more += [f"E.{ek}" for ek in rec.value[2]]
        view.prefetch(more)
        changed = 0
        for lb, rec in zip(labels, records, strict=True):
            if rec is None or not rec.value:
                continue
            t, flag, ekeys = rec.value
            want = 1 if lb.label in self._fraud_labels else (0 if lb.label == "legit" else flag)
            if want == flag:
                continue
            for ek in ekeys:
                fam = ek.partition("|")[0]
                bundle = view.bundle(f"E.{ek}", ttl_s=self._ttl[fam])
                bundle.series("f", self._res.get(fam, 1)).add(t, 0.0, want - flag)  # type: ignore[union-attr]
            rec.set([t, want, ekeys])
            changed += 1
        return changed

    # ------------------------------------------------------------------ stateful part
    def _stateful(self, view: StateView, ctx: _Ctx) -> dict[str, Any]:
        t = ctx.t
        row = ctx.row
        view.advance(t)
        orec = view.bundle(f"O|{ctx.order_id}", ttl_s=self._ttl_order).record()  # type: ignore[union-attr]
        if orec.value is not None:
            cache = view.bundle(f"C|{ctx.order_id}", ttl_s=self.dedup_ttl_s, create=False)
            cached = cache.record().value if cache is not None else None
            if isinstance(cached, list) and len(cached) == len(self._names):
                return dict(zip(self._names, cached, strict=True))
            self._compute(view, ctx, record=False)  # known order, cache expired: read only
            return row
        self._compute(view, ctx, record=True)
        orec.set([t, 0, [f"{e}|{ctx.entities[e]}" for e in RISK_ENTITIES if e in ctx.entities]])
        # The values only (schema order): the engine adds its own keys to the row it gets back.
        view.bundle(f"C|{ctx.order_id}", ttl_s=self.dedup_ttl_s).record().set(list(row.values()))  # type: ignore[union-attr]
        return row

    def _compute(self, view: StateView, ctx: _Ctx, *, record: bool) -> None:
        t, row, ent, amt = ctx.t, ctx.row, ctx.entities, ctx.amount
        delay = self.label_delay_s
        dig = ctx.digests

        for e, v in ent.items():
            horizon = self._horizon[e]
            bundle: Any = view.bundle(f"E.{e}|{v}", ttl_s=self._ttl[e])
            s = bundle.series("s", self._res.get(e, 1))
            if e in _VEL_NAMES:
                # Velocity (windows include this order).
                counts, means, since, sums = _VEL_NAMES[e]
                wins = s.windows(t, _VEL_SPANS)
                for k, (c, total, _) in enumerate(wins):
                    c += 1
                    total += amt
                    row[counts[k]] = c
                    row[sums[k]] = total
                    row[means[k]] = total / c
                prev = s.last_at_or_before(t)
                row[since] = t - prev if prev is not None and prev > t - horizon else None
                if e == "customer":
                    c30, s30, q30 = wins[3]
                    row["customer_first_order"] = c30 == 0
                    if c30 > 0:
                        mean = s30 / c30
                        std = math.sqrt(max(q30 / c30 - mean * mean, 0.0))
                        row["customer_amount_std_30d"] = std
                        row["amount_to_customer_mean_30d"] = amt / mean if mean > 0 else None
                        if c30 >= 3:
                            row["amount_zscore_customer_30d"] = (amt - mean) / max(std, 0.05 * mean, 0.01)
            elif e == "merchant":
                c1h, c1d = s.windows(t, (3600, DAY))
                row["merchant_live_count_1h"] = c1h[0] + 1
                row["merchant_live_count_1d"] = c1d[0] + 1
                prev = s.last_at_or_before(t)
                row["merchant_seconds_since_prev"] = t - prev if prev is not None and prev > t - horizon else None
            if e in _RISK_NAMES:
                # Windows (t - delay - w, t - delay]: orders whose labels have had time to arrive.
                names = _RISK_NAMES[e]
                n = s.windows(t - delay, _RISK_SPANS)
                fs = bundle.get("f")
                if fs is None or not fs.ts:
                    for k in range(len(_RISK_SPANS)):
                        row[names[k]] = 0.0
                else:
                    f = fs.windows(t - delay, _RISK_SPANS)
                    for k in range(len(_RISK_SPANS)):
                        row[names[k]] = f[k][0] / n[k][0] if n[k][0] > 0 else 0.0
                if e == "merchant":
                    for k in range(len(_RISK_SPANS)):
                        row[_MERCHANT_COUNT_NAMES[k]] = n[k][0]
            # Distinct-count links from this entity.
            for link, part, names in _LINKS_BY_ENTITY.get(e, ()):
                m = dig.get(link)
                d = bundle.distinct(part, self._cap) if m is not None else bundle.get(part)
                if d is None:
                    row[names[0]] = row[names[1]] = 0
                    continue
                row[names[0]], row[names[1]] = d.counts(t, _DIST_SPANS, extra=m)
                if record and m is not None:
                    d.add(m, t)
            if record:
                s.add(t, amt)
                if s.ts[0] < t - horizon - DAY:
                    s.prune(t - horizon)
                    fs = bundle.get("f")
                    if fs is not None:
                        fs.prune(t - horizon)

        # Country combination rarity (hourly buckets, earlier orders only).
        ttl = self._ttl_small
        res = self._res["combo"]
        combo = view.bundle(f"G.combo|{ctx.combo}", ttl_s=ttl).series("s", res)  # type: ignore[union-attr]
        total = view.bundle("G.combo|*", ttl_s=ttl).series("s", res)  # type: ignore[union-attr]
        cc = combo.window(t - 30 * DAY, t)[0]
        ct = total.window(t - 30 * DAY, t)[0]
        row["country_combo_count_30d"] = cc
        row["country_combo_share_30d"] = cc / ct if ct else None
        row["country_combo_surprise_30d"] = 0.0 - math.log10((cc + 1) / (ct + 1))
        if record:
            for s in (combo, total):
                s.add(t, 0.0)
                if s.ts[0] < t - ttl:
                    s.prune(t - ttl + DAY)

        # SKU quantity from these countries, SKU x country rarity, price deviation.
        if ctx.items:
            ship_ip = f"{row['shipping_country'] or '-'}|{row['ip_country'] or '-'}"
            res = self._res["sku"]
            ratio_max = surprise_max = dev_max = None
            orders_1d = 0
            for sku, q, p in ctx.items:
                kb: Any = view.bundle(f"K|{sku}", ttl_s=ttl)
                qs = kb.series("q", res)
                qc = view.bundle(f"K|{sku}|{ship_ip}", ttl_s=ttl).series("q", res)  # type: ignore[union-attr]
                (n1, _, _), (n30, s30, _) = qs.windows(t, (DAY, 30 * DAY))
                c30, cs30, _ = qc.window(t - 30 * DAY, t)
                usual = cs30 / c30 if c30 else (s30 / n30 if n30 else None)
                if usual:
                    r = q / usual
                    ratio_max = r if ratio_max is None or r > ratio_max else ratio_max
                if n30:
                    sp = 0.0 - math.log10((c30 + 1) / (n30 + 1))
                    surprise_max = sp if surprise_max is None or sp > surprise_max else surprise_max
                orders_1d = max(orders_1d, n1)
                ring = kb.record("p")
                prices = ring.value or []
                if p is not None and prices:
                    med = _median(prices)
                    if med > 0:
                        dv = abs(p / med - 1.0)
                        dev_max = dv if dev_max is None or dv > dev_max else dev_max
                if record:
                    for s in (qs, qc):
                        s.add(t, float(q))
                        if s.ts[0] < t - ttl:
                            s.prune(t - ttl + DAY)
                    if p is not None:
                        ring.set([*prices[-(_PRICE_RING - 1):], round(p, 6)])
            row["sku_qty_ratio_max"] = ratio_max
            row["sku_country_surprise_max"] = surprise_max
            row["sku_orders_1d_max"] = orders_1d
            row["unit_price_dev_max"] = dev_max


def _median(values: Sequence[float]) -> float:
    s = sorted(values)
    n = len(s)
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2.0
