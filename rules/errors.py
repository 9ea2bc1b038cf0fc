"""Load-time errors of the rule layer; every one carries where it happened."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from contracts.errors import ConfigError

__all__ = ["CompileIssue", "RuleCompileError"]


@dataclass(frozen=True, slots=True)
class CompileIssue:
    """One problem in a ruleset: 1-based line and column, and a message for analysts."""

    line: int
    column: int
    message: str
    #: The file this issue is in, when it is not the ruleset itself (a list file, say).
    source: str | None = None

    def format(self, source: str) -> str:
        return f"{self.source or source}:{self.line}:{self.column}: {self.message}"


class RuleCompileError(ConfigError):
    """A ruleset (or a list it needs) cannot be loaded; ``errors`` says where and why.

    Raised at load time only: a bad rule fails the load, never a checkout.
    """

    def __init__(self, errors: Sequence[CompileIssue], *, source: str = "<string>") -> None:
        self.errors: list[CompileIssue] = sorted(errors, key=lambda e: (e.source or "", e.line, e.column))
        self.source = source
        first = self.errors[0].format(source) if self.errors else f"{source}: invalid ruleset"
        more = f" (and {len(self.errors) - 1} more)" if len(self.errors) > 1 else ""
        super().__init__(first + more)

    def lines(self) -> list[str]:
        """``FILE:LINE:COLUMN: message``, one per error, as `riskwire rules check` prints."""
        return [e.format(self.source) for e in self.errors]
