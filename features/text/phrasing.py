"""Recurring phrasing: near-duplicate notes and return reasons across accounts, over windows.

How a text finds its cluster. Its embedding (of the redacted, digit-masked text, so
order numbers and names do not split a script) is hashed with random hyperplanes into
``bands`` keys of ``bits`` bits each (SimHash LSH, a fixed seed so every worker and
every replay computes the same keys). Texts at cosine 0.95 share at least two of ten
10-bit band keys nine times in ten; unrelated texts (cosine 0.3) about once in a
thousand. The cluster is the band key ranked *second* by its 7-day count: demanding
two agreeing bands keeps one chance collision from dragging a unique note into a
popular cluster. The cluster id names the busiest band, which stays stable as the
cluster grows.

State lives behind ``features.state`` (in-process or Redis): per band key one bundle
with an event-time series (texts per window) and a distinct set of accounts, plus one
record per event id so that scoring the same order twice returns the same answer and
counts it once. Keys carry only hashes, never text. On ``MemoryState`` the same state
is kept in compact tables inside one bundle of the store (a band key is a small
integer there), with the same answers operation by operation
(``features.text.phrase_state``); every other store (Redis) gets the bundles.

Standing out. A cluster stands out when many *accounts* use it within 7 days, unless
the phrase is common in the general population: either close to a benign baseline
phrase ("please leave at the door", in several languages; cosine >= ``common_cos``) or,
IDF-like, a large share of all texts seen in the window.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from features.state import MemoryState, StateStore, StateView, member_digest
from features.text.phrase_state import Band, PhraseTables

__all__ = [
    "BENIGN_BASELINE",
    "PHRASE_FEATURES",
    "PhraseClusterer",
    "PhraseItem",
    "PhraseStats",
]

DAY = 86_400
WEEK = 7 * DAY

#: Feature names this module fills (declared in ``detector.text_stage``'s schema).
PHRASE_FEATURES = ("phrase_cluster_size_7d", "phrase_cluster_accounts_7d", "phrase_cluster_stands_out")

#: Phrases honest customers write all the time, in the covered languages. A cluster near
#: one of these never stands out however many accounts use it.
BENIGN_BASELINE: tuple[str, ...] = (
    "please leave at the door",
    "leave the package at the front door",
    "please leave with the neighbour",
    "please ring the bell",
    "call me when you arrive",
    "happy birthday",
    "happy birthday, love you",
    "merry christmas",
    "thank you",
    "thanks!",
    "deliver to reception",
    "deliver after 5pm",
    "the item does not fit",
    "the size is too small",
    "changed my mind",
    "no longer needed",
    "ordered the wrong size",
    "bitte beim nachbarn abgeben",
    "bitte vor die tür stellen",
    "alles gute zum geburtstag",
    "passt nicht",
    "por favor dejar en la puerta",
    "feliz cumpleaños",
    "no me queda bien la talla",
    "merci de laisser devant la porte",
    "joyeux anniversaire",
    "la taille ne convient pas",
    "proszę zostawić pod drzwiami",
    "wszystkiego najlepszego",
    "rozmiar nie pasuje",
    "يرجى ترك الطرد عند الباب",
    "عيد ميلاد سعيد",
    "נא להשאיר ליד הדלת",
    "יום הולדת שמח",
    "请放在门口",
    "生日快乐",
    "尺码不合适",
)


@dataclass(frozen=True, slots=True)
class PhraseItem:
    """One text to place: its embedding, who wrote it, which event, when (event time)."""

    embedding: np.ndarray
    account: str | None
    event_id: str
    at: datetime | float


@dataclass(frozen=True, slots=True)
class PhraseStats:
    cluster_id: str
    size_7d: int
    accounts_7d: int
    #: Near a benign baseline phrase or a large share of all texts (IDF-like): never stands out.
    common: bool
    #: 0..1, how strongly this phrasing recurs across accounts beyond the common ones.
    stands_out: float

    def features(self) -> dict[str, float]:
        return {
            "phrase_cluster_size_7d": float(self.size_7d),
            "phrase_cluster_accounts_7d": float(self.accounts_7d),
            "phrase_cluster_stands_out": float(self.stands_out),
        }


def _epoch(at: datetime | float) -> float:
    return at.timestamp() if isinstance(at, datetime) else float(at)


class PhraseClusterer:
    """Assigns texts to recurring-phrase clusters and counts them over event-time windows.

    Parameters
    ----------
    state:
        A ``features.state`` store (in-process by default; Redis to share between workers).
    baseline:
        Embeddings (n, 512) of benign common phrases; see :data:`BENIGN_BASELINE` and
        :meth:`with_baseline`.
    bands, bits:
        LSH shape (see the module docstring).
    min_accounts, scale_accounts:
        Standing out starts above ``min_accounts`` distinct accounts and saturates
        around ``min_accounts + 3 * scale_accounts``.
    common_cos:
        Cosine to a baseline phrase at and above which a text counts as common.
    max_share:
        With at least ``min_total`` texts in the window, a cluster holding more than
        this share of them is common (IDF-like damping, ramps from ``max_share``).
    """

    namespace = "phrase"

    def __init__(
        self,
        state: StateStore | None = None,
        *,
        baseline: np.ndarray | None = None,
        bands: int = 10,
        bits: int = 10,
        seed: int = 20261122,
        min_accounts: int = 4,
        scale_accounts: float = 8.0,
        common_cos: float = 0.8,
        max_share: float = 0.05,
        min_total: int = 500,
        cap_accounts: int = 128,
        dim: int = 512,
    ) -> None:
        self.state = state if state is not None else MemoryState()
        rng = np.random.default_rng(seed)
        self.bands, self.bits = bands, bits
        self._planes = rng.standard_normal((dim, bands * bits)).astype(np.float32)
        self._bit_weights = 1 << np.arange(bits, dtype=np.int64)
        self._cids: list[str | None] = [None] * (bands << bits)
        self._baseline = None if baseline is None or not len(baseline) else np.asarray(baseline, dtype=np.float32)
        self.min_accounts = min_accounts
        self.scale_accounts = scale_accounts
        self.common_cos = common_cos
        self.max_share = max_share
        self.min_total = min_total
        self.cap_accounts = cap_accounts
        self._ttl = WEEK + DAY

    @classmethod
    def with_baseline(cls, encode: object, state: StateStore | None = None, **kwargs: object) -> PhraseClusterer:
        """Build with :data:`BENIGN_BASELINE` embedded by ``encode(texts) -> (n, 512)``."""
        vectors = encode(list(BENIGN_BASELINE))  # type: ignore[operator]
        return cls(state, baseline=np.asarray(vectors), **kwargs)  # type: ignore[arg-type]

    def band_codes(self, embeddings: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(codes (n, bands) int64, nonzero (n,) bool): one matmul for the whole batch."""
        E = np.asarray(embeddings, dtype=np.float32)
        signs = (E @ self._planes > 0).reshape(len(E), self.bands, self.bits)
        codes = signs.astype(np.int64) @ self._bit_weights
        return codes, np.abs(E).sum(axis=1) > 0

    def band_keys(self, embeddings: np.ndarray) -> list[list[str]]:
        """Per row, ``bands`` keys "b<band>:<hex>" (empty list for a zero vector)."""
        if not len(embeddings):
            return []
        codes, nonzero = self.band_codes(embeddings)
        width = (self.bits + 3) // 4
        return [
            [f"b{b}:{c:0{width}x}" for b, c in enumerate(row)] if ok else []
            for row, ok in zip(codes.tolist(), nonzero.tolist(), strict=True)
        ]

    def _cluster_id(self, band: int, code: int) -> str:
        """"pc-" + a hash of the band key "b<band>:<hex>" (memoised: bands * 2**bits keys)."""
        i = band << self.bits | code
        cid = self._cids[i]
        if cid is None:
            key = f"b{band}:{code:0{(self.bits + 3) // 4}x}"
            cid = self._cids[i] = "pc-" + hashlib.blake2b(key.encode(), digest_size=6).hexdigest()
        return cid

    def is_common(self, embeddings: np.ndarray) -> np.ndarray:
        """Bool per row: near a benign baseline phrase."""
        if self._baseline is None or not len(embeddings):
            return np.zeros(len(embeddings), dtype=bool)
        return (np.asarray(embeddings, dtype=np.float32) @ self._baseline.T).max(axis=1) >= self.common_cos

    def observe(self, items: Sequence[PhraseItem]) -> list[PhraseStats | None]:
        """Record each text once (per event id) and return its cluster's 7-day figures.

        ``None`` for an empty text (zero embedding). The answer includes the text itself.
        """
        if not items:
            return []
        E = np.stack([np.asarray(it.embedding, dtype=np.float32) for it in items])
        common = self.is_common(E)
        if isinstance(self.state, MemoryState):
            codes, nonzero = self.band_codes(E)
            slots = codes + (np.arange(self.bands, dtype=np.int64) << self.bits)  # band << bits | code
            return self._observe_tables(items, slots.tolist(), nonzero.tolist(), common.tolist())
        keys = self.band_keys(E)
        ns = self.namespace
        state_keys = [f"{ns}.total|all"]
        for it, ks in zip(items, keys, strict=True):
            if ks:
                state_keys.append(f"{ns}.seen|{it.event_id}")
                state_keys.extend(f"{ns}|{k}" for k in ks)

        def fn(view: StateView) -> list[PhraseStats | None]:
            out: list[PhraseStats | None] = []
            for it, ks, is_common in zip(items, keys, common, strict=True):
                if not ks:
                    out.append(None)
                    continue
                out.append(self._one(view, it, ks, bool(is_common)))
            return out

        return self.state.transact(state_keys, fn)

    def _observe_tables(self, items: Sequence[PhraseItem], slots: list[list[int]], nonzero: list[bool],
                        common: list[bool]) -> list[PhraseStats | None]:
        """:meth:`observe` on ``MemoryState``: the same state and answers as :meth:`_one`'s
        bundles, kept in :class:`~features.text.phrase_state.PhraseTables` (see there)."""
        ns = self.namespace
        ttl, cap, bits, nbands = self._ttl, self.cap_accounts, self.bits, self.bands
        rank = 1 if nbands > 1 else 0
        shift = max(nbands - 1, 1).bit_length()
        mask = (1 << shift) - 1
        bump, add = Band.bump, Band.add

        def fn(view: StateView) -> list[PhraseStats | None]:
            out: list[PhraseStats | None] = []
            tables: PhraseTables | None = None
            wm = 0.0
            for it, row, ok, is_common in zip(items, slots, nonzero, common, strict=True):
                if not ok:
                    out.append(None)
                    continue
                t = _epoch(it.at)
                view.advance(t)
                if tables is None:
                    holder = view.bundle(f"{ns}.tables|memory", ttl_s=ttl)
                    assert holder is not None
                    wm = view.watermark
                    rec = holder.record("t")
                    if rec.value is None:
                        rec.value = PhraseTables(nbands << bits)
                    tables = rec.value
                elif t > wm:
                    wm = t
                deadline = wm + ttl
                eid = it.event_id
                events = tables.events
                seen = events.get(eid)
                if seen is not None and seen[0] >= wm:
                    events[eid] = (deadline, seen[1])
                    events.move_to_end(eid)
                    cid, size, accounts, common_, score = seen[1]
                    out.append(PhraseStats(str(cid), int(size), int(accounts), bool(common_), float(score)))
                    continue
                if seen is not None:
                    del events[eid]
                cutoff = t - ttl
                total = tables.total
                if total is None or total.deadline < wm:
                    total = tables.total = Band(deadline)
                else:
                    total.deadline = deadline
                n_total = total.bump(t, 60, cutoff, WEEK)
                bands = tables.bands
                touched = []
                order = []
                for b, i in enumerate(row):
                    band = bands[i]
                    if band is None or band.deadline < wm:
                        band = bands[i] = Band(deadline)
                    else:
                        band.deadline = deadline
                    touched.append(band)
                    # Sorting (-count, band) as one int: b - count * 2**shift.
                    order.append(b - (bump(band, t, 60, cutoff, WEEK) << shift))
                order.sort()
                second, first = order[rank], order[0]
                size, at = -(second >> shift), second & mask
                busiest = first & mask
                member = member_digest(it.account or f"event:{eid}")
                ti = int(t)
                counted = touched[at]
                accounts = counted.distinct(t - WEEK, member)
                add(counted, member, ti, cap)
                counted.prune_members(cutoff)
                for other in touched:
                    if other is not counted:
                        add(other, member, ti, cap)
                share_common = n_total >= self.min_total and size / max(n_total, 1) > self.max_share
                common_ = is_common or share_common
                score = 0.0 if common_ else self._stands_out(accounts)
                cid = self._cluster_id(busiest, row[busiest] - (busiest << bits))
                events[eid] = (deadline, [cid, size, accounts, common_, score])
                out.append(PhraseStats(cid, size, accounts, common_, score))
            if tables is not None:
                # Kept as long as its newest entry: the batch's watermark + ttl. (Should
                # the watermark have passed the old deadline within the batch, the store
                # gives a new bundle: the entries touched since are live, so they move.)
                holder = view.bundle(f"{ns}.tables|memory", ttl_s=ttl)
                assert holder is not None
                holder.record("t").value = tables
                tables.sweep(wm)
            return out

        return self.state.transact((), fn)

    def _one(self, view: StateView, it: PhraseItem, ks: list[str], is_common: bool) -> PhraseStats:
        ns = self.namespace
        t = _epoch(it.at)
        view.advance(t)
        seen_bundle = view.bundle(f"{ns}.seen|{it.event_id}", ttl_s=self._ttl)
        assert seen_bundle is not None  # create=True always returns one
        seen = seen_bundle.record("r")
        if seen.value is not None:
            cid, size, accounts, common, score = seen.value
            return PhraseStats(str(cid), int(size), int(accounts), bool(common), float(score))
        total_bundle = view.bundle(f"{ns}.total|all", ttl_s=self._ttl)
        assert total_bundle is not None
        total = total_bundle.series("n", resolution_s=60)
        total.add(t)
        total.prune(t - self._ttl)
        n_total = total.windows(t, (WEEK,))[0][0]
        bundles = []
        counts = []
        for b, k in enumerate(ks):
            bundle = view.bundle(f"{ns}|{k}", ttl_s=self._ttl)
            assert bundle is not None
            bundles.append(bundle)
            series = bundle.series("n", resolution_s=60)
            series.add(t)
            series.prune(t - self._ttl)
            counts.append((-series.windows(t, (WEEK,))[0][0], b))
        counts.sort()
        rank = 1 if len(counts) > 1 else 0
        size, band = -counts[rank][0], counts[rank][1]
        # The id names the busiest band (ties: the lowest band), which stays put while a
        # cluster grows; the figures come from the second, for the reason above.
        key = ks[counts[0][1]]
        acc = bundles[band].distinct("a", cap=self.cap_accounts)
        member = member_digest(it.account or f"event:{it.event_id}")
        accounts = acc.counts(t, (WEEK,), extra=member)[0]
        acc.add(member, t)
        acc.prune(t - self._ttl)
        # Every band remembers the account, so the cluster's count is right whichever
        # band ranks second next time.
        for other in bundles:
            if other is not bundles[band]:
                d = other.distinct("a", cap=self.cap_accounts)
                d.add(member, t)
        share_common = n_total >= self.min_total and size / max(n_total, 1) > self.max_share
        common = is_common or share_common
        score = 0.0 if common else self._stands_out(accounts)
        cid = "pc-" + hashlib.blake2b(key.encode(), digest_size=6).hexdigest()
        seen.set([cid, size, accounts, common, score])
        return PhraseStats(cid, size, accounts, common, score)

    def _stands_out(self, accounts: int) -> float:
        excess = accounts - self.min_accounts
        if excess <= 0:
            return 0.0
        return round(1.0 - math.exp(-excess / self.scale_accounts), 4)
