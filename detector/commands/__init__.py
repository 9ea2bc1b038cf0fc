"""CLI command modules: each exposes ``register(app)`` and is discovered by ``detector.cli``."""

__all__: list[str] = []
