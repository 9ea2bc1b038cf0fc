"""Amounts in the base currency (EUR) from a static, documented rates table.

The table is ``features/data/rates_eur.csv`` (EUR per unit of each currency). It is
static on purpose: a replay months later must give the same features.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from features._data import data_path, read_csv_rows

__all__ = ["BASE_CURRENCY", "load_rates", "to_base"]

BASE_CURRENCY = "EUR"


@cache
def load_rates(path: Path | None = None) -> dict[str, float]:
    rows = read_csv_rows(path or data_path("rates_eur.csv"))
    return {r["currency"].strip().upper(): float(r["eur_per_unit"]) for r in rows}


def to_base(amount: float | None, currency: str | None, *, rates: dict[str, float] | None = None) -> float | None:
    """``amount`` in EUR; a missing currency counts as EUR; an unknown one gives None."""
    if amount is None:
        return None
    rate = (rates or load_rates()).get(currency or BASE_CURRENCY)
    return None if rate is None else amount * rate
