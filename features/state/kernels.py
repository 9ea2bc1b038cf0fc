"""Compiled (numba) kernels for the order featuriser's entity state.

Every entity (``eid``) owns two event-time series (all orders, confirmed fraud), four
distinct sets and, for a SKU, a ring of its last 25 unit prices. They live in flat
arenas (plain numpy arrays: typed-list look-ups cost ~100 ns each, an array index ~1 ns),
addressed by per-part offset / capacity / length tables:

- series ``sid = 2 * eid + (0 all | 1 fraud)``: arenas ``AT`` (bucket start), ``AC``,
  ``AS``, ``AQ`` (cumulative count, sum, sum of squares); ``SB`` holds the cumulative
  values of the buckets already pruned and ``SR`` the bucket size of the entity. A
  window ``(lo, hi]`` is two bisections and a subtraction; an out-of-order event shifts
  the cumulative values of the few buckets after it. This is the algorithm of
  :class:`features.state.structures.WindowSeries`, with the same float operations in
  the same order, so the features are bit-identical to the pure-Python featuriser this
  replaced.
- distinct sets ``did = 4 * eid + k``: arenas ``DM`` (member digest) and ``DT`` (last
  seen), at most ``cap`` members (past that the oldest tenth is evicted, ties by member,
  as :class:`~features.state.structures.DistinctSet` does).
- price rings: arena ``RP``, ``RO`` offset (-1: none yet) and ``RN`` length per entity.

A part that outgrows its region moves to the arena's top with twice the room; the
caller reserves enough free arena before each call (:func:`batch_bound`) and compacts
when the garbage left behind grows (:func:`compact`). Numba compiles on first use and
caches the machine code next to this file (``cache=True``), so only the first process
on a machine pays the compile time.

The state tuple ``st``: ``(AT, AC, AS, AQ, SO, SK, SN, SB, SR, DM, DT, DO, DK, DN, RP,
RO, RN, ED, EFAM, DIRTY, MEMBER, fam_ttl, TOP, fam_width)``. ``ED``: event-time deadline
per entity; ``EFAM``: its family; ``DIRTY``: changed since loaded (the Redis backend writes
those back); ``MEMBER``: its digest as a link member; ``TOP``: the arenas' fill levels;
``fam_width``: per family, how many of (start, count, sum, sum of squares) its entities'
all-orders series keep (2: counts only, 3: and sums, 4: and squares; a fraud series keeps
counts only). A column a
family's features never read stays zero, so the Redis backend need not store it: a
merchant's series at 1 s resolution is the biggest value a batch writes.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

__all__ = [
    "PRICE_RING",
    "apply_fraud",
    "compact",
    "decode_entities",
    "encode_entities",
    "featurize_batch",
    "reset_entities",
    "window_sums",
]

DAY = 86400
PRICE_RING = 25
NAN = math.nan


# ---------------------------------------------------------------------------- series
# Helpers take the arrays they use, never the state tuple: a call that passes the tuple
# increfs and decrefs all 23 arrays (~1 us here), and the per-order work is a few dozen
# such operations. The kernel unpacks the tuple once per batch.
@njit(cache=True)
def _bisect_right(a, lo, hi, x):  # pragma: no cover - compiled
    while lo < hi:
        mid = (lo + hi) >> 1
        if x < a[mid]:
            hi = mid
        else:
            lo = mid + 1
    return lo


@njit(cache=True)
def _top(st, sid, t):  # pragma: no cover
    """How many buckets of series ``sid`` start at or before ``t``."""
    o = st[4][sid]
    return _bisect_right(st[0], o, o + st[6][sid], t) - o


@njit(cache=True)
def _win(st, sid, top, lo):  # pragma: no cover
    """(count, sum, sumsq) of the buckets in ``(lo, start of bucket top - 1]``."""
    if top == 0:
        return 0.0, 0.0, 0.0
    AC, AS, AQ = st[1], st[2], st[3]
    o = st[4][sid]
    j = _bisect_right(st[0], o, o + top, lo) - o
    if j >= top:
        return 0.0, 0.0, 0.0
    k = o + top - 1
    if j == 0:
        SB = st[7]
        return AC[k] - SB[sid, 0], AS[k] - SB[sid, 1], AQ[k] - SB[sid, 2]
    return AC[k] - AC[o + j - 1], AS[k] - AS[o + j - 1], AQ[k] - AQ[o + j - 1]


@njit(cache=True)
def _width(EFAM, fam_width, sid):  # pragma: no cover
    """How many of (start, count, sum, square) series ``sid`` keeps."""
    return 2 if sid & 1 else fam_width[EFAM[sid >> 1]]


@njit(cache=True)
def _series_adds(AT, AC, AS, AQ, SO, SK, SN, SB, SR, TOP, DIRTY, EFAM, fam_width,
                 sids, times, values, counts, cut_if, cuts, m):  # pragma: no cover
    """Record ``m`` events (series, time, value, count); prune a series whose oldest
    bucket is older than ``cut_if`` back to ``cuts`` (with its fraud series). Sums and
    squares are only kept where the family's series width (``fam_width``) asks for them."""
    for j in range(m):
        sid = sids[j]
        t = times[j]
        width = _width(EFAM, fam_width, sid)
        value = values[j] if width >= 3 else 0.0
        count = counts[j]
        DIRTY[sid >> 1] = 1
        res = SR[sid >> 1]
        b = float((np.int64(t) // res) * res)
        sq = 0.0 if width < 4 else (value * value if count >= 0 else -(value * value))
        n = SN[sid]
        o = SO[sid]
        if n == SK[sid]:
            # Outgrown: move to the arena top with twice the room (the caller reserved it).
            cap = max(4, 2 * n)
            no = TOP[0]
            TOP[0] = no + cap
            for k in range(n):
                AT[no + k] = AT[o + k]
                AC[no + k] = AC[o + k]
                AS[no + k] = AS[o + k]
                AQ[no + k] = AQ[o + k]
            SO[sid] = no
            SK[sid] = cap
            o = no
        if n == 0 or b > AT[o + n - 1]:
            if n == 0:
                c0, s0, q0 = SB[sid, 0], SB[sid, 1], SB[sid, 2]
            else:
                c0, s0, q0 = AC[o + n - 1], AS[o + n - 1], AQ[o + n - 1]
            AT[o + n] = b
            AC[o + n] = c0 + count
            AS[o + n] = s0 + value
            AQ[o + n] = q0 + sq
            n += 1
            SN[sid] = n
        else:
            lo, hi = o, o + n
            while lo < hi:  # bisect_left
                mid = (lo + hi) >> 1
                if AT[mid] < b:
                    lo = mid + 1
                else:
                    hi = mid
            i = lo
            if not (i < o + n and AT[i] == b):
                if i == o:
                    c0, s0, q0 = SB[sid, 0], SB[sid, 1], SB[sid, 2]
                else:
                    c0, s0, q0 = AC[i - 1], AS[i - 1], AQ[i - 1]
                for k in range(o + n, i, -1):
                    AT[k] = AT[k - 1]
                    AC[k] = AC[k - 1]
                    AS[k] = AS[k - 1]
                    AQ[k] = AQ[k - 1]
                AT[i] = b
                AC[i] = c0
                AS[i] = s0
                AQ[i] = q0
                n += 1
                SN[sid] = n
            for k in range(i, o + n):
                AC[k] += count
                AS[k] += value
                AQ[k] += sq
        if AT[o] < cut_if[j]:
            for p in (sid, sid + 1):
                pn = SN[p]
                po = SO[p]
                if pn == 0 or AT[po] > cuts[j]:
                    continue
                q = _bisect_right(AT, po, po + pn, cuts[j]) - po
                SB[p, 0] = AC[po + q - 1]
                SB[p, 1] = AS[po + q - 1]
                SB[p, 2] = AQ[po + q - 1]
                for k in range(q, pn):
                    AT[po + k - q] = AT[po + k]
                    AC[po + k - q] = AC[po + k]
                    AS[po + k - q] = AS[po + k]
                    AQ[po + k - q] = AQ[po + k]
                SN[p] = pn - q


# ---------------------------------------------------------------------------- distinct
@njit(cache=True)
def _distinct_counts(st, did, hi, span, extra, has_extra):  # pragma: no cover
    DM, DT, DN = st[9], st[10], st[13]
    o = st[11][did]
    lo = hi - span
    c = 0
    mine = False
    for k in range(o, o + DN[did]):
        if DT[k] > lo:
            c += 1
            if has_extra and DM[k] == extra:
                mine = True
    if has_extra and not mine:
        c += 1
    return c


@njit(cache=True)
def _distinct_adds(DM, DT, DO, DK, DN, TOP, DIRTY, dids, members, m, t, cap):  # pragma: no cover
    """Record member ``members[j]`` seen at ``t`` in set ``dids[j]``, for ``j < m``."""
    for j in range(m):
        did = dids[j]
        member = members[j]
        n = DN[did]
        o = DO[did]
        seen = False
        for k in range(o, o + n):
            if DM[k] == member:
                seen = True
                if t > DT[k]:
                    DT[k] = t
                    DIRTY[did >> 2] = 1
                break
        if seen:
            continue
        DIRTY[did >> 2] = 1
        if n == DK[did]:
            size = max(2, min(2 * n, cap + 1))
            no = TOP[1]
            TOP[1] = no + size
            for k in range(n):
                DM[no + k] = DM[o + k]
                DT[no + k] = DT[o + k]
            DO[did] = no
            DK[did] = size
            o = no
        DM[o + n] = member
        DT[o + n] = t
        n += 1
        if n > cap:
            # Evict the oldest tenth at once (ties by member) so eviction stays amortised O(1).
            drop = n - cap * 9 // 10
            mem = DM[o : o + n].copy()
            ts = DT[o : o + n].copy()
            order = np.argsort(mem, kind="mergesort")
            order = order[np.argsort(ts[order], kind="mergesort")]
            q = 0
            for k in order[drop:]:
                DM[o + q] = mem[k]
                DT[o + q] = ts[k]
                q += 1
            n = q
        DN[did] = n


# ---------------------------------------------------------------------------- entities
@njit(cache=True)
def _empty(eid, SK, SN, SB, DK, DN, RO, RN):  # pragma: no cover
    """Forget an entity's parts (their arena space becomes garbage for the next compaction)."""
    for sid in (2 * eid, 2 * eid + 1):
        SK[sid] = 0
        SN[sid] = 0
        SB[sid, 0] = 0.0
        SB[sid, 1] = 0.0
        SB[sid, 2] = 0.0
    for did in range(4 * eid, 4 * eid + 4):
        DK[did] = 0
        DN[did] = 0
    RO[eid] = -1
    RN[eid] = 0


@njit(cache=True)
def _touch_all(ED, EFAM, fam_ttl, DIRTY, SK, SN, SB, DK, DN, RO, RN, eids, m, wm):  # pragma: no cover
    """Event-time expiry for ``eids[:m]``: an entity past its deadline counts as absent
    from then on (its parts are emptied); every touch extends the deadline."""
    for j in range(m):
        eid = eids[j]
        if ED[eid] < wm:
            if ED[eid] > -np.inf:
                _empty(eid, SK, SN, SB, DK, DN, RO, RN)
                DIRTY[eid] = 1
            ED[eid] = -np.inf
        nd = wm + fam_ttl[EFAM[eid]]
        if nd > ED[eid]:
            ED[eid] = nd


@njit(cache=True)
def reset_entities(st, eids):  # pragma: no cover
    """Forget everything about these entities (expiry)."""
    for eid in eids:
        _empty(eid, st[5], st[6], st[7], st[12], st[13], st[15], st[16])
        st[17][eid] = -np.inf
        st[19][eid] = 0


@njit(cache=True)
def window_sums(st, eids, times, span, wm):  # pragma: no cover
    """Sum of each entity's all-orders series over ``(times[j] - span, times[j]]``; 0 for an
    absent (``eids[j] < 0``) or expired entity. Read only."""
    out = np.zeros(eids.shape[0])
    for j in range(eids.shape[0]):
        eid = eids[j]
        if eid < 0 or st[17][eid] < wm:
            continue
        t = times[j]
        out[j] = _win(st, 2 * eid, _top(st, 2 * eid, t), t - span)[1]
    return out


@njit(cache=True)
def _median(values):  # pragma: no cover
    s = np.sort(values)
    n = s.shape[0]
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2.0


@njit(cache=True)
def featurize_batch(st, cfg, batch, out, start):  # pragma: no cover
    """Featurise a micro-batch in input order from ``start``: order ``i`` reads, then records.

    Returns how many orders are done: fewer than the batch when an order's writes would
    not fit in the arenas (nothing of that order is written yet; grow them and call again
    from there: its reads and expiry touches repeat identically).

    ``cfg``: per family horizon, velocity/risk flags, role (1 customer, 2 merchant),
    link targets (entity columns) and the output column tables, then the window spans,
    label delay, distinct cap and the TTL of the hourly families. ``batch``: per order
    event time, watermark, base amount, mode (1 record, 0 read only: a known order whose
    cached row expired, -1 skip: answered from the re-delivery cache), entity ids per
    family (-1 absent), country-combination ids, the all-orders combination id, then the
    basket lines (CSR: ``line_ptr``; SKU id, SKU x countries id, quantity, unit price,
    rounded unit price). Writes features into ``out[i]`` (NaN = missing).
    """
    AT, AC, AS, AQ, SO, SK, SN, SB, SR = st[0], st[1], st[2], st[3], st[4], st[5], st[6], st[7], st[8]
    DM, DT, DO, DK, DN = st[9], st[10], st[11], st[12], st[13]
    RP, RO, RN, ED, EFAM, DIRTY, MEMBER, fam_ttl, TOP, fam_width = (
        st[14], st[15], st[16], st[17], st[18], st[19], st[20], st[21], st[22], st[23])
    fam_horizon, fam_vel, fam_risk, fam_role, link_target = cfg[0], cfg[1], cfg[2], cfg[3], cfg[4]
    link_col, vel_col, risk_col, misc_col = cfg[5], cfg[6], cfg[7], cfg[8]
    vel_spans, risk_spans, delay, cap, ttl_small = cfg[9], cfg[10], cfg[11], cfg[12], cfg[13]
    t_arr, wm_arr, amt_arr, rec_arr, ents = batch[0], batch[1], batch[2], batch[3], batch[4]
    combo, combo_all, line_ptr = batch[5], batch[6], batch[7]
    l_sku, l_skuc, l_q, l_p, l_pr = batch[8], batch[9], batch[10], batch[11], batch[12]
    n_ent = ents.shape[1]
    nv = vel_spans.shape[0]
    nr = risk_spans.shape[0]
    month = 30.0 * DAY
    # Per-order scratch: the entities it touches, the events and link members it records.
    most = n_ent + 2 + 2 * int(np.max(np.diff(line_ptr))) if line_ptr.shape[0] > 1 else n_ent + 2
    touch = np.empty(most, dtype=np.int64)
    a_sid = np.empty(most, dtype=np.int64)
    a_t = np.empty(most)
    a_val = np.empty(most)
    a_cnt = np.ones(most, dtype=np.int64)
    a_cut_if = np.empty(most)
    a_cut = np.empty(most)
    d_did = np.empty(4 * n_ent, dtype=np.int64)
    d_mem = np.empty(4 * n_ent, dtype=np.int64)
    r_eid = np.empty(most, dtype=np.int64)
    r_price = np.empty(most)
    for i in range(start, t_arr.shape[0]):
        mode = rec_arr[i]
        if mode < 0:
            continue
        record = mode == 1
        t = float(t_arr[i])
        wm = wm_arr[i]
        amt = amt_arr[i]
        row = out[i]
        a, z = line_ptr[i], line_ptr[i + 1]
        nt = 0
        for e in range(n_ent):
            if ents[i, e] >= 0:
                touch[nt] = ents[i, e]
                nt += 1
        touch[nt] = combo[i]
        touch[nt + 1] = combo_all
        nt += 2
        for li in range(a, z):
            touch[nt] = l_sku[li]
            touch[nt + 1] = l_skuc[li]
            nt += 2
        _touch_all(ED, EFAM, fam_ttl, DIRTY, SK, SN, SB, DK, DN, RO, RN, touch, nt, wm)
        na = 0
        nd = 0
        nring = 0
        for e in range(n_ent):
            eid = ents[i, e]
            if eid < 0:
                continue
            fam = EFAM[eid]
            horizon = fam_horizon[fam]
            role = fam_role[fam]
            sid = 2 * eid
            top = _top(st, sid, t)
            if fam_vel[fam]:
                for k in range(nv):
                    c, s, q = _win(st, sid, top, t - vel_spans[k])
                    c += 1.0
                    s += amt
                    row[vel_col[fam, k]] = c
                    row[vel_col[fam, nv + k]] = s
                    row[vel_col[fam, 2 * nv + k]] = s / c
                if top > 0:
                    prev = AT[SO[sid] + top - 1]
                    if prev > t - horizon:
                        row[vel_col[fam, 3 * nv]] = t - prev
                if role == 1:
                    c30, s30, q30 = _win(st, sid, top, t - vel_spans[nv - 1])
                    row[misc_col[0]] = 1.0 if c30 == 0 else 0.0
                    if c30 > 0:
                        mean = s30 / c30
                        std = math.sqrt(max(q30 / c30 - mean * mean, 0.0))
                        row[misc_col[1]] = std
                        if mean > 0:
                            row[misc_col[2]] = amt / mean
                        if c30 >= 3:
                            row[misc_col[3]] = (amt - mean) / max(std, 0.05 * mean, 0.01)
            elif role == 2:  # the merchant: live counts
                row[misc_col[4]] = _win(st, sid, top, t - 3600.0)[0] + 1.0
                row[misc_col[5]] = _win(st, sid, top, t - DAY)[0] + 1.0
                if top > 0:
                    prev = AT[SO[sid] + top - 1]
                    if prev > t - horizon:
                        row[misc_col[6]] = t - prev
            if fam_risk[fam]:
                # Windows (t - delay - w, t - delay]: orders whose labels have had time to arrive.
                hi = t - delay
                rtop = _top(st, sid, hi)
                has_f = SN[sid + 1] > 0
                ftop = _top(st, sid + 1, hi)
                for k in range(nr):
                    cnt = _win(st, sid, rtop, hi - risk_spans[k])[0]
                    if not has_f:
                        row[risk_col[fam, k]] = 0.0
                    else:
                        fr = _win(st, sid + 1, ftop, hi - risk_spans[k])[0]
                        row[risk_col[fam, k]] = fr / cnt if cnt > 0 else 0.0
                    if role == 2:
                        row[misc_col[7 + k]] = cnt
            # Distinct-count links from this entity.
            for k in range(4):
                tgt = link_target[fam, k]
                if tgt < 0:
                    continue
                did = 4 * eid + k
                teid = ents[i, tgt]
                has = teid >= 0
                m = MEMBER[teid] if has else 0
                row[link_col[fam, k, 0]] = _distinct_counts(st, did, t, DAY, m, has)
                row[link_col[fam, k, 1]] = _distinct_counts(st, did, t, month, m, has)
                if has:
                    d_did[nd] = did
                    d_mem[nd] = m
                    nd += 1
            a_sid[na] = sid
            a_val[na] = amt
            a_cut_if[na] = t - horizon - DAY
            a_cut[na] = t - horizon
            na += 1

        # Country combination rarity (hourly buckets, earlier orders only).
        g0 = 2 * combo[i]
        ga = 2 * combo_all
        cc = _win(st, g0, _top(st, g0, t), t - month)[0]
        ct = _win(st, ga, _top(st, ga, t), t - month)[0]
        row[misc_col[10]] = cc
        if ct != 0:
            row[misc_col[11]] = cc / ct
        row[misc_col[12]] = 0.0 - math.log10((cc + 1) / (ct + 1))
        for g in (g0, ga):
            a_sid[na] = g
            a_val[na] = 0.0
            a_cut_if[na] = t - ttl_small
            a_cut[na] = t - ttl_small + DAY
            na += 1

        # SKU quantity from these countries, SKU x country rarity, price deviation.
        if z > a:
            ratio_max = NAN
            surprise_max = NAN
            dev_max = NAN
            orders_1d = 0.0
            for li in range(a, z):
                ks = l_sku[li]
                kc = l_skuc[li]
                q = l_q[li]
                p = l_p[li]
                top = _top(st, 2 * ks, t)
                n1 = _win(st, 2 * ks, top, t - DAY)[0]
                n30, s30, _ = _win(st, 2 * ks, top, t - month)
                c30, cs30, _ = _win(st, 2 * kc, _top(st, 2 * kc, t), t - month)
                usual = NAN
                if c30 != 0:
                    usual = cs30 / c30
                elif n30 != 0:
                    usual = s30 / n30
                if usual == usual and usual != 0.0:
                    r = q / usual
                    if not (ratio_max >= r):
                        ratio_max = r
                if n30 != 0:
                    sp = 0.0 - math.log10((c30 + 1) / (n30 + 1))
                    if not (surprise_max >= sp):
                        surprise_max = sp
                orders_1d = max(orders_1d, n1)
                pn = RN[ks]
                if p == p and pn > 0:
                    ro = RO[ks]
                    med = _median(RP[ro : ro + pn])
                    if med > 0:
                        dv = abs(p / med - 1.0)
                        if not (dev_max >= dv):
                            dev_max = dv
                for kid in (ks, kc):
                    a_sid[na] = 2 * kid
                    a_val[na] = q
                    a_cut_if[na] = t - ttl_small
                    a_cut[na] = t - ttl_small + DAY
                    na += 1
                if p == p:
                    r_eid[nring] = ks
                    r_price[nring] = l_pr[li]
                    nring += 1
            row[misc_col[13]] = ratio_max
            row[misc_col[14]] = surprise_max
            row[misc_col[15]] = orders_1d
            row[misc_col[16]] = dev_max

        if not record:
            continue
        # Room for this order's writes? (Parts grow by doubling; rings are 25 prices.)
        need_s = 0
        for j in range(na):
            if SN[a_sid[j]] == SK[a_sid[j]]:
                need_s += max(4, 2 * SN[a_sid[j]])
        need_d = 0
        for j in range(nd):
            if DN[d_did[j]] == DK[d_did[j]]:
                need_d += max(2, min(2 * DN[d_did[j]], cap + 1))
        need_r = 0
        for j in range(nring):
            if RO[r_eid[j]] < 0:
                need_r += PRICE_RING
        if TOP[0] + need_s > AT.shape[0] or TOP[1] + need_d > DM.shape[0] or TOP[2] + need_r > RP.shape[0]:
            return i
        a_t[:na] = t
        _series_adds(AT, AC, AS, AQ, SO, SK, SN, SB, SR, TOP, DIRTY, EFAM, fam_width,
                     a_sid, a_t, a_val, a_cnt, a_cut_if, a_cut, na)
        _distinct_adds(DM, DT, DO, DK, DN, TOP, DIRTY, d_did, d_mem, nd, np.int64(t), cap)
        for j in range(nring):
            ks = r_eid[j]
            if RO[ks] < 0:
                RO[ks] = TOP[2]
                TOP[2] += PRICE_RING
            ro = RO[ks]
            pn = RN[ks]
            if pn == PRICE_RING:
                for k in range(PRICE_RING - 1):
                    RP[ro + k] = RP[ro + k + 1]
                pn -= 1
            RP[ro + pn] = r_price[j]
            RN[ks] = pn + 1
            DIRTY[ks] = 1
    return t_arr.shape[0]


@njit(cache=True)
def apply_fraud(st, wm, eids, times, deltas, start):  # pragma: no cover
    """Add ``deltas[j]`` confirmed-fraud events at ``times[j]`` to entity ``eids[j]``, from
    ``start``; returns how many are done (fewer when the next would not fit in the arena:
    grow it and call again from there, as for :func:`featurize_batch`)."""
    m = eids.shape[0]
    SK, SN, AT, TOP = st[5], st[6], st[0], st[22]
    _touch_all(st[17], st[18], st[21], st[19], st[5], st[6], st[7], st[12], st[13], st[15], st[16], eids, m, wm)
    no_prune = np.full(1, -np.inf)
    for j in range(start, m):
        sid = 2 * eids[j] + 1
        if SN[sid] == SK[sid] and TOP[0] + max(4, 2 * SN[sid]) > AT.shape[0]:
            return j
        _series_adds(st[0], st[1], st[2], st[3], st[4], st[5], st[6], st[7], st[8], st[22], st[19], st[18], st[23],
                     np.array([sid]), np.array([float(times[j])]), np.zeros(1), deltas[j : j + 1],
                     no_prune, no_prune, 1)
    return m


# ---------------------------------------------------------------------------- arenas
@njit(cache=True)
def _move_parts(offs, caps, lens, n_parts, old, new, min_cap):  # pragma: no cover
    """Copy parts ``< n_parts`` (offset, capacity, length) from the ``old`` arenas to the
    ``new`` ones, back to back; a part keeps its capacity unless it uses under a quarter."""
    top = 0
    for p in range(n_parts):
        if caps[p] == 0:
            continue
        n = lens[p]
        cap = caps[p] if n > caps[p] // 4 else max(min_cap, 2 * n)
        o = offs[p]
        for a in range(len(old)):
            src, dst = old[a], new[a]
            for k in range(n):
                dst[top + k] = src[o + k]
        offs[p] = top
        caps[p] = cap
        top += cap
    return top


@njit(cache=True)
def compact(st, n_eids, AT, AC, AS, AQ, DM, DT, RP):  # pragma: no cover
    """Copy every live part of the first ``n_eids`` entities into the new (empty) arenas.

    Returns the new fill levels; the caller swaps the arenas in afterwards.
    """
    ts = _move_parts(st[4], st[5], st[6], 2 * n_eids, (st[0], st[1], st[2], st[3]), (AT, AC, AS, AQ), 4)
    td = _move_parts(st[11], st[12], st[13], 4 * n_eids, (st[9], st[10]), (DM, DT), 2)
    RO, RN = st[15], st[16]
    tr = 0
    for eid in range(n_eids):
        if RO[eid] < 0:
            continue
        o = RO[eid]
        for k in range(RN[eid]):
            RP[tr + k] = st[14][o + k]
        RO[eid] = tr
        tr += PRICE_RING
    return ts, td, tr


# ---------------------------------------------------------------------------- bytes
# One entity's bytes, little-endian 8-byte words. Both formats start with a marker, the
# deadline and the link-member digest (so that a reader need not hash the key again) and
# end with the price ring's n and n prices.
#
# ``BYTES_V3`` (written whenever the values allow, see ``_compact_ok``): per series n
# and its pruned base (count, sum, square), then, when n > 0, the first bucket start,
# the n starts as int32 seconds after it, the n counts as int32 increments, and as its
# width asks n cumulative sums and n cumulative squares (float64 as they are); per
# distinct set n, then n members and, when n > 0, the earliest time and the n times as
# int32 seconds after it. int32 runs are padded to whole words. Starts and counts are
# whole numbers far below 2^53, so the increments add back to the same float64 values:
# decoding gives the entity bit for bit. This halves a counts-only series (the
# merchant's 1 s series is the biggest value a batch writes) and cuts the rest by a
# quarter to a third.
#
# ``BYTES_V2`` (any entity whose values do not fit that: never seen in practice, kept
# so that nothing is ever refused): per series n, base x3, then n bucket starts, n
# counts, and as its width asks n sums and n squares; per distinct set n, then n
# members and n times. Bytes written before widths existed start with the deadline
# (never this NaN pattern) and carry all four series columns.
BYTES_V2 = np.int64(0x7FF8525753540002)
BYTES_V3 = np.int64(0x7FF8525753540003)
_I32 = 2**31 - 1


@njit(cache=True)
def _entity_words(st, eid):  # pragma: no cover
    w = 3 + 2 * 4 + _width(st[18], st[23], 2 * eid) * st[6][2 * eid] + 2 * st[6][2 * eid + 1] + 1 + st[16][eid]
    for k in range(4):
        w += 1 + 2 * st[13][4 * eid + k]
    return w


@njit(cache=True)
def _half(n):  # pragma: no cover
    """Words holding n int32 values."""
    return (n + 1) >> 1


@njit(cache=True)
def _compact_ok(st, eid):  # pragma: no cover
    """Whether the entity's starts, counts and set times fit ``BYTES_V3`` exactly."""
    for sid in (2 * eid, 2 * eid + 1):
        n = st[6][sid]
        o = st[4][sid]
        prev = st[7][sid, 0]
        for k in range(o, o + n):
            d = st[0][k] - st[0][o]
            c = st[1][k] - prev
            if not (0.0 <= d <= _I32 and d == math.floor(d) and -_I32 <= c <= _I32 and c == math.floor(c)):
                return False
            if prev + c != st[1][k]:
                return False
            prev = st[1][k]
    for did in range(4 * eid, 4 * eid + 4):
        n = st[13][did]
        if n:
            o = st[11][did]
            lo = np.min(st[10][o : o + n])
            if np.max(st[10][o : o + n]) - lo > _I32:
                return False
    return True


@njit(cache=True)
def _compact_words(st, eid):  # pragma: no cover
    w = 3
    for sid in (2 * eid, 2 * eid + 1):
        n = st[6][sid]
        w += 4
        if n:
            w += 1 + 2 * _half(n) + (_width(st[18], st[23], sid) - 2) * n
    for did in range(4 * eid, 4 * eid + 4):
        n = st[13][did]
        w += 1 + n + ((1 + _half(n)) if n else 0)
    return w + 1 + st[16][eid]


@njit(cache=True)
def encode_entities(st, eids, compact=True):  # pragma: no cover
    """Concatenated bytes of these entities and the end offset of each (in bytes);
    ``BYTES_V3`` where the values allow it (always, unless ``compact`` is false)."""
    m = eids.shape[0]
    small = np.zeros(m, dtype=np.bool_)
    total = 0
    for j in range(m):
        small[j] = compact and _compact_ok(st, eids[j])
        total += _compact_words(st, eids[j]) if small[j] else _entity_words(st, eids[j])
    buf = np.empty(total, dtype=np.float64)
    ibuf = buf.view(np.int64)
    i4 = buf.view(np.int32)
    ends = np.empty(m, dtype=np.int64)
    w = 0
    for j in range(m):
        eid = eids[j]
        ibuf[w] = BYTES_V3 if small[j] else BYTES_V2
        buf[w + 1] = st[17][eid]
        ibuf[w + 2] = st[20][eid]
        w += 3
        for sid in (2 * eid, 2 * eid + 1):
            n = st[6][sid]
            o = st[4][sid]
            ibuf[w] = n
            buf[w + 1] = st[7][sid, 0]
            buf[w + 2] = st[7][sid, 1]
            buf[w + 3] = st[7][sid, 2]
            w += 4
            cols = (st[0], st[1], st[2], st[3])
            width = _width(st[18], st[23], sid)
            if not small[j]:
                for c in range(width):
                    buf[w : w + n] = cols[c][o : o + n]
                    w += n
            elif n:
                base = st[0][o]
                buf[w] = base
                w += 1
                prev = st[7][sid, 0]
                h = _half(n)
                for k in range(n):
                    i4[2 * w + k] = np.int32(st[0][o + k] - base)
                    i4[2 * (w + h) + k] = np.int32(st[1][o + k] - prev)
                    prev = st[1][o + k]
                if n & 1:  # padding: defined bytes, so equal entities give equal bytes
                    i4[2 * w + n] = 0
                    i4[2 * (w + h) + n] = 0
                w += 2 * h
                for c in range(2, width):
                    buf[w : w + n] = cols[c][o : o + n]
                    w += n
        for did in range(4 * eid, 4 * eid + 4):
            n = st[13][did]
            o = st[11][did]
            ibuf[w] = n
            w += 1
            ibuf[w : w + n] = st[9][o : o + n]
            w += n
            if not small[j]:
                ibuf[w : w + n] = st[10][o : o + n]
                w += n
            elif n:
                lo = np.min(st[10][o : o + n])
                ibuf[w] = lo
                w += 1
                for k in range(n):
                    i4[2 * w + k] = np.int32(st[10][o + k] - lo)
                if n & 1:
                    i4[2 * w + n] = 0
                w += _half(n)
        n = st[16][eid]
        ibuf[w] = n
        w += 1
        if n:
            o = st[15][eid]
            buf[w : w + n] = st[14][o : o + n]
        w += n
        ends[j] = 8 * w
    return buf.view(np.uint8), ends


@njit(cache=True)
def decode_entities(st, data, starts, eids):  # pragma: no cover
    """Load entities from ``data`` (their bytes start at ``starts[j]``, 8-byte aligned).

    Parts are placed at the arenas' tops with exactly their size; the caller reserved
    the room. Returns, per entity, whether its bytes held its link-member digest (bytes
    of the first format did not: the caller hashes the key for those).
    """
    buf = data.view(np.float64)
    ibuf = data.view(np.int64)
    i4 = data.view(np.int32)
    read = np.zeros(eids.shape[0], dtype=np.bool_)
    for j in range(eids.shape[0]):
        eid = eids[j]
        w = starts[j] // 8
        v3 = ibuf[w] == BYTES_V3
        marked = v3 or ibuf[w] == BYTES_V2  # v2 or later: a header, and series as wide as their family
        read[j] = marked
        if marked:
            st[17][eid] = buf[w + 1]
            st[20][eid] = ibuf[w + 2]
            w += 3
        else:
            st[17][eid] = buf[w]
            w += 1
        for sid in (2 * eid, 2 * eid + 1):
            n = ibuf[w]
            st[7][sid, 0] = buf[w + 1]
            st[7][sid, 1] = buf[w + 2]
            st[7][sid, 2] = buf[w + 3]
            w += 4
            o = st[22][0]
            st[22][0] += n
            width = _width(st[18], st[23], sid) if marked else 4
            cols = (st[0], st[1], st[2], st[3])
            first = 0
            if v3 and n:
                base = buf[w]
                w += 1
                acc = st[7][sid, 0]
                h = _half(n)
                for k in range(n):
                    st[0][o + k] = base + i4[2 * w + k]
                    acc += i4[2 * (w + h) + k]
                    st[1][o + k] = acc
                w += 2 * h
                first = 2
            for c in range(first, 4):
                if c < width:
                    cols[c][o : o + n] = buf[w : w + n]
                    w += n
                else:
                    cols[c][o : o + n] = 0.0
            st[4][sid] = o
            st[5][sid] = n
            st[6][sid] = n
        for did in range(4 * eid, 4 * eid + 4):
            n = ibuf[w]
            w += 1
            o = st[22][1]
            st[22][1] += n
            st[9][o : o + n] = ibuf[w : w + n]
            w += n
            if not v3:
                st[10][o : o + n] = ibuf[w : w + n]
                w += n
            elif n:
                lo = ibuf[w]
                w += 1
                for k in range(n):
                    st[10][o + k] = lo + i4[2 * w + k]
                w += _half(n)
            st[11][did] = o
            st[12][did] = n
            st[13][did] = n
        n = ibuf[w]
        w += 1
        if n:
            o = st[22][2]
            st[22][2] += PRICE_RING
            st[14][o : o + n] = buf[w : w + n]
            st[15][eid] = o
        st[16][eid] = n
        w += n
    return read
