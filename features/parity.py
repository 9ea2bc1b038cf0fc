"""Row-by-row comparison of riskwire's handbook features with the handbook's own.

The handbook (Le Borgne et al., ch. 3 "Baseline feature transformation") computes, per
transaction at time t, with pandas time-based rolling windows:

- customer: count and mean amount over ``(t - w, t]`` (this transaction included);
- terminal: count over ``(t - d - w, t - d]`` and fraud risk = frauds / count over the
  same window (0 when the count is 0), ``d`` = the 7-day label delay;
- ``TX_DURING_WEEKEND`` (Saturday/Sunday) and ``TX_DURING_NIGHT`` (hour <= 6).

riskwire computes the same from event-time state: customer windows include the order;
merchant windows end ``label_delay`` before it; fraud labels are applied when they
arrive, ``label_delay`` after the transaction (before any order at that time).
"""

from __future__ import annotations

from typing import Any

__all__ = ["COLUMN_MAP", "compare"]

#: riskwire column -> handbook column.
COLUMN_MAP: dict[str, str] = {
    **{f"customer_tx_count_{w}d": f"CUSTOMER_ID_NB_TX_{w}DAY_WINDOW" for w in (1, 7, 30)},
    **{f"customer_amount_mean_{w}d": f"CUSTOMER_ID_AVG_AMOUNT_{w}DAY_WINDOW" for w in (1, 7, 30)},
    **{f"merchant_tx_count_{w}d": f"TERMINAL_ID_NB_TX_{w}DAY_WINDOW" for w in (1, 7, 30)},
    **{f"merchant_fraud_risk_{w}d": f"TERMINAL_ID_RISK_{w}DAY_WINDOW" for w in (1, 7, 30)},
    "is_weekend": "TX_DURING_WEEKEND",
    "is_night": "TX_DURING_NIGHT",
    "label": "TX_FRAUD",
}


def compare(ours: Any, theirs: Any, *, tol: float = 1e-6) -> tuple[Any, dict[str, Any]]:
    """Join on ``TRANSACTION_ID``; per column: rows, agreeing rows and their share.

    Returns ``(report DataFrame, mismatches)`` where ``mismatches`` maps a column to a
    small DataFrame of disagreeing rows.
    """
    import numpy as np
    import pandas as pd

    cols = [c for c in COLUMN_MAP if c in ours.columns]
    left = ours[["TRANSACTION_ID", *cols]]
    right = theirs[["TRANSACTION_ID", "TX_DATETIME", "CUSTOMER_ID", "TERMINAL_ID", *(COLUMN_MAP[c] for c in cols)]]
    joined = right.merge(left, on="TRANSACTION_ID", how="left", indicator=True)
    rows = []
    mismatches: dict[str, Any] = {}
    for c in cols:
        a = joined[c].astype(float).to_numpy()
        b = joined[COLUMN_MAP[c]].astype(float).to_numpy()
        ok = np.isclose(a, b, rtol=0.0, atol=tol) | (np.isnan(a) & np.isnan(b))
        rows.append({"column": c, "handbook": COLUMN_MAP[c], "rows": len(ok), "agree": int(ok.sum()),
                     "share": float(ok.mean()) if len(ok) else float("nan"),
                     "max_abs_diff": float(np.nanmax(np.abs(a - b))) if len(ok) else float("nan")})
        if not ok.all():
            mismatches[c] = joined.loc[~ok, ["TRANSACTION_ID", "TX_DATETIME", "CUSTOMER_ID", "TERMINAL_ID", c, COLUMN_MAP[c]]].head(10)
    report = pd.DataFrame(rows)
    report.attrs["missing"] = int((joined["_merge"] != "both").sum())
    return report, mismatches
