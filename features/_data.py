"""Reading the editable data files under ``features/data`` (comments start with ``#``)."""

from __future__ import annotations

import csv
from functools import cache
from importlib import resources
from pathlib import Path

__all__ = ["data_path", "read_csv_rows", "read_lines"]


def data_path(name: str) -> Path:
    return Path(str(resources.files("features") / "data" / name))


@cache
def read_lines(name: str) -> tuple[str, ...]:
    """Non-empty, non-comment lines of a data file (cached)."""
    out = []
    for line in data_path(name).read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            out.append(line)
    return tuple(out)


def read_csv_rows(path: Path) -> list[dict[str, str]]:
    """Rows of a CSV with a header line; ``#`` comment lines before it are skipped."""
    with path.open(encoding="utf-8", newline="") as fh:
        lines = [ln for ln in fh if not ln.lstrip().startswith("#")]
    return list(csv.DictReader(lines))
