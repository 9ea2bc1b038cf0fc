"""The progress bar every long-running command shows (train, featurize, backtest)."""

from __future__ import annotations

from typing import Any

__all__ = ["progress_bar"]


def progress_bar(*extra: str, console: Any = None) -> Any:
    """A rich Progress: description, bar, done/total, ``extra`` text columns, elapsed, remaining.

    ``extra`` are format strings for more columns, e.g. ``"{task.fields[rate]}"``.
    """
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        *(TextColumn(e) for e in extra), TimeElapsedColumn(), TimeRemainingColumn(),
        console=console, transient=False,
    )
