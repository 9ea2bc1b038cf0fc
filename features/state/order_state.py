"""Where the order featuriser's state lives: in this process, or in Redis per micro-batch.

Both give the featuriser the same two things for one transaction: the entity tables
(:class:`~features.state.entities.EntityTables`) and the per-order records (the order
record, which labels need, and the re-delivery cache), with the event-time watermark.

- :class:`MemoryOrderState` keeps them for the life of the process and sweeps what
  expired once per hour of event time.
- :class:`RedisOrderState` reads every key the batch touches in one ``MGET``, runs the
  same code on a fresh table filled from those bytes, and writes back what changed with
  the compare-and-set of :class:`~features.state.redis.RedisState` (re-running the batch
  when another worker wrote one of those keys meanwhile). Entities and order records
  carry their event-time deadline in their bytes, so their expiry is the same as
  in-process; Redis TTLs (the remaining event-time life, counted on the wall clock) bound
  its memory. The one designed difference: a cached row for re-deliveries lives
  ``dedup_ttl_s`` of wall clock in Redis (event time in-process).
"""

from __future__ import annotations

import json
import math
import struct
import threading
from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar

import numpy as np

from features.state.base import StateStore
from features.state.entities import EntityTables
from features.state.records import ExpiringMap

__all__ = ["MemoryOrderState", "OrderRecords", "OrderState", "RedisOrderState", "order_state_for"]

T = TypeVar("T")
Fn = Callable[[EntityTables, "OrderRecords"], T]
_DEADLINE = struct.Struct("<d")
_ABSENT = bytes(8)  # the version of a key that does not exist
_JSON = json.JSONEncoder(separators=(",", ":"))  # one encoder, not one per call


class OrderRecords:
    """Order records and cached rows, and the event-time watermark."""

    __slots__ = ("cache", "orders", "watermark")

    def __init__(self, watermark: float = float("-inf")) -> None:
        self.orders = ExpiringMap()
        self.cache = ExpiringMap()
        self.watermark = watermark


class OrderState(Protocol):
    def transact(self, keys: Callable[[], tuple[list[str], list[int]]], order_ids: Sequence[str], fn: Fn[T]) -> T:
        """Run ``fn`` on the state of one micro-batch; ``keys()`` names the (distinct) entities
        it touches and their families."""
        ...

    def transact_labels(self, order_ids: Sequence[str], fn: Fn[T]) -> T: ...

    def read(self, keys: list[str], fams: list[int], fn: Fn[T]) -> T:
        """Run ``fn`` on the current state of ``keys`` and write nothing back."""
        ...


LabelKeys = Callable[[Any], list[tuple[str, int]]]


def order_state_for(store: StateStore, new_tables: Callable[[], EntityTables], label_keys: LabelKeys,
                    *, cache_ttl_s: int) -> OrderState:
    """The order state that lives where ``store`` keeps its state.

    ``label_keys(order record)``: the (entity key, family) pairs a label of that order
    updates; ``cache_ttl_s``: how long a cached row is kept for re-deliveries.
    """
    if store.backend == "redis":
        return RedisOrderState(store, new_tables, label_keys, cache_ttl_s=cache_ttl_s)
    return MemoryOrderState(new_tables)


class MemoryOrderState:
    """In-process: one set of tables and records, guarded by a lock."""

    def __init__(self, new_tables: Callable[[], EntityTables], *, sweep_every_s: int = 3600) -> None:
        self.tables = new_tables()
        self.records = OrderRecords()
        self._lock = threading.Lock()
        self._sweep_every = sweep_every_s
        self._last_sweep = float("-inf")

    def transact(self, keys: Callable[[], tuple[list[str], list[int]]], order_ids: Sequence[str], fn: Fn[T]) -> T:
        return self._run(fn)  # every entity is at hand: no need to name them

    def transact_labels(self, order_ids: Sequence[str], fn: Fn[T]) -> T:
        return self._run(fn)

    def read(self, keys: list[str], fams: list[int], fn: Fn[T]) -> T:
        with self._lock:
            return fn(self.tables, self.records)

    def _run(self, fn: Fn[T]) -> T:
        with self._lock:
            result = fn(self.tables, self.records)
            # Nothing is written anywhere: the write sets only matter to the Redis backend.
            self.records.orders.dirty.clear()
            self.records.cache.dirty.clear()
            wm = self.records.watermark
            if wm - self._last_sweep >= self._sweep_every:
                self.sweep()
            return result

    def sweep(self) -> int:
        """Free everything whose event-time deadline passed; returns how many objects."""
        wm = self.records.watermark
        self._last_sweep = wm
        return self.tables.expire(wm) + self.records.orders.sweep(wm) + self.records.cache.sweep(wm)

    def __len__(self) -> int:
        return len(self.tables) + len(self.records.orders) + len(self.records.cache)


class RedisOrderState:
    """Redis: the batch's keys read in one round trip and written back atomically."""

    def __init__(self, store: Any, new_tables: Callable[[], EntityTables], label_keys: LabelKeys,
                 *, cache_ttl_s: int = 3600) -> None:
        self._store = store
        self._cache_ttl_ms = int(cache_ttl_s) * 1000
        self._new_tables = new_tables
        self._label_keys = label_keys
        # Event time is per process here: expiry decisions only matter 30+ days back.
        self._watermark = float("-inf")

    def transact(self, keys: Callable[[], tuple[list[str], list[int]]], order_ids: Sequence[str], fn: Fn[T]) -> T:
        ukeys, ufams = keys()
        okeys = list(dict.fromkeys("O|" + oid for oid in order_ids))

        def attempt() -> tuple[bool, T]:
            raw = self._store.mget_raw(ukeys + okeys)
            # Cached rows only for orders already recorded (re-deliveries: rare).
            ckeys = ["C|" + k[2:] for k, v in zip(okeys, raw[len(ukeys):], strict=True) if v is not None]
            if ckeys:
                raw += self._store.mget_raw(ckeys)
            got = _payloads(raw)
            tables = self._new_tables()
            tables.load(ukeys, ufams, got[: len(ukeys)])
            recs = OrderRecords(self._watermark)
            _load_records(recs, okeys + ckeys, got[len(ukeys):])
            result = fn(tables, recs)
            versions = _versions(ukeys + okeys + ckeys, raw)
            return self._commit(tables, recs, versions), result

        return self._store.optimistic(attempt)

    def transact_labels(self, order_ids: Sequence[str], fn: Fn[T]) -> T:
        rkeys = list(dict.fromkeys("O|" + oid for oid in order_ids))

        def attempt() -> tuple[bool, T]:
            raw = self._store.mget_raw(rkeys)
            recs = OrderRecords(self._watermark)
            _load_records(recs, rkeys, _payloads(raw))
            if recs.watermark == -math.inf and recs.orders.values:
                # This process has seen no order yet (labels first after a start): the
                # labelled orders' own event times bound the watermark from below, as
                # in-process, so what is written keeps its event-time life as its TTL.
                recs.watermark = float(max(rec[0] for rec in recs.orders.values.values()))
            fam = dict(kf for rec in recs.orders.values.values() for kf in self._label_keys(rec))
            ekeys = list(fam)
            eraw = self._store.mget_raw(ekeys)
            tables = self._new_tables()
            tables.load(ekeys, [fam[k] for k in ekeys], _payloads(eraw))
            result = fn(tables, recs)
            versions = _versions(rkeys + ekeys, raw + eraw)
            return self._commit(tables, recs, versions), result

        return self._store.optimistic(attempt)

    def read(self, keys: list[str], fams: list[int], fn: Fn[T]) -> T:
        fam_of = dict(zip(keys, fams, strict=True))
        ukeys = list(fam_of)

        def attempt() -> tuple[bool, T]:  # nothing to write: the first attempt lands
            tables = self._new_tables()
            tables.load(ukeys, list(fam_of.values()), _payloads(self._store.mget_raw(ukeys)))
            return True, fn(tables, OrderRecords(self._watermark))

        return self._store.optimistic(attempt)

    def _commit(self, tables: EntityTables, recs: OrderRecords, versions: dict[str, bytes]) -> bool:
        """Write back what changed if no key moved since it was read (``versions``: the raw
        8-byte versions read; a key missing there was absent)."""
        wm = recs.watermark
        keys, values, deadlines = tables.dump_dirty()
        ttls = [_ttl_ms(deadlines, wm)]
        orders = recs.orders
        if orders.dirty:
            oids = list(orders.dirty)
            keys += ["O|" + oid for oid in oids]
            pack, dump = _DEADLINE.pack, _JSON.encode
            values += [pack(orders.deadlines[oid]) + dump(orders.values[oid]).encode() for oid in oids]
            ttls.append(_ttl_ms(np.fromiter(map(orders.deadlines.__getitem__, oids), dtype=np.float64), wm))
        cache = recs.cache
        if cache.dirty:
            oids = list(cache.dirty)
            keys += ["C|" + oid for oid in oids]
            pack = _DEADLINE.pack
            values += [pack(cache.deadlines[oid]) + cache.values[oid] for oid in oids]
            # Wall clock, whatever the event time (see _load_records): a batch can span more
            # event time than the cache keeps, which would leave its first rows a 1 s TTL.
            ttls.append(np.full(len(oids), float(self._cache_ttl_ms)))
        expected = b"".join([versions.get(k, _ABSENT) for k in keys])
        ok = self._store.compare_and_set_columns(keys, expected, values, np.concatenate(ttls))
        if ok and wm > self._watermark:
            self._watermark = wm
        return ok


def _payloads(raw: list[bytes | None]) -> list[bytes | None]:
    """The payloads of raw stored values (each behind its 8-byte version)."""
    return [None if v is None else v[8:] for v in raw]


def _versions(keys: list[str], raw: list[bytes | None]) -> dict[str, bytes]:
    """The 8-byte version read per key that exists (a key missing here was absent)."""
    return {k: v[:8] for k, v in zip(keys, raw, strict=True) if v is not None}


def _load_records(recs: OrderRecords, rkeys: list[str], got: list[bytes | None]) -> None:
    for key, payload in zip(rkeys, got, strict=True):
        if payload is None:
            continue
        deadline = _DEADLINE.unpack_from(payload, 0)[0]
        oid = key[2:]
        if key[0] == "O":
            t, flag, ents = json.loads(payload[8:])
            recs.orders.load(oid, (t, flag, tuple(ents)), deadline)
        else:
            # A cached row lives its Redis TTL (dedup_ttl_s of wall clock) whatever the event
            # time: re-deliveries follow a crash or a rebalance within minutes, while this
            # process's watermark may already be past the row's event-time deadline (other
            # partitions moved on; the row was written by another worker).
            recs.cache.load(oid, bytes(payload[8:]), math.inf)


def _ttl_ms(deadlines: np.ndarray, watermark: float) -> np.ndarray:
    """The remaining event-time life of each deadline, as a Redis TTL in ms (at least a second;
    a second also where the life is not finite, which a watermark of -inf would give)."""
    life = np.nan_to_num(deadlines - watermark, nan=1.0, posinf=1.0)
    return np.maximum(life, 1.0) * 1000.0
