"""The review store's schema as SQLAlchemy Core tables (the migrations create the same).

Times are stored in UTC through :class:`UTCDateTime`, so SQLite (which keeps no zone)
and PostgreSQL read back the same aware datetimes. Entity keys (email, card, device,
IP, address, customer) are short salted hashes: they link orders without copying PII
into the index; analysts see the raw values only in a case's stored order.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

__all__ = [
    "ENTITY_KINDS",
    "UTCDateTime",
    "audit",
    "cases",
    "labels",
    "metadata",
    "orders",
    "snoozes",
    "users",
]

#: Entity kinds that link orders and that an analyst can snooze.
ENTITY_KINDS = ("email", "card", "device", "ip", "address", "customer")


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """An aware datetime in, an aware UTC datetime out, on every backend."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        value = value.astimezone(UTC)
        # SQLite compares the stored text: keep one zone-less format there.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


metadata = sa.MetaData()

_key = sa.String(32)

users = sa.Table(
    "rw_users",
    metadata,
    sa.Column("username", sa.String(64), primary_key=True),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("password_hash", sa.String(256)),
    sa.Column("token_hash", sa.String(64), unique=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("disabled", sa.Boolean, nullable=False, default=False),
)

cases = sa.Table(
    "rw_cases",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("case_key", sa.String(200), nullable=False, unique=True),
    sa.Column("order_id", sa.String(128), nullable=False, index=True),
    sa.Column("return_id", sa.String(128)),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("shadow", sa.Boolean, nullable=False, default=False),
    sa.Column("revision", sa.Integer, nullable=False),
    sa.Column("decision_id", sa.String(128), nullable=False),
    sa.Column("score", sa.Integer, nullable=False),
    sa.Column("action", sa.String(16), nullable=False),
    sa.Column("amount", sa.Float),
    sa.Column("currency", sa.String(3)),
    sa.Column("country", sa.String(2)),
    sa.Column("merchant_id", sa.String(128)),
    sa.Column("reason_codes", sa.String(2000), nullable=False, default="|"),
    sa.Column("cluster_id", sa.String(128)),
    sa.Column("priority_base", sa.Float, nullable=False),
    sa.Column("priority", sa.Float, nullable=False),
    sa.Column("email_key", _key),
    sa.Column("card_key", _key),
    sa.Column("device_key", _key),
    sa.Column("ip_key", _key),
    sa.Column("address_key", _key),
    sa.Column("customer_key", _key),
    sa.Column("event_time", UTCDateTime, nullable=False),
    sa.Column("decision_json", sa.JSON, nullable=False),
    sa.Column("order_json", sa.JSON),
    sa.Column("opened_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Column("claimed_by", sa.String(64), index=True),
    sa.Column("claim_expires_at", UTCDateTime),
    sa.Column("snoozed_until", UTCDateTime),
    sa.Column("verdict", sa.String(16)),
    sa.Column("verdict_note", sa.String(4000)),
    sa.Column("closed_at", UTCDateTime),
    sa.Column("closed_by", sa.String(64)),
    # Claim-next and the queue scan this index backwards: priority desc, id desc.
    sa.Index("ix_rw_cases_state_priority", "state", "priority", "id"),
)

audit = sa.Table(
    "rw_audit",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("actor", sa.String(64), nullable=False),
    sa.Column("action", sa.String(32), nullable=False),
    sa.Column("case_id", sa.Integer, index=True),
    sa.Column("before", sa.JSON),
    sa.Column("after", sa.JSON),
    sa.Column("detail", sa.String(4000)),
)

snoozes = sa.Table(
    "rw_snoozes",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("entity_kind", sa.String(16), nullable=False),
    sa.Column("entity_key", _key, nullable=False),
    sa.Column("until", UTCDateTime, nullable=False),
    sa.Column("created_by", sa.String(64), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("note", sa.String(4000)),
    sa.Index("ix_rw_snoozes_key", "entity_kind", "entity_key"),
)

labels = sa.Table(
    "rw_labels",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("order_id", sa.String(128), nullable=False, index=True),
    sa.Column("label", sa.String(16), nullable=False),
    sa.Column("source", sa.String(16), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("recorded_at", UTCDateTime, nullable=False),
    sa.Column("case_id", sa.Integer),
    sa.Column("return_id", sa.String(128)),
    sa.Column("actor", sa.String(128)),
    sa.Column("note", sa.String(4000)),
    sa.Column("published", sa.Boolean, nullable=False, default=False),
)

orders = sa.Table(
    "rw_orders",
    metadata,
    sa.Column("order_id", sa.String(128), primary_key=True),
    sa.Column("event_time", UTCDateTime, nullable=False, index=True),
    sa.Column("decided_at", UTCDateTime, nullable=False),
    sa.Column("revision", sa.Integer, nullable=False),
    sa.Column("score", sa.Integer, nullable=False),
    sa.Column("action", sa.String(16), nullable=False),
    sa.Column("amount", sa.Float),
    sa.Column("currency", sa.String(3)),
    sa.Column("country", sa.String(2)),
    sa.Column("merchant_id", sa.String(128)),
    sa.Column("email_key", _key),
    sa.Column("card_key", _key),
    sa.Column("device_key", _key),
    sa.Column("ip_key", _key),
    sa.Column("address_key", _key),
    sa.Column("customer_key", _key),
    sa.Column("cluster_id", sa.String(128)),
    sa.Column("label", sa.String(16)),
    sa.Column("label_source", sa.String(16)),
    sa.Index("ix_rw_orders_email", "email_key", "event_time"),
    sa.Index("ix_rw_orders_card", "card_key", "event_time"),
    sa.Index("ix_rw_orders_device", "device_key", "event_time"),
    sa.Index("ix_rw_orders_ip", "ip_key", "event_time"),
    sa.Index("ix_rw_orders_address", "address_key", "event_time"),
    sa.Index("ix_rw_orders_cluster", "cluster_id"),
)
