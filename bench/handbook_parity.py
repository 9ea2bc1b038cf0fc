"""Handbook parity: riskwire's streaming features vs the handbook's own, row by row.

Data: the real handbook files in ../shared/data/handbook (not generated). First run

    riskwire featurize --format handbook --label-delay 7d \
        --input ../shared/data/handbook/transactions_raw_2018-04-01_2018-09-30.csv.gz \
        --output .riskwire/handbook_features.parquet

then ``python bench/handbook_parity.py [--features PATH]``. Prints, per column, the share
of the 919,767 transformed rows whose value agrees within 1e-6.

Then it explains the customer rows that disagree. riskwire orders a customer's
transactions in the same second by transaction id; the handbook sorted each customer's
transactions with pandas' default (unstable) quicksort, so equal times came out in
whatever order numpy 1.x's introsort left them. ``bench/_numpy_quicksort.py``
transcribes that sort (checked equal to numpy 1.24.4 on tie-heavy arrays); the report
re-runs it on each affected customer's transactions (in transaction-id order, as the
handbook read them), featurises those customers again through the streaming code in
that tie order, and prints how many of their rows then agree.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(1, str(ROOT / "bench"))

from features.parity import compare  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "handbook"
RAW = DATA / "transactions_raw_2018-04-01_2018-09-30.csv.gz"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--features", type=Path, default=ROOT / ".riskwire" / "handbook_features.parquet")
    ap.add_argument("--transformed", type=Path, default=DATA / "transactions_transformed_2018-06-11_2018-09-14.parquet")
    ap.add_argument("--tol", type=float, default=1e-6)
    args = ap.parse_args()
    import pandas as pd

    if not args.transformed.exists():
        print(f"handbook data absent: {args.transformed}")
        return 0
    if not args.features.exists():
        print(f"features absent: {args.features}; run the featurize command in this file's docstring")
        return 1
    from features.parity import COLUMN_MAP

    ours = pd.read_parquet(args.features, columns=["TRANSACTION_ID", *COLUMN_MAP])
    theirs = pd.read_parquet(args.transformed)
    report, mismatches = compare(ours, theirs, tol=args.tol)
    pd.set_option("display.width", 200)
    print(f"rows compared: {len(theirs):,}; rows missing from ours: {report.attrs['missing']:,}; tolerance {args.tol}")
    print(report.to_string(index=False, float_format=lambda v: f"{v:.6f}"))
    for col, rows in mismatches.items():
        print(f"\nfirst disagreements in {col}:")
        print(rows.to_string(index=False))
    customer_cols = [c for c in COLUMN_MAP if c.startswith("customer_")]
    if any(c in mismatches for c in customer_cols):
        explain_customer_ties(ours, theirs, customer_cols, tol=args.tol)
    return 0


def explain_customer_ties(ours, theirs, cols: list[str], *, tol: float) -> None:
    """Re-featurise the customers whose rows disagree, with ties in the handbook's own order."""
    import numpy as np
    from _numpy_quicksort import argsort_quicksort

    from features import OrderFeaturizer
    from features.batch import replay
    from features.handbook import handbook_events, read_handbook
    from features.parity import COLUMN_MAP

    joined = theirs.merge(ours, on="TRANSACTION_ID")
    bad = np.zeros(len(joined), dtype=bool)
    for c in cols:
        a, b = joined[c].astype(float).to_numpy(), joined[COLUMN_MAP[c]].astype(float).to_numpy()
        bad |= ~(np.isclose(a, b, rtol=0.0, atol=tol) | (np.isnan(a) & np.isnan(b)))
    raw = read_handbook(RAW)
    customers = set(joined.loc[bad, "CUSTOMER_ID"])
    mine = raw[raw.CUSTOMER_ID.isin(customers)]
    tied = mine.duplicated(["CUSTOMER_ID", "TX_DATETIME"], keep=False)
    bad_tied = joined.loc[bad, "TRANSACTION_ID"].isin(mine.loc[tied, "TRANSACTION_ID"]).all()
    # The handbook's order: per customer, its transactions by id, sorted by time with numpy 1.x's quicksort.
    rank = {}
    for _, grp in mine.sort_values("TRANSACTION_ID").groupby("CUSTOMER_ID"):
        ids = grp["TRANSACTION_ID"].tolist()
        for k, i in enumerate(argsort_quicksort(grp["TX_DATETIME"].astype("int64").tolist())):
            rank[ids[i]] = k
    mine = mine.assign(_rank=mine["TRANSACTION_ID"].map(rank)).sort_values(["TX_DATETIME", "_rank"], kind="stable")
    orders, labels, _ = handbook_events(mine.drop(columns="_rank").reset_index(drop=True), label_delay_s=7 * 86400)
    f = OrderFeaturizer(label_delay_s=7 * 86400)
    rows = []
    for batch, frame in replay(f, orders, labels, batch_size=500):
        values = frame.numbers(cols)
        rows += [(int(o.order_id), *values[k]) for k, o in enumerate(batch)]
    import pandas as pd

    again = pd.DataFrame(rows, columns=["TRANSACTION_ID", *cols])
    check = theirs[theirs.CUSTOMER_ID.isin(customers)].merge(again, on="TRANSACTION_ID")
    agree = np.ones(len(check), dtype=bool)
    for c in cols:
        a, b = check[c].to_numpy(), check[COLUMN_MAP[c]].astype(float).to_numpy()
        agree &= np.isclose(a, b, rtol=0.0, atol=tol) | (np.isnan(a) & np.isnan(b))
    print(f"\ncustomer rows that disagree: {int(bad.sum())}, of {len(customers)} customers; all are transactions "
          f"of one customer in the same second: {bool(bad_tied)}")
    print(f"those customers featurised again with same-second ties in the handbook's sort order "
          f"(numpy 1.x quicksort, bench/_numpy_quicksort.py): {int(agree.sum())} of {len(check)} of their rows agree "
          f"on every customer column ({agree.mean():.4%})")


if __name__ == "__main__":
    raise SystemExit(main())
