"""Alembic environment: runs on the connection ``detector.review.migrate`` hands over.

Used programmatically (``riskwire db upgrade`` and at startup); with the plain
``alembic`` command it falls back to ``sqlalchemy.url`` from the config.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context

__all__: list[str] = []

VERSION_TABLE = "rw_alembic_version"


def _run(connection: sa.Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=None,
        version_table=VERSION_TABLE,
        # SQLite cannot ALTER most things: batch mode copies the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


connection = context.config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    engine = sa.create_engine(context.config.get_main_option("sqlalchemy.url") or "")
    with engine.begin() as conn:
        _run(conn)
    engine.dispose()
