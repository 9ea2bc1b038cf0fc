"""The review store: users, cases, audit, snoozes, labels and the orders index.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

__all__: list[str] = []

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_T = sa.DateTime(timezone=True)


def _key(name: str) -> sa.Column:
    return sa.Column(name, sa.String(32))


def upgrade() -> None:
    op.create_table(
        "rw_users",
        sa.Column("username", sa.String(64), primary_key=True),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("password_hash", sa.String(256)),
        sa.Column("token_hash", sa.String(64), unique=True),
        sa.Column("created_at", _T, nullable=False),
        sa.Column("disabled", sa.Boolean, nullable=False),
    )
    op.create_table(
        "rw_cases",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("case_key", sa.String(200), nullable=False, unique=True),
        sa.Column("order_id", sa.String(128), nullable=False),
        sa.Column("return_id", sa.String(128)),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("shadow", sa.Boolean, nullable=False),
        sa.Column("revision", sa.Integer, nullable=False),
        sa.Column("decision_id", sa.String(128), nullable=False),
        sa.Column("score", sa.Integer, nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("amount", sa.Float),
        sa.Column("currency", sa.String(3)),
        sa.Column("country", sa.String(2)),
        sa.Column("merchant_id", sa.String(128)),
        sa.Column("reason_codes", sa.String(2000), nullable=False),
        sa.Column("cluster_id", sa.String(128)),
        sa.Column("priority_base", sa.Float, nullable=False),
        sa.Column("priority", sa.Float, nullable=False),
        _key("email_key"),
        _key("card_key"),
        _key("device_key"),
        _key("ip_key"),
        _key("address_key"),
        _key("customer_key"),
        sa.Column("event_time", _T, nullable=False),
        sa.Column("decision_json", sa.JSON, nullable=False),
        sa.Column("order_json", sa.JSON),
        sa.Column("opened_at", _T, nullable=False),
        sa.Column("updated_at", _T, nullable=False),
        sa.Column("claimed_by", sa.String(64)),
        sa.Column("claim_expires_at", _T),
        sa.Column("snoozed_until", _T),
        sa.Column("verdict", sa.String(16)),
        sa.Column("verdict_note", sa.String(4000)),
        sa.Column("closed_at", _T),
        sa.Column("closed_by", sa.String(64)),
    )
    op.create_index("ix_rw_cases_order_id", "rw_cases", ["order_id"])
    op.create_index("ix_rw_cases_state_priority", "rw_cases", ["state", "priority", "id"])
    op.create_index("ix_rw_cases_claimed_by", "rw_cases", ["claimed_by"])
    op.create_table(
        "rw_audit",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at", _T, nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("case_id", sa.Integer),
        sa.Column("before", sa.JSON),
        sa.Column("after", sa.JSON),
        sa.Column("detail", sa.String(4000)),
    )
    op.create_index("ix_rw_audit_case_id", "rw_audit", ["case_id"])
    op.create_table(
        "rw_snoozes",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("entity_kind", sa.String(16), nullable=False),
        sa.Column("entity_key", sa.String(32), nullable=False),
        sa.Column("until", _T, nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("created_at", _T, nullable=False),
        sa.Column("note", sa.String(4000)),
    )
    op.create_index("ix_rw_snoozes_key", "rw_snoozes", ["entity_kind", "entity_key"])
    op.create_table(
        "rw_labels",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("order_id", sa.String(128), nullable=False),
        sa.Column("label", sa.String(16), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("created_at", _T, nullable=False),
        sa.Column("recorded_at", _T, nullable=False),
        sa.Column("case_id", sa.Integer),
        sa.Column("return_id", sa.String(128)),
        sa.Column("actor", sa.String(128)),
        sa.Column("note", sa.String(4000)),
        sa.Column("published", sa.Boolean, nullable=False),
    )
    op.create_index("ix_rw_labels_order_id", "rw_labels", ["order_id"])
    op.create_table(
        "rw_orders",
        sa.Column("order_id", sa.String(128), primary_key=True),
        sa.Column("event_time", _T, nullable=False),
        sa.Column("decided_at", _T, nullable=False),
        sa.Column("revision", sa.Integer, nullable=False),
        sa.Column("score", sa.Integer, nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("amount", sa.Float),
        sa.Column("currency", sa.String(3)),
        sa.Column("country", sa.String(2)),
        sa.Column("merchant_id", sa.String(128)),
        _key("email_key"),
        _key("card_key"),
        _key("device_key"),
        _key("ip_key"),
        _key("address_key"),
        _key("customer_key"),
        sa.Column("cluster_id", sa.String(128)),
        sa.Column("label", sa.String(16)),
        sa.Column("label_source", sa.String(16)),
    )
    op.create_index("ix_rw_orders_event_time", "rw_orders", ["event_time"])
    for kind in ("email", "card", "device", "ip", "address"):
        op.create_index(f"ix_rw_orders_{kind}", "rw_orders", [f"{kind}_key", "event_time"])
    op.create_index("ix_rw_orders_cluster", "rw_orders", ["cluster_id"])


def downgrade() -> None:
    for table in ("rw_orders", "rw_labels", "rw_snoozes", "rw_audit", "rw_cases", "rw_users"):
        op.drop_table(table)
