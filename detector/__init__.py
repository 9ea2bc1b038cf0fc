"""The engine and the service around it: engine, policy, settings, metrics, API, CLI."""

__all__: list[str] = []
__version__ = "0.1.0"
