"""Entity tables: key -> entity id, and the arenas the compiled kernels work on.

The order featuriser keeps every entity (customer, card, SKU, country combination,
...) as an integer id into the arenas of :mod:`features.state.kernels`. The in-process
backend keeps one :class:`EntityTables` for the life of the process; the Redis backend
fills a fresh one per micro-batch from the bytes it reads (``load``) and writes back the
entities the batch changed (``dump_dirty``). Both run the same kernel on the same values.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence

import numpy as np

from features.state import kernels as k

__all__ = ["EntityTables"]


class EntityTables:
    """Entities by key, with event-time deadlines, link-member digests and state arenas.

    Parameters
    ----------
    fam_ttl : array of float
        How long (event time) an entity of each family is kept past its last touch.
    fam_res : array of int
        Bucket size in seconds of each family's series.
    fam_width : array of int, optional
        How many of (start, count, sum, sum of squares) each family's all-orders series
        keeps (see :mod:`features.state.kernels`); all four by default.
    members_of : callable
        ``(keys, families) -> [int64 digest]``: each entity's id as a link member (0 for
        families that are no link's members).
    """

    def __init__(self, fam_ttl: np.ndarray, fam_res: np.ndarray, members_of: Callable[[Sequence[str], Sequence[int]], list[int]], *,
                 capacity: int = 1024, fam_width: np.ndarray | None = None) -> None:
        self._fam_ttl = np.ascontiguousarray(fam_ttl, dtype=np.float64)
        self._fam_res = np.ascontiguousarray(fam_res, dtype=np.int64)
        width = np.full(self._fam_res.shape, 4) if fam_width is None else fam_width
        self._fam_width = np.ascontiguousarray(width, dtype=np.int64)
        self._members_of = members_of
        self.ids: dict[str, int] = {}
        self.keys: list[str | None] = []
        self._free: list[int] = []
        self._cap = 0
        self.TOP = np.zeros(3, dtype=np.int64)
        self.AT = self.AC = self.AS = self.AQ = np.zeros(0)
        self.DM = self.DT = np.zeros(0, dtype=np.int64)
        self.RP = np.zeros(0)
        self._grow(capacity)
        self._arenas(8 * capacity, 4 * capacity, 0)

    # ------------------------------------------------------------------ storage
    def _grow(self, cap: int) -> None:
        def more(name: str, per: int, dtype: type, fill: float, width: int = 0) -> None:
            shape = (per * cap, width) if width else (per * cap,)
            new = np.full(shape, fill, dtype=dtype)
            old = getattr(self, name, None)
            if old is not None:
                new[: old.shape[0]] = old
            setattr(self, name, new)

        for name, per, dtype, fill in (
            ("SO", 2, np.int64, 0), ("SK", 2, np.int64, 0), ("SN", 2, np.int64, 0),
            ("DO", 4, np.int64, 0), ("DK", 4, np.int64, 0), ("DN", 4, np.int64, 0),
            ("RO", 1, np.int64, -1), ("RN", 1, np.int64, 0), ("SR", 1, np.int64, 1),
            ("ED", 1, np.float64, -np.inf), ("EFAM", 1, np.int64, 0), ("DIRTY", 1, np.uint8, 0),
            ("MEMBER", 1, np.int64, 0),
        ):
            more(name, per, dtype, fill)
        more("SB", 2, np.float64, 0.0, width=3)
        self._cap = cap
        self._pack()

    def _arenas(self, ns: int, nd: int, nr: int) -> None:
        """Fresh arenas of at least these sizes, with every live part copied in."""
        ns, nd, nr = max(ns, 64), max(nd, 64), max(nr, 25)
        new = [np.empty(ns), np.empty(ns), np.empty(ns), np.empty(ns),
               np.empty(nd, dtype=np.int64), np.empty(nd, dtype=np.int64), np.empty(nr)]
        tops = k.compact(self.st, len(self.keys), *new)
        self.AT, self.AC, self.AS, self.AQ, self.DM, self.DT, self.RP = new
        self.TOP[:] = tops
        self._pack()

    def _pack(self) -> None:
        self.st = (self.AT, self.AC, self.AS, self.AQ, self.SO, self.SK, self.SN, self.SB, self.SR,
                   self.DM, self.DT, self.DO, self.DK, self.DN, self.RP, self.RO, self.RN,
                   self.ED, self.EFAM, self.DIRTY, self.MEMBER, self._fam_ttl, self.TOP, self._fam_width)

    def grow(self) -> None:
        """At least double every arena, compacting the live parts into the new ones."""
        n = len(self.keys)
        live_s = int(self.SK[: 2 * n].sum())
        live_d = int(self.DK[: 4 * n].sum())
        live_r = k.PRICE_RING * int((self.RO[:n] >= 0).sum())
        self._arenas(max(2 * self.AT.shape[0], 3 * live_s), max(2 * self.DM.shape[0], 3 * live_d),
                     max(2 * self.RP.shape[0], 3 * live_r))

    def __len__(self) -> int:
        return len(self.ids)

    def resolve(self, keys: Sequence[str], fams: Sequence[int]) -> list[int]:
        """Entity ids for ``keys`` (of families ``fams``), creating the missing ones."""
        get = self.ids.get
        out = []
        for key, fam in zip(keys, fams, strict=True):
            eid = get(key)
            out.append(self.new(key, fam) if eid is None else eid)
        return out

    def new(self, key: str, fam: int) -> int:
        """Create the entity ``key`` of family ``fam`` (it must not exist); returns its id."""
        if self._free:
            eid = self._free.pop()
            self.keys[eid] = key
        else:
            eid = len(self.keys)
            if eid >= self._cap:
                self._grow(2 * self._cap)
            self.keys.append(key)
        self.ids[key] = eid
        self.EFAM[eid] = fam
        self.SR[eid] = self._fam_res[fam]
        self.MEMBER[eid] = self._members_of([key], [fam])[0]
        return eid

    def _bulk_new(self, keys: Sequence[str], fams: Sequence[int]) -> np.ndarray:
        """:meth:`new` for many distinct keys at once, in a table that has none yet, but
        their link-member digests (:meth:`load` sets those)."""
        n = len(keys)
        while self._cap < n:
            self._grow(2 * self._cap)
        self.keys = list(keys)
        self.ids = dict(zip(keys, range(n), strict=True))
        fam = np.asarray(fams, dtype=np.int64)
        self.EFAM[:n] = fam
        self.SR[:n] = self._fam_res[fam]
        return np.arange(n, dtype=np.int64)

    def expire(self, watermark: float) -> int:
        """Drop every entity whose deadline passed (its arena space is reclaimed by the
        next compaction); returns how many."""
        n = len(self.keys)
        gone = np.nonzero(self.ED[:n] < watermark)[0]
        keys, ids = self.keys, self.ids
        dropped = [int(e) for e in gone if keys[e] is not None]
        if not dropped:
            return 0
        k.reset_entities(self.st, np.asarray(dropped, dtype=np.int64))
        for eid in dropped:
            del ids[keys[eid]]  # type: ignore[arg-type]
            keys[eid] = None
        self._free.extend(dropped)
        return len(dropped)

    # ------------------------------------------------------------------ bytes (Redis)
    def load(self, keys: Sequence[str], fams: Sequence[int], blobs: Sequence[bytes | None],
             *, headroom: int = 0) -> np.ndarray:
        """Create ``keys`` (distinct, in an empty table); entities with a blob get their state from it."""
        eids = self._bulk_new(keys, fams)
        have = [j for j, b in enumerate(blobs) if b]
        read = np.zeros(len(keys), dtype=np.bool_)
        words = sum(len(blobs[j]) for j in have) // 8  # type: ignore[arg-type]
        self._arenas(words + headroom, words + headroom, k.PRICE_RING * len(have) + headroom)
        if have:
            starts = np.zeros(len(have), dtype=np.int64)
            lengths = np.fromiter((len(blobs[j]) for j in have), dtype=np.int64, count=len(have))  # type: ignore[arg-type]
            starts[1:] = np.cumsum(lengths)[:-1]
            data = np.frombuffer(b"".join(blobs[j] for j in have), dtype=np.uint8)  # type: ignore[misc]
            read[have] = k.decode_entities(self.st, data, starts, eids[have])
        # Bytes carry the link-member digest; new keys (and bytes of the first format) get it hashed.
        need = np.flatnonzero(~read).tolist()
        if need:
            self.MEMBER[need] = self._members_of([keys[j] for j in need], [fams[j] for j in need])
        return eids

    def dump_dirty(self) -> tuple[list[str], list[bytes], np.ndarray]:
        """(keys, bytes, event-time deadlines) of every entity changed since it was loaded."""
        n = len(self.keys)
        dirty = np.nonzero(self.DIRTY[:n])[0]
        if dirty.size == 0:
            return [], [], np.zeros(0)
        data, ends = k.encode_entities(self.st, dirty.astype(np.int64))
        raw = data.tobytes()
        bounds = [0, *ends.tolist()]
        blobs = [raw[a:b] for a, b in itertools.pairwise(bounds)]
        keys = self.keys
        return [keys[e] for e in dirty.tolist()], blobs, self.ED[dirty]  # type: ignore[misc]
