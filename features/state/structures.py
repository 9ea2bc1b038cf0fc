"""The state objects both backends hold: event-time series, distinct sets and small records.

Every object is plain Python with an exact binary encoding, so the in-process and the
Redis backend run the same code on the same values and give identical features (the
Redis backend only moves the encoded bytes; see ``features/state/redis.py``).

Objects set ``dirty`` when they change; a backend writes back only dirty objects.
"""

from __future__ import annotations

import json
import struct
from array import array
from bisect import bisect_left, bisect_right
from typing import Any

__all__ = ["Bundle", "DistinctSet", "Record", "WindowSeries", "decode", "encode"]

_SERIES_HEAD = struct.Struct("<cqqddq")  # kind, resolution, base count, base sum, base sumsq, n
_DISTINCT_HEAD = struct.Struct("<cqq")  # kind, cap, n


class WindowSeries:
    """Counts, sums and sums of squares of events per time bucket, queryable over any window.

    Buckets start at multiples of ``resolution_s`` (1 s: exact event-second windows).
    The cumulative arrays make a window ``(lo, hi]`` two bisects and a subtraction, so
    a query costs O(log n) whatever the window; an out-of-order event costs O(k) for
    the k buckets after it (few, within the allowed lateness).

    Memory: at most ``min(events, horizon / resolution_s)`` buckets once pruned.
    """

    __slots__ = ("base", "cc", "cq", "cs", "deadline", "dirty", "resolution", "ts")

    def __init__(self, resolution_s: int = 1) -> None:
        self.resolution = max(1, int(resolution_s))
        self.ts: list[int] = []
        # Cumulative count, sum and sum of squares up to and including each bucket.
        self.cc: list[int] = []
        self.cs: list[float] = []
        self.cq: list[float] = []
        # Cumulative values of the buckets already pruned (so differences stay exact).
        self.base: tuple[int, float, float] = (0, 0.0, 0.0)
        self.dirty = False
        #: Event time after which the in-process backend may drop the object.
        self.deadline = 0.0

    def __len__(self) -> int:
        return len(self.ts)

    def _cum(self, i: int) -> tuple[int, float, float]:
        if i == 0:
            return self.base
        j = i - 1
        return self.cc[j], self.cs[j], self.cq[j]

    def window(self, lo: float, hi: float) -> tuple[int, float, float]:
        """(count, sum, sum of squares) of the buckets starting in ``(lo, hi]``."""
        ts = self.ts
        i = bisect_right(ts, hi)
        if i == 0:
            return 0, 0.0, 0.0
        j = bisect_right(ts, lo)
        if j >= i:
            return 0, 0.0, 0.0
        a = self._cum(j)
        k = i - 1
        return self.cc[k] - a[0], self.cs[k] - a[1], self.cq[k] - a[2]

    def windows(self, hi: float, spans: tuple[int, ...]) -> list[tuple[int, float, float]]:
        """:meth:`window` for ``(hi - span, hi]`` for each span, sharing the upper bisect."""
        ts = self.ts
        i = bisect_right(ts, hi)
        if i == 0:
            return [(0, 0.0, 0.0)] * len(spans)
        k = i - 1
        top = (self.cc[k], self.cs[k], self.cq[k])
        out = []
        for span in spans:
            j = bisect_right(ts, hi - span, 0, i)
            if j >= i:
                out.append((0, 0.0, 0.0))
                continue
            a = self._cum(j)
            out.append((top[0] - a[0], top[1] - a[1], top[2] - a[2]))
        return out

    def last_at_or_before(self, t: float) -> int | None:
        """Start of the latest bucket at or before ``t``, if any."""
        i = bisect_right(self.ts, t)
        return self.ts[i - 1] if i else None

    def add(self, t: float, value: float = 0.0, count: int = 1) -> None:
        """Record ``count`` events of total ``value`` at event time ``t``."""
        b = int(t) // self.resolution * self.resolution
        sq = value * value if count >= 0 else -(value * value)
        ts = self.ts
        self.dirty = True
        if not ts or b > ts[-1]:
            c0, s0, q0 = self._cum(len(ts))
            ts.append(b)
            self.cc.append(c0 + count)
            self.cs.append(s0 + value)
            self.cq.append(q0 + sq)
            return
        i = bisect_left(ts, b)
        if i < len(ts) and ts[i] == b:
            start = i
        else:
            c0, s0, q0 = self._cum(i)
            ts.insert(i, b)
            self.cc.insert(i, c0)
            self.cs.insert(i, s0)
            self.cq.insert(i, q0)
            start = i
        cc, cs, cq = self.cc, self.cs, self.cq
        for k in range(start, len(ts)):
            cc[k] += count
            cs[k] += value
            cq[k] += sq

    def prune(self, cutoff: float) -> None:
        """Forget buckets starting at or before ``cutoff``."""
        ts = self.ts
        if not ts or ts[0] > cutoff:
            return
        n = bisect_right(ts, cutoff)
        self.base = (self.cc[n - 1], self.cs[n - 1], self.cq[n - 1])
        del ts[:n], self.cc[:n], self.cs[:n], self.cq[:n]
        self.dirty = True

    @property
    def newest(self) -> int | None:
        return self.ts[-1] if self.ts else None

    def to_bytes(self) -> bytes:
        n = len(self.ts)
        head = _SERIES_HEAD.pack(b"S", self.resolution, self.base[0], self.base[1], self.base[2], n)
        return b"".join(
            (head, array("q", self.ts).tobytes(), array("q", self.cc).tobytes(),
             array("d", self.cs).tobytes(), array("d", self.cq).tobytes())
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> WindowSeries:
        _, res, bc, bs, bq, n = _SERIES_HEAD.unpack_from(data, 0)
        self = cls(res)
        self.base = (bc, bs, bq)
        off = _SERIES_HEAD.size
        w = 8 * n
        for name, code in (("ts", "q"), ("cc", "q"), ("cs", "d"), ("cq", "d")):
            arr = array(code)
            arr.frombytes(data[off : off + w])
            setattr(self, name, arr.tolist())
            off += w
        return self


class DistinctSet:
    """Last event time per member (8-byte digests), for distinct counts over windows.

    A member counts in a window when its latest sighting falls in it. At most ``cap``
    members are kept: past that the oldest are evicted, so counts saturate at ``cap``.
    Most sets hold one member (one card per device...), so a single member is kept in
    a slot and a dict is only made for the second (about 230 bytes less per set).
    """

    __slots__ = ("_many", "_one", "cap", "deadline", "dirty")

    def __init__(self, cap: int = 256) -> None:
        self.cap = cap
        self._one: tuple[bytes, int] | None = None
        self._many: dict[bytes, int] | None = None
        self.dirty = False
        self.deadline = 0.0

    @property
    def seen(self) -> dict[bytes, int]:
        """Member -> last event time (a copy when the set holds one member)."""
        if self._many is not None:
            return self._many
        return dict([self._one]) if self._one is not None else {}

    def _set(self, seen: dict[bytes, int]) -> None:
        if len(seen) <= 1:
            self._one, self._many = (next(iter(seen.items())) if seen else None), None
        else:
            self._one, self._many = None, seen

    def __len__(self) -> int:
        return len(self._many) if self._many is not None else (1 if self._one is not None else 0)

    def add(self, member: bytes, t: float) -> None:
        t = int(t)
        if self._many is None:
            one = self._one
            if one is None or one[0] == member:
                if one is None or t > one[1]:
                    self._one = (member, t)
                    self.dirty = True
                return
            self._many, self._one = {one[0]: one[1]}, None
        seen = self._many
        old = seen.get(member)
        if old is None or t > old:
            seen[member] = t
            self.dirty = True
            if len(seen) > self.cap:
                # Evict the oldest tenth at once so eviction stays amortised O(1).
                keep = sorted(seen.items(), key=lambda kv: (kv[1], kv[0]))[len(seen) - self.cap * 9 // 10 :]
                self._set(dict(keep))

    def counts(self, hi: float, spans: tuple[int, ...], *, extra: bytes | None = None) -> list[int]:
        """Distinct members last seen in ``(hi - span, hi]`` per span, plus ``extra`` if new.

        A member last seen after ``hi`` (an out-of-order event) also counts: it was
        seen in the window's neighbourhood and keeping one timestamp bounds memory.
        """
        seen = self._many
        if seen is None:
            one = self._one
            if one is None:
                return [0 if extra is None else 1] * len(spans)
            if one[0] == extra:
                return [1] * len(spans)
            base = 0 if extra is None else 1
            return [base + (1 if one[1] > hi - span else 0) for span in spans]
        times = seen.values()
        mine = seen.get(extra) if extra is not None else None
        out = []
        for span in spans:
            lo = hi - span
            n = sum(1 for t in times if t > lo)
            if extra is not None:
                # The current member counts once, whether or not it was seen before.
                n += 0 if (mine is not None and mine > lo) else 1
            out.append(n)
        return out

    def prune(self, cutoff: float) -> None:
        seen = self.seen
        if any(t <= cutoff for t in seen.values()):
            self._set({m: t for m, t in seen.items() if t > cutoff})
            self.dirty = True

    @property
    def newest(self) -> int | None:
        seen = self.seen
        return max(seen.values()) if seen else None

    def to_bytes(self) -> bytes:
        items = sorted(self.seen.items())
        head = _DISTINCT_HEAD.pack(b"D", self.cap, len(items))
        return head + b"".join(m.ljust(8, b"\0")[:8] for m, _ in items) + array("q", [t for _, t in items]).tobytes()

    @classmethod
    def from_bytes(cls, data: bytes) -> DistinctSet:
        _, cap, n = _DISTINCT_HEAD.unpack_from(data, 0)
        self = cls(cap)
        off = _DISTINCT_HEAD.size
        members = [data[off + 8 * i : off + 8 * i + 8] for i in range(n)]
        times = array("q")
        times.frombytes(data[off + 8 * n : off + 16 * n])
        self._set(dict(zip(members, times.tolist(), strict=True)))
        return self


class Record:
    """A small JSON value (an order's record, a cached feature row)."""

    __slots__ = ("deadline", "dirty", "value")

    def __init__(self, value: Any = None) -> None:
        self.value = value
        self.dirty = False
        self.deadline = 0.0

    def set(self, value: Any) -> None:
        self.value = value
        self.dirty = True

    def to_bytes(self) -> bytes:
        if isinstance(self.value, bytes | bytearray):
            return b"B" + bytes(self.value)
        return b"R" + json.dumps(self.value, separators=(",", ":"), allow_nan=True).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> Record:
        if data[:1] == b"B":
            return cls(bytes(data[1:]))
        return cls(json.loads(data[1:]))


_Part = WindowSeries | DistinctSet | Record
_PART_HEAD = struct.Struct("<HI")


def encode(obj: _Part) -> bytes:
    return obj.to_bytes()


def decode(data: bytes) -> _Part:
    kind = data[:1]
    if kind == b"S":
        return WindowSeries.from_bytes(data)
    if kind == b"D":
        return DistinctSet.from_bytes(data)
    return Record.from_bytes(data)


class Bundle:
    """Everything kept about one key (an entity, an order): named parts, stored together.

    One Redis value per entity instead of one per part keeps a micro-batch at a few
    keys per order. Parts read from Redis stay encoded until first used.
    """

    __slots__ = ("deadline", "parts", "raw")

    def __init__(self) -> None:
        self.parts: dict[str, _Part] = {}
        #: Parts still encoded (from Redis); None when there are none (saves memory).
        self.raw: dict[str, bytes] | None = None
        self.deadline = 0.0

    def get(self, name: str) -> _Part | None:
        part = self.parts.get(name)
        if part is None and self.raw and name in self.raw:
            # The encoded bytes stay in ``raw``: written back as they are if the part
            # is never changed (no re-encoding of parts that were only read).
            part = self.parts[name] = decode(self.raw[name])
        return part

    def series(self, name: str = "s", resolution_s: int = 1) -> WindowSeries:
        part = self.parts.get(name)
        if part is None:
            part = self.get(name)
            if part is None:
                part = self.parts[name] = WindowSeries(resolution_s)
        return part  # type: ignore[return-value]

    def distinct(self, name: str = "d", cap: int = 256) -> DistinctSet:
        part = self.parts.get(name)
        if part is None:
            part = self.get(name)
            if part is None:
                part = self.parts[name] = DistinctSet(cap)
        return part  # type: ignore[return-value]

    def record(self, name: str = "r") -> Record:
        part = self.parts.get(name)
        if part is None:
            part = self.get(name)
            if part is None:
                part = self.parts[name] = Record()
        return part  # type: ignore[return-value]

    @property
    def dirty(self) -> bool:
        return any(p.dirty for p in self.parts.values())

    def to_bytes(self) -> bytes:
        chunks = []
        raw = self.raw or {}
        for name in sorted({*self.parts, *raw}):
            part = self.parts.get(name)
            data = part.to_bytes() if part is not None and (part.dirty or name not in raw) else raw[name]
            key = name.encode()
            chunks += [_PART_HEAD.pack(len(key), len(data)), key, data]
        return b"".join(chunks)

    @classmethod
    def from_bytes(cls, data: bytes) -> Bundle:
        self = cls()
        self.raw = {}
        off, n = 0, len(data)
        while off < n:
            klen, dlen = _PART_HEAD.unpack_from(data, off)
            off += _PART_HEAD.size
            name = data[off : off + klen].decode()
            off += klen
            self.raw[name] = data[off : off + dlen]
            off += dlen
        return self
