"""Migration scripts (one revision per file)."""

__all__: list[str] = []
