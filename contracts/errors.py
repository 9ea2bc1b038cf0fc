"""One exception root for the project, with small subclasses.

Broad ``except`` clauses belong only at the loop and request boundaries; everything
below raises one of these.
"""

from __future__ import annotations

__all__ = ["ConfigError", "InvalidEvent", "RiskwireError", "SignalUnavailable"]


class RiskwireError(Exception):
    """Root of every error riskwire raises on purpose."""


class ConfigError(RiskwireError):
    """Settings, artifacts or rule files that cannot be used; raised at load time."""


class InvalidEvent(RiskwireError):
    """Bytes or JSON that are not a valid event of the expected kind.

    ``errors`` holds a list of ``{"loc": ..., "msg": ...}`` items an operator can read.
    """

    def __init__(self, message: str, *, errors: list[dict[str, object]] | None = None) -> None:
        super().__init__(message)
        self.errors = errors or []


class SignalUnavailable(RiskwireError):
    """A scoring signal could not be computed (timeout, dead endpoint, open breaker).

    The policy reads it as a missing signal and records it under ``degraded``; it is
    never turned into an HTTP 500.
    """

    def __init__(self, signal: str, reason: str) -> None:
        super().__init__(f"{signal}: {reason}")
        self.signal = signal
        self.reason = reason
