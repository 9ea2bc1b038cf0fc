"""The order featuriser: static signals plus event-time entity state, per micro-batch.

For each order, in input order: read state, then record the order (so order ``i`` of a
batch sees orders ``< i``). Re-featurising an order id that is already recorded returns
the stateful features it got the first time (cached for ``dedup_ttl_s`` of event time)
and never records it twice. Labels (``apply_labels``) feed the delayed-label fraud risk.

The static half (:mod:`features.static`) is Python with caches; the stateful half is one
compiled call per micro-batch (:mod:`features.state.kernels`) over entity tables that
live in this process or, per batch, are read from and written back to Redis
(:mod:`features.state.order_state`). Training and serving share this code:
``riskwire featurize`` replays history through :meth:`OrderFeaturizer.featurize` and
:meth:`OrderFeaturizer.apply_labels` in event-time order.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from contracts import ConfigError, Label, Order
from contracts.frame import FeatureFrame
from features.currency import load_rates
from features.geo import IpCountryTable
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
from features.state import MemoryState, StateStore
from features.state import kernels as kern
from features.state.entities import EntityTables
from features.state.order_state import OrderState, order_state_for
from features.static import ENTITY_FAMILIES, MEMBER_FAMILIES, Extracted, StaticFeatures, member_id

__all__ = ["FEATURES_VERSION", "OrderFeaturizer"]

FEATURES_VERSION = "features-1"
DAY = 86400
#: Families in the entity tables: the order entities, then SKU, SKU x countries, combination.
FAMILIES = (*ENTITY_FAMILIES, "sku", "skuc", "combo")
_FAM = {f: i for i, f in enumerate(FAMILIES)}
_SKU, _SKUC, _COMBO = _FAM["sku"], _FAM["skuc"], _FAM["combo"]
_KEY_PREFIX = tuple(f"E.{f}|" for f in ENTITY_FAMILIES)
_EVERY = "G.combo|*"  # every order's combination: the denominator of combination rarity
_RISK_SLOTS = tuple((ENTITY_FAMILIES.index(e), _KEY_PREFIX[ENTITY_FAMILIES.index(e)]) for e in RISK_ENTITIES)
_MISC = (
    "customer_first_order", "customer_amount_std_30d", "amount_to_customer_mean_30d",
    "amount_zscore_customer_30d", "merchant_live_count_1h", "merchant_live_count_1d",
    "merchant_seconds_since_prev", *(f"merchant_tx_count_{w}" for w, _ in RISK_WINDOWS),
    "country_combo_count_30d", "country_combo_share_30d", "country_combo_surprise_30d",
    "sku_qty_ratio_max", "sku_country_surprise_max", "sku_orders_1d_max", "unit_price_dev_max",
)


def _layout() -> tuple[tuple[str, ...], dict[str, np.ndarray]]:
    """The kernel's output columns and its per-family tables (``-1``: the scratch column)."""
    names: list[str] = []

    def col(name: str) -> int:
        names.append(name)
        return len(names) - 1

    nf, nv = len(FAMILIES), len(VEL_WINDOWS)
    vel = np.full((nf, 3 * nv + 1), -1, dtype=np.int64)
    for e in VEL_ENTITIES:
        f = _FAM[e]
        for k, (w, _) in enumerate(VEL_WINDOWS):
            vel[f, k] = col(f"{e}_tx_count_{w}")
            vel[f, nv + k] = col(f"{e}_amount_sum_{w}")
            vel[f, 2 * nv + k] = col(f"{e}_amount_mean_{w}")
        vel[f, 3 * nv] = col(f"{e}_seconds_since_prev")
    misc = np.array([col(n) for n in _MISC], dtype=np.int64)
    risk = np.full((nf, len(RISK_WINDOWS)), -1, dtype=np.int64)
    for e in RISK_ENTITIES:
        for k, (w, _) in enumerate(RISK_WINDOWS):
            risk[_FAM[e], k] = col(f"{e}_fraud_risk_{w}")
    target = np.full((nf, 4), -1, dtype=np.int64)
    links = np.full((nf, 4, len(DIST_WINDOWS)), -1, dtype=np.int64)
    seen: dict[str, int] = {}
    for e, link in LINKS:
        f, k = _FAM[e], seen.get(e, 0)
        seen[e] = k + 1
        target[f, k] = ENTITY_FAMILIES.index(link)
        for j, (w, _) in enumerate(DIST_WINDOWS):
            links[f, k, j] = col(f"{e}_distinct_{plural(link)}_{w}")
    scratch = len(names)
    for a in (vel, risk, links):
        a[a < 0] = scratch
    return tuple(names), {"vel": vel, "misc": misc, "risk": risk, "target": target, "links": links}


class OrderFeaturizer:
    """Features for orders from event-time entity state (see ``features/README.md``).

    Parameters
    ----------
    state : StateStore
        ``MemoryState`` (default) or ``RedisState``; both give identical features. The
        order entities live in compiled tables in this process (memory) or in Redis, next
        to what other components keep in the same store.
    label_delay_s : int
        The delayed-label risk windows end this long before the order.
    allowed_lateness_s : int
        Out-of-order events up to this much older than the newest one still count;
        state is kept this long past the longest window.
    dedup_ttl_s : int
        How long (event time) the stateful features of a recorded order are kept, so that
        a re-delivered order gets exactly the same features.
    resolutions : mapping, optional
        Time-bucket size in seconds per entity family (default 1 s: exact windows;
        ``email_domain``, ``sku`` and ``combo`` default to 1 h). Raise it for very hot
        keys (a merchant with many orders per second) to bound memory.
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
        self._fraud_labels = frozenset(fraud_labels)
        res = {"email_domain": 3600, "combo": 3600, "sku": 3600}
        overrides = _check_resolutions(resolutions or {})
        res.update(overrides)
        res["skuc"] = res["sku"]
        if overrides:  # other windows' edges, other features: a model must not mix them unknowingly
            self.version += "+res:" + ",".join(f"{f}={s}" for f, s in sorted(overrides.items()))
        longest = max(s for _, s in VEL_WINDOWS)
        risk_back = self.label_delay_s + max(s for _, s in RISK_WINDOWS)
        lateness = self.allowed_lateness_s
        # How far back each family is ever queried (+ lateness), and how long it is kept.
        horizon = {f: longest + lateness for f in FAMILIES}
        for e in RISK_ENTITIES:
            horizon[e] = max(longest, risk_back) + lateness
        ttl = {f: h + DAY for f, h in horizon.items()}
        self._ttl_small = longest + lateness + DAY
        for f in ("sku", "skuc", "combo"):
            ttl[f] = self._ttl_small
        self._ttl_order = max(longest, risk_back) + lateness + DAY
        self._fam_ttl = np.array([ttl[f] for f in FAMILIES], dtype=np.float64)
        self._fam_res = np.array([res.get(f, 1) for f in FAMILIES], dtype=np.int64)
        self._fam_width = _SERIES_WIDTH

        self._out_names, tables = _layout()
        self._width = len(self._out_names) + 1  # + scratch
        self._order = tuple(s.name for s in self.schema)
        self._out_bools = tuple(n for n in self._out_names if self.schema.get(n).type == "bool")  # type: ignore[union-attr]
        self.rates = load_rates()
        stateful = set(self._out_names)
        self._static = StaticFeatures(
            names=tuple(n for n in self._order if n not in stateful),
            rates=self.rates, ip_table=ip_table or IpCountryTable.demo(),
        )
        fam_role = np.zeros(len(FAMILIES), dtype=np.int64)
        fam_role[_FAM["customer"]], fam_role[_FAM["merchant"]] = 1, 2
        self._cfg = (
            np.array([horizon[f] for f in FAMILIES], dtype=np.float64),
            np.array([f in VEL_ENTITIES for f in FAMILIES], dtype=np.bool_),
            np.array([f in RISK_ENTITIES for f in FAMILIES], dtype=np.bool_),
            fam_role, tables["target"], tables["links"], tables["vel"], tables["risk"], tables["misc"],
            np.array([s for _, s in VEL_WINDOWS], dtype=np.float64),
            np.array([s for _, s in RISK_WINDOWS], dtype=np.float64),
            float(self.label_delay_s), int(distinct_cap), float(self._ttl_small),
        )
        self._orders: OrderState = order_state_for(self.state, self._new_tables, _label_keys,
                                                   cache_ttl_s=self.dedup_ttl_s)

    def _new_tables(self) -> EntityTables:
        return EntityTables(self._fam_ttl, self._fam_res, _members_of, fam_width=self._fam_width)

    # ------------------------------------------------------------------ public API
    def featurize(self, orders: Sequence[Order]) -> FeatureFrame:
        """Features per order, in input order (a frame: see :mod:`contracts.frame`);
        records each order once in state."""
        ex = [self._static.extract(o) for o in orders]
        if not ex:
            return self._frame(ex, np.empty((0, self._width)))
        bk = _batch_keys(ex)
        out = self._orders.transact(lambda: _entity_keys(bk), [e.order_id for e in ex],
                                    lambda tables, recs: self._stateful(tables, recs, ex, bk))
        return self._frame(ex, out)

    def apply_labels(self, labels: Sequence[Label]) -> int:
        """Feed labels into delayed-label risk; returns how many changed state.

        A fraud label counts the order (at its own event time) as fraud for each of
        its risk entities; a later ``legit`` label for the same order takes it back. A
        label for an order that is not (or no longer) in state is ignored.
        """
        if not labels:
            return 0
        return self._orders.transact_labels([lb.order_id for lb in labels], lambda tables, recs: self._apply(tables, recs, labels))

    def customer_spend(self, items: Sequence[tuple[str, float]], *, window_s: int = 30 * DAY) -> list[float]:
        """Base-currency amount of each customer's orders in ``(t - window_s, t]``; read only.

        ``items``: (customer id, event time in epoch seconds). Other components (the
        return featuriser's refund share of spend) read the order state through this.
        """
        if not items:
            return []
        keys = [_KEY_PREFIX[0] + c for c, _ in items]

        def fn(tables: EntityTables, recs: Any) -> list[float]:
            eids = np.array([tables.ids.get(key, -1) for key in keys], dtype=np.int64)
            times = np.array([t for _, t in items], dtype=np.float64)
            return kern.window_sums(tables.st, eids, times, float(window_s), recs.watermark).tolist()

        return self._orders.read(keys, [0] * len(keys), fn)

    # ------------------------------------------------------------------ stateful part
    def _apply(self, tables: EntityTables, recs: Any, labels: Sequence[Label]) -> int:
        wm = recs.watermark
        eids: list[str] = []
        fams: list[int] = []
        times: list[int] = []
        deltas: list[int] = []
        changed = 0
        for lb in labels:
            rec = recs.orders.get(lb.order_id, wm, extend_to=wm + self._ttl_order)
            if not rec:
                continue
            t, flag, ents = rec
            want = 1 if lb.label in self._fraud_labels else (0 if lb.label == "legit" else flag)
            if want == flag:
                continue
            for key, fam in _label_keys(rec):
                eids.append(key)
                fams.append(fam)
                times.append(t)
                deltas.append(want - flag)
            recs.orders.put(lb.order_id, (t, want, ents), recs.orders.deadlines[lb.order_id])
            changed += 1
        if eids:
            ids = np.asarray(tables.resolve(eids, fams), dtype=np.int64)
            at_ = np.asarray(times, dtype=np.int64)
            dl = np.asarray(deltas, dtype=np.int64)
            done = kern.apply_fraud(tables.st, wm, ids, at_, dl, 0)
            while done < ids.size:  # the arena filled up: grow it and go on from that event
                tables.grow()
                done = kern.apply_fraud(tables.st, wm, ids, at_, dl, done)
        return changed

    def _stateful(self, tables: EntityTables, recs: Any, ex: list[Extracted], bk: _BatchKeys) -> np.ndarray:
        n = len(ex)
        wm_arr = np.empty(n, dtype=np.float64)
        mode = np.empty(n, dtype=np.int64)
        # Re-deliveries: mode -1 (cached row), 0 (known order, cache expired: read only), 1 (new).
        cached: dict[int, Any] = {}
        pending: dict[str, list[Any]] = {}  # recorded in this batch: [row index, cache deadline]
        wm = recs.watermark
        orders, cache = recs.orders, recs.cache
        ttl_o, ttl_c = self._ttl_order, self.dedup_ttl_s
        for i, e in enumerate(ex):
            if e.t > wm:
                wm = float(e.t)
            wm_arr[i] = wm
            oid = e.order_id
            if orders.get(oid, wm, extend_to=wm + ttl_o) is None:
                mode[i] = 1
                # The entities, not their keys: a label (rare) builds the keys it needs.
                orders.put(oid, (e.t, 0, e.entities), wm + ttl_o)
                pending[oid] = [i, wm + ttl_c]
                continue
            mine = pending.get(oid)
            if mine is not None:
                if mine[1] < wm:  # its cached row expired within this batch
                    del pending[oid]
                    mode[i] = 0
                else:
                    mine[1] = max(mine[1], wm + ttl_c)
                    mode[i] = -1
                    cached[i] = mine[0]
                continue
            hit = cache.get(oid, wm, extend_to=wm + ttl_c)
            if hit is None or len(hit) != 8 * self._width:
                mode[i] = 0
            else:
                mode[i] = -1
                cached[i] = hit
        recs.watermark = wm

        batch = self._batch_arrays(ex, bk, tables, wm_arr, mode)
        out = np.full((n, self._width), np.nan)
        done = kern.featurize_batch(tables.st, self._cfg, batch, out, 0)
        while done < n:  # the arenas filled up: grow them and go on from that order
            tables.grow()
            done = kern.featurize_batch(tables.st, self._cfg, batch, out, done)
        for i, hit in cached.items():
            out[i] = out[hit] if isinstance(hit, int) else np.frombuffer(hit, dtype=np.float64)
        for oid, (i, deadline) in pending.items():
            cache.put(oid, out[i].tobytes(), deadline)
        return out

    def _batch_arrays(self, ex: list[Extracted], bk: _BatchKeys, tables: EntityTables, wm_arr: np.ndarray,
                      mode: np.ndarray) -> tuple:
        """The kernel's batch arrays, resolving (and creating) each order's entities."""
        n = len(ex)
        ents, combo, line_ptr, l_sku, l_skuc, every = _resolve(bk, tables.ids.get, tables.new)
        l_q: list[float] = []
        l_p: list[float] = []
        l_pr: list[float] = []
        nan = math.nan
        for e in ex:
            for _, q, p in e.items:
                l_q.append(float(q))
                if p is None:
                    l_p.append(nan)
                    l_pr.append(nan)
                else:
                    l_p.append(p)
                    l_pr.append(round(p, 6))
        i64, f64 = np.int64, np.float64
        return (
            np.fromiter((e.t for e in ex), dtype=i64, count=n), wm_arr,
            np.fromiter((e.amount for e in ex), dtype=f64, count=n), mode,
            np.array(ents, dtype=i64).reshape(n, len(ENTITY_FAMILIES)), np.array(combo, dtype=i64), every,
            np.array(line_ptr, dtype=i64), np.array(l_sku, dtype=i64), np.array(l_skuc, dtype=i64),
            np.array(l_q, dtype=f64), np.array(l_p, dtype=f64), np.array(l_pr, dtype=f64),
        )

    def _frame(self, ex: list[Extracted], out: np.ndarray) -> FeatureFrame:
        # The kernel's matrix is the frame's block as it is (no per-row dicts): consumers
        # read columns of it. The scratch column is left out.
        return FeatureFrame(records=[e.row for e in ex], block_names=self._out_names, block=out[:, :-1],
                            block_bools=self._out_bools, order=self._order)


def _check_resolutions(resolutions: Mapping[str, int]) -> dict[str, int]:
    """Bucket sizes by family, checked: a typo must not silently leave a hot key exact."""
    known = [f for f in FAMILIES if f != "skuc"]  # SKU x countries follows the SKU
    out = {}
    for fam, seconds in resolutions.items():
        if fam not in known:
            raise ConfigError(f"unknown entity family {fam!r} in resolutions; known: {', '.join(known)}")
        if isinstance(seconds, bool) or not isinstance(seconds, int) or not 1 <= seconds <= 86400:
            raise ConfigError(f"resolution of {fam!r} must be whole seconds in 1..86400, got {seconds!r}")
        out[fam] = seconds
    return out


#: Per family, what its all-orders series must keep for the kernel's features: the
#: customer's squares (its amount spread and z-score), sums for the other velocity
#: entities (amount sums and means) and SKUs (quantities), counts for the rest (merchant,
#: e-mail domain, combinations: counts and delayed-label risk only).
_SERIES_WIDTH = np.array([4 if f == "customer" else 3 if f in (*VEL_ENTITIES, "sku", "skuc") else 2
                          for f in FAMILIES], dtype=np.int64)


#: Per family: is its entity a member of some distinct-count link?
_IS_MEMBER = tuple(f in MEMBER_FAMILIES for f in FAMILIES)


def _members_of(keys: Sequence[str], fams: Sequence[int]) -> list[int]:
    """Each entity's digest as a link member (0 for families no link points at).

    Hashed once per entity: when it is created, since the Redis backend reads the
    digest back with the entity's bytes.
    """
    return [member_id(key.partition("|")[2]) if _IS_MEMBER[fam] else 0 for key, fam in zip(keys, fams, strict=True)]


def _label_keys(rec: tuple[int, int, tuple[str | None, ...]]) -> list[tuple[str, int]]:
    """The (key, family) of each delayed-label risk entity of an order record."""
    ents = rec[2]
    return [(prefix + ents[j], j) for j, prefix in _RISK_SLOTS if ents[j] is not None]


class _BatchKeys(NamedTuple):
    """The state keys of a micro-batch, in batch order."""

    #: Per order its ``ENTITY_FAMILIES`` keys (None where absent), flattened.
    entities: list[str | None]
    #: Per order its country combination.
    combos: list[str]
    #: Per basket line its SKU and SKU x countries; ``line_ptr[i]:line_ptr[i + 1]`` are order i's.
    skus: list[str]
    sku_countries: list[str]
    line_ptr: list[int]


def _batch_keys(ex: list[Extracted]) -> _BatchKeys:
    """The one place state keys are spelled (list-wise: the batch at once)."""
    n = len(ex)
    line_ptr = [0] * (n + 1)
    at = 0
    for i, e in enumerate(ex):
        at += len(e.items)
        line_ptr[i + 1] = at
    return _BatchKeys(
        [None if v is None else p + v
         for p, v in zip(_KEY_PREFIX * n, [v for e in ex for v in e.entities], strict=True)],
        ["G.combo|" + e.combo for e in ex],
        ["K|" + s for e in ex for s, _, _ in e.items],
        [f"K|{s}|{e.ship_ip}" for e in ex for s, _, _ in e.items],
        line_ptr,
    )


def _resolve(bk: _BatchKeys, get: Callable[[str], int | None], new: Callable[[str, int], int]) -> tuple:
    """Entity ids of a batch: per order its entities (-1 absent), its country combination,
    and per basket line its SKU and SKU x countries, then the all-orders combination.

    ``get(key)``: an existing id (or None); ``new(key, family)``: a created one. Ids are
    looked up list-wise (``map``); only the misses go through Python one by one.
    """
    ne = len(ENTITY_FAMILIES)
    ents = _ids(bk.entities, lambda i: i % ne, get, new)
    combo = _ids(bk.combos, lambda _i: _COMBO, get, new)
    l_sku = _ids(bk.skus, lambda _i: _SKU, get, new)
    l_skuc = _ids(bk.sku_countries, lambda _i: _SKUC, get, new)
    every = get(_EVERY)
    return ents, combo, bk.line_ptr, l_sku, l_skuc, every if every is not None else new(_EVERY, _COMBO)


def _ids(keys: list[str | None], fam_at: Callable[[int], int], get: Callable[[str], int | None],
         new: Callable[[str, int], int]) -> list[int]:
    """The id of each key (-1 for None), creating the missing ones in list order."""
    ids = list(map(get, keys))
    for i in [i for i, x in enumerate(ids) if x is None]:
        key = keys[i]
        if key is None:
            ids[i] = -1
        else:  # an earlier miss of this batch may have created it
            eid = get(key)
            ids[i] = eid if eid is not None else new(key, fam_at(i))
    return ids


def _entity_keys(bk: _BatchKeys) -> tuple[list[str], list[int]]:
    """The batch's distinct entity keys and their families: what the Redis backend reads up front."""
    ne = len(ENTITY_FAMILIES)
    fam = {k: i % ne for i, k in enumerate(bk.entities) if k is not None}
    fam.update(dict.fromkeys(bk.combos, _COMBO))
    fam.update(dict.fromkeys(bk.skus, _SKU))
    fam.update(dict.fromkeys(bk.sku_countries, _SKUC))
    fam[_EVERY] = _COMBO
    return list(fam), list(fam.values())
