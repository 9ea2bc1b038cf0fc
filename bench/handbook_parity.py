"""Handbook parity: riskwire's streaming features vs the handbook's own, row by row.

Data: the real handbook files in ../shared/data/handbook (not generated). First run

    riskwire featurize --format handbook --label-delay 7d \
        --input ../shared/data/handbook/transactions_raw_2018-04-01_2018-09-30.csv.gz \
        --output .riskwire/handbook_features.parquet

then ``python bench/handbook_parity.py [--features PATH]``. Prints, per column, the share
of the 919,767 transformed rows whose value agrees within 1e-6.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from features.parity import compare  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "handbook"


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
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
