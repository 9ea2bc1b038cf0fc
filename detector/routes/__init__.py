"""HTTP routers mounted by ``detector.api.create_app``: one module per feature, each
exposing ``router``."""

__all__: list[str] = []
