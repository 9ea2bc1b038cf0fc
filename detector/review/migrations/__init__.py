"""Alembic migrations for the review store, shipped inside the package."""

__all__: list[str] = []
