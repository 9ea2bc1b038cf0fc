"""The case store: cases, queue, claims, verdicts, snoozes, audit, labels and linked orders.

One code path for SQLite (embedded default) and PostgreSQL (production). Claim-next is
atomic on both: PostgreSQL locks the chosen row with ``FOR UPDATE SKIP LOCKED`` so
concurrent analysts skip each other's candidate instead of waiting; SQLite claims with
one conditional ``UPDATE ... WHERE id = (SELECT ...) RETURNING`` inside an ``IMMEDIATE``
transaction, which SQLite serialises. Every action writes an audit row (who, when,
what, before/after) in the same transaction as the change.

Queue priority is ``score + amount term + age term``. Because age grows at the same
rate for every case, ordering by ``base + w * age`` equals ordering by
``base - w * opened_hours``: that is the stored ``priority`` column, so the queue is an
index scan rather than a computed sort.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from contracts import Decision, Label, Order, RiskwireError
from detector.review.keys import entity_key, order_entity_keys
from detector.review.tables import ENTITY_KINDS, audit, cases, labels, orders, snoozes, users

if TYPE_CHECKING:
    from detector.metrics import Metrics

__all__ = [
    "ROLE_RANK",
    "VERDICTS",
    "CaseConflict",
    "CaseNotFound",
    "CaseStore",
    "QueueFilter",
    "ReviewError",
    "create_db_engine",
]

log = logging.getLogger(__name__)

VERDICTS = ("fraud", "abuse", "legit")
ROLE_RANK = {"analyst": 1, "lead": 2, "admin": 3}
#: Points per decade of order amount (1000 -> +24 over a zero amount).
AMOUNT_WEIGHT = 8.0
#: A shadow challenger's review never delayed a customer: it ranks below real reviews.
SHADOW_PENALTY = 50.0
_OPEN_STATES = ("open", "escalated")


class ReviewError(RiskwireError):
    """A review action that cannot be done as asked."""


class CaseNotFound(ReviewError):
    """No case with that id."""


class CaseConflict(ReviewError):
    """The case is closed, claimed by someone else, or needs a higher role."""


@dataclass(frozen=True)
class QueueFilter:
    """Filters an analyst can put on the queue; None means 'any'."""

    reason: str | None = None
    country: str | None = None
    merchant: str | None = None
    shadow: bool | None = None

    def clauses(self) -> list[sa.ColumnElement[bool]]:
        out: list[sa.ColumnElement[bool]] = []
        if self.reason:
            out.append(cases.c.reason_codes.like(f"%|{_escape_like(self.reason)}|%", escape="\\"))
        if self.country:
            out.append(cases.c.country == self.country.strip().upper())
        if self.merchant:
            out.append(cases.c.merchant_id == self.merchant.strip())
        if self.shadow is not None:
            out.append(cases.c.shadow.is_(self.shadow))
        return out

    def as_dict(self) -> dict[str, str]:
        return {k: str(v) for k, v in vars(self).items() if v not in (None, "")}


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def create_db_engine(url: str) -> sa.Engine:
    """An Engine for ``url`` with the connection settings the store relies on."""
    parsed = sa.make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return sa.create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)
    database = parsed.database or ""
    memory = database in ("", ":memory:") or database.startswith("file::memory:")
    if not memory:
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(
        url,
        connect_args={"check_same_thread": False, "timeout": 30},
        poolclass=sa.pool.StaticPool if memory else sa.pool.QueuePool,
    )

    @sa.event.listens_for(engine, "connect")
    def _connect(dbapi_conn: Any, _record: Any) -> None:
        # Take transaction control from pysqlite so writes can BEGIN IMMEDIATE.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        if not memory:
            cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @sa.event.listens_for(engine, "begin")
    def _begin(conn: sa.Connection) -> None:
        # A deferred transaction that reads then writes can fail with SQLITE_BUSY
        # instead of waiting; writers take the lock up front.
        immediate = conn.get_execution_options().get("rw_immediate", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def _alembic_config(connection: sa.Connection) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    cfg.attributes["connection"] = connection
    return cfg


def _hours(t: datetime) -> float:
    return t.timestamp() / 3600.0


def _json_dump(obj: Any) -> Any:
    return json.loads(json.dumps(obj, default=str))


class CaseStore:
    """Cases, users, labels and the orders index in one SQL database."""

    def __init__(
        self,
        engine: sa.Engine,
        *,
        clock: Callable[[], datetime] | None = None,
        claim_ttl_s: float = 900.0,
        link_window_s: float = 30 * 86400.0,
        age_weight_per_hour: float = 1.0,
    ) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name
        self._clock = clock or (lambda: datetime.now(UTC))
        self.claim_ttl = timedelta(seconds=claim_ttl_s)
        self.link_window = timedelta(seconds=link_window_s)
        self.age_weight = age_weight_per_hour
        self._metrics_lock = threading.Lock()
        self._sqlite_writer = threading.Lock()
        self._metrics_at = 0.0

    @classmethod
    def from_url(cls, url: str, *, upgrade: bool = True, **kwargs: Any) -> CaseStore:
        """Connect to ``url`` and, unless told not to, migrate the schema to head."""
        store = cls(create_db_engine(url), **kwargs)
        if upgrade:
            store.upgrade()
        return store

    # ------------------------------------------------------------------ plumbing
    def now(self) -> datetime:
        return self._clock()

    @contextmanager
    def _write(self) -> Iterator[sa.Connection]:
        if self.dialect != "sqlite":
            with self.engine.connect() as conn, conn.begin():
                yield conn
            return
        # SQLite has one writer at a time; queueing this process's writers on a lock is
        # fairer than its busy handler, which can starve a thread under contention.
        with self._sqlite_writer, self.engine.connect() as conn:
            conn.execution_options(rw_immediate=True)
            with conn.begin():
                yield conn

    @contextmanager
    def _read(self) -> Iterator[sa.Connection]:
        with self.engine.connect() as conn, conn.begin():
            yield conn

    def _insert(self, table: sa.Table) -> Any:
        if self.dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        return insert(table)

    def upgrade(self, revision: str = "head") -> None:
        """Run the packaged Alembic migrations up to ``revision``.

        Several processes may start at once (the demo's worker and API): one migrates, the
        others wait and then find the schema at ``revision``. On SQLite ``_write`` takes the
        write lock up front (Alembic reads the version table before it writes, and a deferred
        transaction would then fail with "database is locked" instead of waiting).
        """
        from alembic import command

        with self._write() as conn:
            if self.dialect == "postgresql":
                conn.exec_driver_sql("SELECT pg_advisory_xact_lock(7277001)")
            command.upgrade(_alembic_config(conn), revision)

    def downgrade(self, revision: str = "base") -> None:
        from alembic import command

        with self._write() as conn:
            command.downgrade(_alembic_config(conn), revision)

    def current_revision(self) -> str | None:
        from alembic.runtime.migration import MigrationContext

        with self.engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"version_table": "rw_alembic_version"})
            return ctx.get_current_revision()

    def _audit(
        self,
        conn: sa.Connection,
        *,
        actor: str,
        action: str,
        case_id: int | None,
        before: Mapping[str, Any] | None = None,
        after: Mapping[str, Any] | None = None,
        detail: str = "",
        at: datetime | None = None,
    ) -> None:
        conn.execute(
            audit.insert().values(
                at=at or self.now(), actor=actor, action=action, case_id=case_id,
                before=_json_dump(before) if before is not None else None,
                after=_json_dump(after) if after is not None else None,
                detail=detail[:4000],
            )
        )

    def record_event(self, *, actor: str, action: str, detail: str = "") -> None:
        """An audit entry for an action outside any case (a sign-in, say)."""
        with self._write() as conn:
            self._audit(conn, actor=actor, action=action, case_id=None, detail=detail)

    # ------------------------------------------------------------------ decisions in
    def record_decisions(
        self, decisions: Sequence[Decision], orders_by_id: Mapping[str, Order] | None = None
    ) -> dict[str, int]:
        """Index every decision's order; open or update a case for each review.

        Returns counts: ``indexed``, ``opened``, ``updated``.
        """
        if not decisions:
            return {"indexed": 0, "opened": 0, "updated": 0}
        orders_by_id = orders_by_id or {}
        for attempt in (1, 2):
            try:
                with self._write() as conn:
                    indexed = self._index_orders(conn, decisions, orders_by_id)
                    opened, updated = self._upsert_cases(conn, decisions, orders_by_id)
                return {"indexed": indexed, "opened": opened, "updated": updated}
            except IntegrityError:
                # Another worker opened one of these cases first; the retry sees it.
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _index_orders(
        self, conn: sa.Connection, decisions: Sequence[Decision], by_id: Mapping[str, Order]
    ) -> int:
        rows: dict[str, dict[str, Any]] = {}
        for d in decisions:
            if d.subject != "order":
                continue
            prev = rows.get(d.order_id)
            if prev is not None and prev["revision"] > d.revision:
                continue
            o = by_id.get(d.order_id)
            keys = order_entity_keys(o) if o is not None else dict.fromkeys(ENTITY_KINDS)
            rows[d.order_id] = {
                "order_id": d.order_id,
                "event_time": d.event_time,
                "decided_at": d.decided_at,
                "revision": d.revision,
                "score": d.score,
                "action": d.action,
                "amount": _amount(o),
                "currency": o.payment.currency if o is not None else None,
                "country": _country(o),
                "merchant_id": o.merchant_id if o is not None else None,
                "cluster_id": _cluster_id(d),
                **{f"{k}_key": keys.get(k) for k in ENTITY_KINDS},
            }
        if not rows:
            return 0
        ins = self._insert(orders)
        t = orders.c
        keep = ("amount", "currency", "country", "merchant_id", "cluster_id", *(f"{k}_key" for k in ENTITY_KINDS))
        stmt = ins.on_conflict_do_update(
            index_elements=["order_id"],
            set_={
                "event_time": ins.excluded.event_time,
                "decided_at": ins.excluded.decided_at,
                "revision": ins.excluded.revision,
                "score": ins.excluded.score,
                "action": ins.excluded.action,
                # A re-decision without its order must not wipe the keys we had.
                **{c: sa.func.coalesce(getattr(ins.excluded, c), t[c]) for c in keep},
            },
            where=ins.excluded.revision >= t.revision,
        )
        # executemany (psycopg pipelines it): faster here than one multi-row VALUES statement.
        conn.execute(stmt, list(rows.values()))
        return len(rows)

    def _upsert_cases(
        self, conn: sa.Connection, decisions: Sequence[Decision], by_id: Mapping[str, Order]
    ) -> tuple[int, int]:
        wanted: dict[str, Decision] = {}
        for d in decisions:
            if d.action == "review" or _shadow_review(d) or d.revision > 1:
                key = _case_key(d)
                if key not in wanted or wanted[key].revision < d.revision:
                    wanted[key] = d
        if not wanted:
            return 0, 0
        now = self.now()
        existing = {
            r.case_key: r
            for r in conn.execute(
                sa.select(
                    cases.c.id, cases.c.case_key, cases.c.state, cases.c.revision, cases.c.shadow,
                    cases.c.opened_at, cases.c.score, cases.c.action, cases.c.order_json, cases.c.amount,
                ).where(cases.c.case_key.in_(list(wanted)))
            )
        }
        active = self._active_snoozes(conn, now)
        inserts: list[dict[str, Any]] = []
        opened = updated = 0
        for key, d in wanted.items():
            o = by_id.get(d.order_id)
            real = d.action == "review"
            ex = existing.get(key)
            if ex is None:
                if not (real or _shadow_review(d)):
                    continue
                row = self._case_row(d, o, opened_at=now, shadow=not real)
                row["snoozed_until"] = _snoozed_until(active, row)
                inserts.append(row)
                continue
            if ex.state == "closed":
                continue
            if d.revision > ex.revision:
                row = self._case_row(d, o, opened_at=ex.opened_at, shadow=bool(ex.shadow) and not real)
                for fixed in ("case_key", "opened_at", "state"):
                    row.pop(fixed)
                if o is None:
                    for k in ("order_json", "amount", "currency", "country", "merchant_id",
                              *(f"{e}_key" for e in ENTITY_KINDS)):
                        row.pop(k)
                    row["priority_base"], row["priority"] = self._priority(
                        score=d.score, amount=ex.amount, shadow=row["shadow"], opened_at=ex.opened_at
                    )
                conn.execute(cases.update().where(cases.c.id == ex.id).values(**row))
                self._audit(
                    conn, actor="system", action="redecided", case_id=ex.id, at=now,
                    before={"revision": ex.revision, "score": ex.score, "action": ex.action},
                    after={"revision": d.revision, "score": d.score, "action": d.action},
                    detail=f"decision {d.decision_id}",
                )
                updated += 1
            elif ex.order_json is None and o is not None and d.revision == ex.revision:
                conn.execute(
                    cases.update().where(cases.c.id == ex.id).values(
                        order_json=o.model_dump(mode="json"), updated_at=now
                    )
                )
        if inserts:
            # One round trip for the batch's new cases and one for their audit rows.
            ids = conn.execute(
                cases.insert().returning(cases.c.id, sort_by_parameter_order=True), inserts
            ).scalars().all()
            conn.execute(
                audit.insert(),
                [
                    {
                        "at": now, "actor": "system", "action": "opened", "case_id": case_id, "before": None,
                        "after": {"state": "open", "score": row["score"], "shadow": row["shadow"]},
                        "detail": f"decision {row['decision_id']}",
                    }
                    for case_id, row in zip(ids, inserts, strict=True)
                ],
            )
            opened = len(ids)
        return opened, updated

    def _priority(
        self, *, score: int, amount: float | None, shadow: bool, opened_at: datetime
    ) -> tuple[float, float]:
        base = float(score) + AMOUNT_WEIGHT * math.log10(1.0 + max(amount or 0.0, 0.0))
        if shadow:
            base -= SHADOW_PENALTY
        return base, base - self.age_weight * _hours(opened_at)

    def _case_row(self, d: Decision, o: Order | None, *, opened_at: datetime, shadow: bool) -> dict[str, Any]:
        keys = order_entity_keys(o) if o is not None else dict.fromkeys(ENTITY_KINDS)
        amount = _amount(o)
        base, priority = self._priority(score=d.score, amount=amount, shadow=shadow, opened_at=opened_at)
        codes = [r.code for r in d.reasons] + [h.reason_code for h in d.rule_hits]
        return {
            "case_key": _case_key(d),
            "order_id": d.order_id,
            "return_id": d.return_id,
            "state": "open",
            "shadow": shadow,
            "revision": d.revision,
            "decision_id": d.decision_id,
            "score": d.score,
            "action": d.action,
            "amount": amount,
            "currency": o.payment.currency if o is not None else None,
            "country": _country(o),
            "merchant_id": o.merchant_id if o is not None else None,
            "reason_codes": ("|" + "|".join(dict.fromkeys(codes)) + "|")[:2000] if codes else "|",
            "cluster_id": _cluster_id(d),
            "priority_base": base,
            "priority": priority,
            **{f"{k}_key": keys.get(k) for k in ENTITY_KINDS},
            "event_time": d.event_time,
            "decision_json": d.model_dump(mode="json"),
            "order_json": o.model_dump(mode="json") if o is not None else None,
            "opened_at": opened_at,
            "updated_at": self.now(),
        }

    def _active_snoozes(self, conn: sa.Connection, now: datetime) -> dict[tuple[str, str], datetime]:
        out: dict[tuple[str, str], datetime] = {}
        q = sa.select(snoozes.c.entity_kind, snoozes.c.entity_key, snoozes.c.until).where(snoozes.c.until > now)
        for kind, key, until in conn.execute(q):
            if (kind, key) not in out or out[(kind, key)] < until:
                out[(kind, key)] = until
        return out

    # ------------------------------------------------------------------ queue
    def _claimable(self, now: datetime, role: str) -> sa.ColumnElement[bool]:
        states = _OPEN_STATES if ROLE_RANK.get(role, 0) >= ROLE_RANK["lead"] else ("open",)
        return sa.and_(
            cases.c.state.in_(states),
            sa.or_(cases.c.claimed_by.is_(None), cases.c.claim_expires_at <= now),
            sa.or_(cases.c.snoozed_until.is_(None), cases.c.snoozed_until <= now),
        )

    def queue(
        self,
        *,
        filters: QueueFilter | None = None,
        limit: int = 100,
        include_snoozed: bool = False,
    ) -> list[dict[str, Any]]:
        """Open and escalated cases, highest priority first."""
        now = self.now()
        q = sa.select(*_SUMMARY_COLS).where(cases.c.state.in_(_OPEN_STATES))
        if not include_snoozed:
            q = q.where(sa.or_(cases.c.snoozed_until.is_(None), cases.c.snoozed_until <= now))
        for clause in (filters or QueueFilter()).clauses():
            q = q.where(clause)
        q = q.order_by(cases.c.priority.desc(), cases.c.id.desc()).limit(max(1, min(limit, 1000)))
        with self._read() as conn:
            return [self._summary(r._mapping, now) for r in conn.execute(q)]

    def count(self, *, filters: QueueFilter | None = None) -> int:
        now = self.now()
        q = sa.select(sa.func.count()).select_from(cases).where(cases.c.state.in_(_OPEN_STATES)).where(
            sa.or_(cases.c.snoozed_until.is_(None), cases.c.snoozed_until <= now)
        )
        for clause in (filters or QueueFilter()).clauses():
            q = q.where(clause)
        with self._read() as conn:
            return int(conn.execute(q).scalar_one())

    def _summary(self, m: Mapping[str, Any], now: datetime) -> dict[str, Any]:
        out = dict(m)
        out["age_s"] = max(0.0, (now - m["opened_at"]).total_seconds())
        out["effective_priority"] = round(m["priority_base"] + self.age_weight * out["age_s"] / 3600.0, 2)
        out["claimed"] = bool(m["claimed_by"]) and m["claim_expires_at"] is not None and m["claim_expires_at"] > now
        out["snoozed"] = m["snoozed_until"] is not None and m["snoozed_until"] > now
        out["reasons"] = [c for c in (m["reason_codes"] or "").split("|") if c]
        return out

    def claim_next(
        self, *, actor: str, role: str = "analyst", filters: QueueFilter | None = None, resume: bool = True
    ) -> dict[str, Any] | None:
        """Atomically claim the highest-priority claimable case (or return the actor's own claim)."""
        now = self.now()
        expires = now + self.claim_ttl
        with self._write() as conn:
            if resume:
                own = conn.execute(
                    sa.select(cases.c.id).where(
                        cases.c.claimed_by == actor, cases.c.claim_expires_at > now,
                        cases.c.state.in_(_OPEN_STATES),
                    ).order_by(cases.c.priority.desc()).limit(1)
                ).scalar()
                if own is not None:
                    conn.execute(cases.update().where(cases.c.id == own).values(claim_expires_at=expires))
                    return self._summary_by_id(conn, own, now)
            cond = sa.and_(self._claimable(now, role), *(filters or QueueFilter()).clauses())
            pick = sa.select(cases.c.id, cases.c.claimed_by, cases.c.state).where(cond).order_by(
                cases.c.priority.desc(), cases.c.id.desc()
            ).limit(1)
            values = {"claimed_by": actor, "claim_expires_at": expires, "updated_at": now}
            if self.dialect == "postgresql":
                row = conn.execute(pick.with_for_update(skip_locked=True)).first()
                if row is None:
                    return None
                claimed = conn.execute(
                    cases.update().where(cases.c.id == row.id).values(**values).returning(*_SUMMARY_COLS)
                ).one()
                self._audit(
                    conn, actor=actor, action="claim", case_id=row.id, at=now,
                    before={"claimed_by": row.claimed_by}, after={"claimed_by": actor, "claim_expires_at": expires},
                )
                return self._summary(claimed._mapping, now)
            # Read for the audit only: the IMMEDIATE transaction holds the write lock,
            # and the claim itself is one conditional statement.
            row = conn.execute(pick).first()
            if row is None:
                return None
            sub = sa.select(cases.c.id).where(cond).order_by(cases.c.priority.desc(), cases.c.id.desc()).limit(1)
            case_id = conn.execute(
                cases.update().where(cases.c.id == sub.scalar_subquery()).where(cond)
                .values(**values).returning(cases.c.id)
            ).scalar()
            if case_id is None:
                return None
            before_by = row.claimed_by if row.id == case_id else None
            self._audit(
                conn, actor=actor, action="claim", case_id=case_id, at=now,
                before={"claimed_by": before_by}, after={"claimed_by": actor, "claim_expires_at": expires},
            )
            return self._summary_by_id(conn, case_id, now)

    def _summary_by_id(self, conn: sa.Connection, case_id: int, now: datetime) -> dict[str, Any]:
        row = conn.execute(sa.select(*_SUMMARY_COLS).where(cases.c.id == case_id)).one()
        return self._summary(row._mapping, now)

    def claim(self, case_id: int, *, actor: str, role: str = "analyst") -> dict[str, Any]:
        """Claim one given case (opening it from the queue)."""
        now = self.now()
        with self._write() as conn:
            row = self._locked(conn, case_id)
            if row.state not in _OPEN_STATES:
                raise CaseConflict(f"case {case_id} is {row.state}")
            if row.state == "escalated" and ROLE_RANK.get(role, 0) < ROLE_RANK["lead"]:
                raise CaseConflict(f"case {case_id} is escalated: a lead must review it")
            if _held_by_other(row, actor, now):
                raise CaseConflict(f"case {case_id} is claimed by {row.claimed_by}")
            conn.execute(
                cases.update().where(cases.c.id == case_id).values(
                    claimed_by=actor, claim_expires_at=now + self.claim_ttl, updated_at=now
                )
            )
            self._audit(conn, actor=actor, action="claim", case_id=case_id, at=now,
                        before={"claimed_by": row.claimed_by}, after={"claimed_by": actor})
            return self._summary_by_id(conn, case_id, now)

    def release(self, case_id: int, *, actor: str, role: str = "analyst") -> None:
        now = self.now()
        with self._write() as conn:
            row = self._locked(conn, case_id)
            if _held_by_other(row, actor, now) and ROLE_RANK.get(role, 0) < ROLE_RANK["lead"]:
                raise CaseConflict(f"case {case_id} is claimed by {row.claimed_by}")
            conn.execute(
                cases.update().where(cases.c.id == case_id).values(
                    claimed_by=None, claim_expires_at=None, updated_at=now
                )
            )
            self._audit(conn, actor=actor, action="release", case_id=case_id, at=now,
                        before={"claimed_by": row.claimed_by}, after={"claimed_by": None})

    def _locked(self, conn: sa.Connection, case_id: int) -> Any:
        q = sa.select(cases).where(cases.c.id == case_id)
        if self.dialect == "postgresql":
            q = q.with_for_update()
        row = conn.execute(q).first()
        if row is None:
            raise CaseNotFound(f"no case {case_id}")
        return row

    # ------------------------------------------------------------------ actions
    def verdict(
        self, case_id: int, *, actor: str, verdict: str, note: str = "", role: str = "analyst"
    ) -> Label:
        """Close a case with fraud/abuse/legit; stores and returns the analyst Label."""
        if verdict not in VERDICTS:
            raise ReviewError(f"verdict must be one of {', '.join(VERDICTS)}")
        now = self.now()
        with self._write() as conn:
            row = self._locked(conn, case_id)
            self._check_actionable(row, actor=actor, role=role, now=now)
            return self._close(conn, row, actor=actor, verdict=verdict, note=note, now=now, action="verdict")

    def _check_actionable(self, row: Any, *, actor: str, role: str, now: datetime) -> None:
        lead = ROLE_RANK.get(role, 0) >= ROLE_RANK["lead"]
        if row.state == "closed":
            raise CaseConflict(f"case {row.id} is already closed ({row.verdict})")
        if row.state == "escalated" and not lead:
            raise CaseConflict(f"case {row.id} is escalated: a lead must decide it")
        if _held_by_other(row, actor, now) and not lead:
            raise CaseConflict(f"case {row.id} is claimed by {row.claimed_by}")

    def _close(
        self, conn: sa.Connection, row: Any, *, actor: str, verdict: str, note: str, now: datetime,
        action: str, source: str = "analyst", label_time: datetime | None = None,
    ) -> Label:
        note = (note or "")[:4000]
        conn.execute(
            cases.update().where(cases.c.id == row.id).values(
                state="closed", verdict=verdict, verdict_note=note or None, closed_at=now,
                closed_by=actor, claimed_by=None, claim_expires_at=None, updated_at=now,
            )
        )
        label = Label(
            order_id=row.order_id, label=verdict, source=source, created_at=label_time or now,  # type: ignore[arg-type]
            return_id=row.return_id, case_id=str(row.id), actor=actor[:128], note=note or None,
        )
        if source == "analyst":
            self._store_labels(conn, [label], now=now)
        self._audit(
            conn, actor=actor, action=action, case_id=row.id, at=now,
            before={"state": row.state, "claimed_by": row.claimed_by, "verdict": row.verdict},
            after={"state": "closed", "verdict": verdict, "note": note or None},
        )
        return label

    def _store_labels(self, conn: sa.Connection, items: Sequence[Label], *, now: datetime) -> None:
        if not items:
            return
        conn.execute(
            labels.insert(),
            [
                {
                    "order_id": lb.order_id, "label": lb.label, "source": lb.source,
                    "created_at": lb.created_at, "recorded_at": now,
                    "case_id": int(lb.case_id) if lb.case_id and lb.case_id.isdigit() else None,
                    "return_id": lb.return_id, "actor": lb.actor, "note": lb.note, "published": False,
                }
                for lb in items
            ],
        )
        for lb in items:
            conn.execute(
                orders.update().where(orders.c.order_id == lb.order_id).values(label=lb.label, label_source=lb.source)
            )

    def mark_published(self, labels_: Sequence[Label]) -> None:
        """Record that these analyst labels reached the labels topic."""
        ids = [int(lb.case_id) for lb in labels_ if lb.case_id and lb.case_id.isdigit()]
        if not ids:
            return
        with self._write() as conn:
            conn.execute(
                labels.update().where(labels.c.case_id.in_(ids), labels.c.source == "analyst").values(published=True)
            )

    def escalate(self, case_id: int, *, actor: str, note: str = "", role: str = "analyst") -> None:
        now = self.now()
        with self._write() as conn:
            row = self._locked(conn, case_id)
            if row.state != "open":
                raise CaseConflict(f"case {case_id} is {row.state}")
            if _held_by_other(row, actor, now) and ROLE_RANK.get(role, 0) < ROLE_RANK["lead"]:
                raise CaseConflict(f"case {case_id} is claimed by {row.claimed_by}")
            conn.execute(
                cases.update().where(cases.c.id == case_id).values(
                    state="escalated", claimed_by=None, claim_expires_at=None, updated_at=now
                )
            )
            self._audit(conn, actor=actor, action="escalate", case_id=case_id, at=now,
                        before={"state": row.state, "claimed_by": row.claimed_by},
                        after={"state": "escalated", "claimed_by": None}, detail=note)

    def snooze(
        self,
        *,
        actor: str,
        kind: str,
        seconds: float,
        case_id: int | None = None,
        value: str | None = None,
        note: str = "",
    ) -> int:
        """Hide every open case of one entity for ``seconds``; new cases of it arrive snoozed.

        The entity is the case's own ``kind`` (``case_id``) or a raw ``value``. Returns
        how many open cases it hid.
        """
        if kind not in ENTITY_KINDS:
            raise ReviewError(f"entity kind must be one of {', '.join(ENTITY_KINDS)}")
        if not 0 < seconds <= 90 * 86400:
            raise ReviewError("a snooze lasts between 1 second and 90 days")
        now = self.now()
        until = now + timedelta(seconds=seconds)
        with self._write() as conn:
            before_state = None
            if case_id is not None:
                row = self._locked(conn, case_id)
                key = getattr(row, f"{kind}_key")
                before_state = {"snoozed_until": row.snoozed_until}
                if key is None:
                    raise ReviewError(f"case {case_id} has no {kind} to snooze")
            elif value:
                key = entity_key(kind, value)
            else:
                raise ReviewError("snooze needs a case or a value")
            conn.execute(snoozes.insert().values(
                entity_kind=kind, entity_key=key, until=until, created_by=actor, created_at=now, note=note[:4000] or None,
            ))
            col = cases.c[f"{kind}_key"]
            hit = conn.execute(
                cases.update().where(col == key, cases.c.state.in_(_OPEN_STATES)).values(
                    snoozed_until=until, claimed_by=None, claim_expires_at=None, updated_at=now
                )
            ).rowcount
            self._audit(conn, actor=actor, action="snooze", case_id=case_id, at=now,
                        before=before_state, after={"snoozed_until": until, "entity": kind, "cases": hit},
                        detail=note)
            return int(hit or 0)

    def bulk_verdict(
        self, *, actor: str, role: str, filters: QueueFilter, verdict: str, note: str = "", limit: int = 1000
    ) -> list[Label]:
        """Close every open case matching ``filters`` (a lead's action); unclaimed or own only."""
        if ROLE_RANK.get(role, 0) < ROLE_RANK["lead"]:
            raise CaseConflict("bulk actions need the lead role")
        if verdict not in VERDICTS:
            raise ReviewError(f"verdict must be one of {', '.join(VERDICTS)}")
        if not filters.as_dict():
            raise ReviewError("a bulk action needs at least one filter")
        now = self.now()
        out: list[Label] = []
        with self._write() as conn:
            q = sa.select(cases).where(cases.c.state.in_(_OPEN_STATES), *filters.clauses()).where(
                sa.or_(cases.c.claimed_by.is_(None), cases.c.claimed_by == actor, cases.c.claim_expires_at <= now)
            ).order_by(cases.c.id).limit(limit)
            if self.dialect == "postgresql":
                q = q.with_for_update(skip_locked=True)
            for row in conn.execute(q).all():
                out.append(self._close(conn, row, actor=actor, verdict=verdict, note=note, now=now, action="bulk_verdict"))
            self._audit(conn, actor=actor, action="bulk", case_id=None, at=now,
                        after={"filters": filters.as_dict(), "verdict": verdict, "cases": len(out)}, detail=note)
        return out

    # ------------------------------------------------------------------ labels in
    def record_labels(self, items: Sequence[Label]) -> int:
        """Store outside labels (chargeback, refund) and close the open cases they settle.

        Analyst labels that came back from the topic are already stored and skipped;
        redelivered labels (same order, source, label and time) are stored once.
        Returns how many cases were closed.
        """
        outside = [lb for lb in items if lb.source != "analyst"]
        if not outside:
            return 0
        now = self.now()
        closed = 0
        with self._write() as conn:
            ids = list({lb.order_id for lb in outside})
            seen = {
                (r.order_id, r.source, r.label, r.created_at)
                for r in conn.execute(
                    sa.select(labels.c.order_id, labels.c.source, labels.c.label, labels.c.created_at)
                    .where(labels.c.order_id.in_(ids))
                )
            }
            fresh: list[Label] = []
            for lb in outside:
                k = (lb.order_id, lb.source, lb.label, lb.created_at.astimezone(UTC))
                if k not in seen:
                    seen.add(k)
                    fresh.append(lb)
            self._store_labels(conn, fresh, now=now)
            q = sa.select(cases).where(cases.c.order_id.in_(ids), cases.c.state.in_(_OPEN_STATES))
            if self.dialect == "postgresql":
                q = q.with_for_update()
            open_rows = {r.order_id: r for r in conn.execute(q).all()}
            for lb in fresh:
                row = open_rows.pop(lb.order_id, None)
                if row is None:
                    continue
                self._close(conn, row, actor=f"system:{lb.source}", verdict=lb.label, note=lb.note or "",
                            now=now, action="closed_by_label", source=lb.source)
                closed += 1
        return closed

    # ------------------------------------------------------------------ reading
    def get_case(self, case_id: int) -> dict[str, Any]:
        now = self.now()
        with self._read() as conn:
            row = conn.execute(sa.select(cases).where(cases.c.id == case_id)).first()
        if row is None:
            raise CaseNotFound(f"no case {case_id}")
        return self._summary(row._mapping, now)

    def case_history(self, case_id: int) -> list[dict[str, Any]]:
        with self._read() as conn:
            rows = conn.execute(sa.select(audit).where(audit.c.case_id == case_id).order_by(audit.c.id))
            return [dict(r._mapping) for r in rows]

    def audit_log(self, *, limit: int = 200) -> list[dict[str, Any]]:
        with self._read() as conn:
            rows = conn.execute(sa.select(audit).order_by(audit.c.id.desc()).limit(limit))
            return [dict(r._mapping) for r in rows]

    def linked_orders(self, case_id: int, *, limit: int = 50) -> list[dict[str, Any]]:
        """Other orders sharing an entity (or the phrase cluster) with the case, within the window."""
        case = self.get_case(case_id)
        if not any(case.get(f"{kind}_key") for kind in ENTITY_KINDS):
            # A case opened without its order (a return, say): the index may know the order.
            with self._read() as conn:
                indexed = conn.execute(sa.select(orders).where(orders.c.order_id == case["order_id"])).first()
            if indexed is not None:
                case.update({f"{k}_key": getattr(indexed, f"{k}_key") for k in ENTITY_KINDS})
        conds = []
        keys: dict[str, str] = {}
        for kind in ENTITY_KINDS:
            k = case.get(f"{kind}_key")
            if k:
                keys[kind] = k
                conds.append(orders.c[f"{kind}_key"] == k)
        if case.get("cluster_id"):
            conds.append(orders.c.cluster_id == case["cluster_id"])
        if not conds:
            return []
        t = case["event_time"]
        q = (
            sa.select(orders)
            .where(sa.or_(*conds), orders.c.order_id != case["order_id"])
            .where(orders.c.event_time.between(t - self.link_window, t + self.link_window))
            .order_by(orders.c.event_time.desc())
            .limit(limit)
        )
        with self._read() as conn:
            rows = [dict(r._mapping) for r in conn.execute(q)]
            verdicts = {
                r.order_id: (r.id, r.verdict)
                for r in conn.execute(
                    sa.select(cases.c.order_id, cases.c.id, cases.c.verdict).where(
                        cases.c.order_id.in_([r["order_id"] for r in rows])
                    )
                )
            } if rows else {}
        for r in rows:
            r["shared"] = [kind for kind, k in keys.items() if r.get(f"{kind}_key") == k]
            if case.get("cluster_id") and r.get("cluster_id") == case["cluster_id"]:
                r["shared"].append("phrase cluster")
            case_ref = verdicts.get(r["order_id"])
            r["case_id"], r["case_verdict"] = case_ref if case_ref else (None, None)
            r["outcome"] = r["label"] or r["case_verdict"] or r["action"]
        return rows

    def stats(self) -> dict[str, Any]:
        """Queue health: depth by state, oldest open case, verdict mix (7 days), throughput (24 h)."""
        now = self.now()
        day, week = now - timedelta(days=1), now - timedelta(days=7)
        not_snoozed = sa.or_(cases.c.snoozed_until.is_(None), cases.c.snoozed_until <= now)
        claimed = sa.and_(cases.c.claimed_by.is_not(None), cases.c.claim_expires_at > now)
        with self._read() as conn:
            depth = {"open": 0, "claimed": 0, "escalated": 0, "snoozed": 0}
            q = sa.select(
                cases.c.state,
                sa.case((sa.not_(not_snoozed), "snoozed"), (claimed, "claimed"), else_="").label("sub"),
                sa.func.count(),
            ).where(cases.c.state.in_(_OPEN_STATES)).group_by(sa.text("1"), sa.text("2"))
            for state, sub, n in conn.execute(q):
                key = sub or state
                depth[key] = depth.get(key, 0) + int(n)
            oldest = conn.execute(
                sa.select(sa.func.min(cases.c.opened_at)).where(cases.c.state.in_(_OPEN_STATES), not_snoozed)
            ).scalar()
            mix = {
                v: int(n)
                for v, n in conn.execute(
                    sa.select(cases.c.verdict, sa.func.count()).where(cases.c.closed_at >= week)
                    .group_by(cases.c.verdict)
                )
                if v
            }
            by_source = {
                s: int(n)
                for s, n in conn.execute(
                    sa.select(labels.c.source, sa.func.count()).where(labels.c.recorded_at >= week)
                    .group_by(labels.c.source)
                )
            }
            opened_24h = conn.execute(
                sa.select(sa.func.count()).select_from(cases).where(cases.c.opened_at >= day)
            ).scalar_one()
            closed_24h = conn.execute(
                sa.select(sa.func.count()).select_from(cases).where(cases.c.closed_at >= day)
            ).scalar_one()
            unpublished = conn.execute(
                sa.select(sa.func.count()).select_from(labels).where(
                    labels.c.source == "analyst", labels.c.published.is_(False)
                )
            ).scalar_one()
        if oldest is not None and oldest.tzinfo is None:
            oldest = oldest.replace(tzinfo=UTC)
        return {
            "depth": depth,
            "total_open": sum(depth.values()),
            "oldest_age_s": max(0.0, (now - oldest).total_seconds()) if oldest else 0.0,
            "verdicts_7d": mix,
            "labels_7d": by_source,
            "opened_24h": int(opened_24h),
            "closed_24h": int(closed_24h),
            "unpublished_labels": int(unpublished),
        }

    def reason_codes(self) -> list[str]:
        """Reason codes present on open cases (for the queue's filter menu)."""
        with self._read() as conn:
            rows = conn.execute(
                sa.select(cases.c.reason_codes).where(cases.c.state.in_(_OPEN_STATES)).distinct().limit(500)
            )
            codes = {c for (rc,) in rows for c in (rc or "").split("|") if c}
        return sorted(codes)

    def refresh_metrics(self, metrics: Metrics, *, min_interval_s: float = 0.0) -> None:
        """Set the queue gauges; ``min_interval_s`` throttles callers on the hot path."""
        import time

        with self._metrics_lock:
            mono = time.monotonic()
            if min_interval_s and mono - self._metrics_at < min_interval_s:
                return
            self._metrics_at = mono
        s = self.stats()
        for state, n in s["depth"].items():
            metrics.review_queue_depth.labels(state=state).set(n)
        metrics.review_queue_oldest_age.set(s["oldest_age_s"])

    # ------------------------------------------------------------------ export
    def iter_labels(self, *, since: datetime | None = None) -> list[dict[str, Any]]:
        q = sa.select(
            labels.c.order_id, labels.c.label, labels.c.source, labels.c.created_at.label("time"),
            labels.c.case_id, labels.c.return_id,
        ).order_by(labels.c.created_at, labels.c.id)
        if since is not None:
            q = q.where(labels.c.created_at >= since)
        with self._read() as conn:
            return [dict(r._mapping) for r in conn.execute(q)]

    def export_labels(self, path: Path, *, fmt: str | None = None, since: datetime | None = None) -> int:
        """Write training labels (order_id, label, source, time, case_id, return_id) to a file.

        The format is ``parquet``, ``csv`` or ``jsonl``, from ``fmt`` or the file suffix.
        """
        fmt = (fmt or path.suffix.lstrip(".") or "parquet").lower()
        rows = self.iter_labels(since=since)
        path.parent.mkdir(parents=True, exist_ok=True)
        cols = ["order_id", "label", "source", "time", "case_id", "return_id"]
        if fmt == "parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq

            table = pa.table(
                {
                    "order_id": pa.array([r["order_id"] for r in rows], pa.string()),
                    "label": pa.array([r["label"] for r in rows], pa.string()),
                    "source": pa.array([r["source"] for r in rows], pa.string()),
                    "time": pa.array([r["time"] for r in rows], pa.timestamp("us", tz="UTC")),
                    "case_id": pa.array([r["case_id"] for r in rows], pa.int64()),
                    "return_id": pa.array([r["return_id"] for r in rows], pa.string()),
                }
            )
            pq.write_table(table, path)
        elif fmt == "csv":
            with path.open("w", newline="", encoding="utf-8") as fh:
                w = csv.DictWriter(fh, fieldnames=cols)
                w.writeheader()
                for r in rows:
                    w.writerow({**r, "time": r["time"].isoformat()})
        elif fmt in ("jsonl", "json"):
            with path.open("w", encoding="utf-8") as fh:
                for r in rows:
                    fh.write(json.dumps({**r, "time": r["time"].isoformat()}) + "\n")
        else:
            raise ReviewError(f"unknown export format {fmt!r}: use parquet, csv or jsonl")
        return len(rows)

    # ------------------------------------------------------------------ users
    def add_user(
        self, username: str, *, role: str, password: str | None = None, with_token: bool = False
    ) -> str | None:
        """Create (or replace the credentials of) a user; returns a new API token if asked."""
        from detector.auth import hash_password, hash_token, new_token

        if role not in ROLE_RANK:
            raise ReviewError(f"role must be one of {', '.join(ROLE_RANK)}")
        username = username.strip()
        if not username or len(username) > 64:
            raise ReviewError("a username has 1 to 64 characters")
        if password is None and not with_token:
            raise ReviewError("a user needs a password or a token")
        token = new_token() if with_token else None
        values = {
            "role": role,
            "password_hash": hash_password(password) if password else None,
            "token_hash": hash_token(token) if token else None,
            "disabled": False,
        }
        now = self.now()
        with self._write() as conn:
            exists = conn.execute(sa.select(users.c.username).where(users.c.username == username)).first()
            if exists:
                conn.execute(users.update().where(users.c.username == username).values(**values))
            else:
                conn.execute(users.insert().values(username=username, created_at=now, **values))
            self._audit(conn, actor="cli", action="user_set", case_id=None, at=now,
                        after={"username": username, "role": role, "token": bool(token), "password": bool(password)})
        return token

    def list_users(self) -> list[dict[str, Any]]:
        with self._read() as conn:
            rows = conn.execute(sa.select(users).order_by(users.c.username))
            return [
                {
                    "username": r.username, "role": r.role, "created_at": r.created_at,
                    "password": r.password_hash is not None, "token": r.token_hash is not None,
                    "disabled": r.disabled,
                }
                for r in rows
            ]

    def get_user(self, username: str) -> dict[str, Any] | None:
        with self._read() as conn:
            r = conn.execute(sa.select(users).where(users.c.username == username)).first()
        return dict(r._mapping) if r is not None else None

    def authenticate(self, username: str, password: str) -> dict[str, Any] | None:
        """The user if the password matches and the account is enabled."""
        from detector.auth import verify_password

        user = self.get_user(username.strip())
        if user is None or user["disabled"] or not user["password_hash"]:
            # Spend the same time as a real check, so timing does not reveal usernames.
            verify_password(password, _DUMMY_HASH)
            return None
        return user if verify_password(password, user["password_hash"]) else None

    def user_for_token(self, token: str) -> dict[str, Any] | None:
        from detector.auth import hash_token

        with self._read() as conn:
            r = conn.execute(sa.select(users).where(users.c.token_hash == hash_token(token))).first()
        if r is None or r.disabled:
            return None
        return dict(r._mapping)


_SUMMARY_COLS = [c for c in cases.c if c.name not in ("decision_json", "order_json")] + [
    cases.c.decision_json, cases.c.order_json,
]

_DUMMY_HASH = "scrypt$16384$8$1$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="


def _held_by_other(row: Any, actor: str, now: datetime) -> bool:
    return bool(row.claimed_by) and row.claimed_by != actor and row.claim_expires_at is not None and row.claim_expires_at > now


def _case_key(d: Decision) -> str:
    return f"return:{d.return_id}" if d.subject == "return" and d.return_id else f"order:{d.order_id}"


def _shadow_review(d: Decision) -> bool:
    s = d.shadow
    if not isinstance(s, dict):
        return False
    if s.get("action") == "review":
        return True
    return any(isinstance(v, dict) and v.get("action") == "review" for v in s.values())


def _cluster_id(d: Decision) -> str | None:
    # Decision has no cluster field yet; a later contract version may add one.
    value = getattr(d, "cluster_id", None)
    return str(value)[:128] if value else None


def _amount(o: Order | None) -> float | None:
    if o is None or o.payment.amount is None:
        return None
    return float(o.payment.amount)


def _country(o: Order | None) -> str | None:
    if o is None:
        return None
    for addr in (o.shipping_address, o.billing_address):
        if addr is not None and addr.country:
            return addr.country
    return o.payment.card_country


def _snoozed_until(active: Mapping[tuple[str, str], datetime], row: Mapping[str, Any]) -> datetime | None:
    hits = [active[(k, row[f"{k}_key"])] for k in ENTITY_KINDS if row.get(f"{k}_key") and (k, row[f"{k}_key"]) in active]
    return max(hits) if hits else None
