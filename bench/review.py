"""Review queue figures: case creation rate from a decision stream, and claim-next latency
with 10 concurrent analysts, on PostgreSQL (and SQLite for comparison).

Data: orders from riskwire's seeded traffic generator (generated, not the real data
sets); decisions are built from them with a given review share (the engine's own cost
is not measured here, only the case store's). PostgreSQL runs in a throw-away schema
that is dropped afterwards.

    .venv/bin/python bench/review.py [--decisions 20000] [--review-share 0.1] [--cases 3000]
        [--analysts 10] [--postgres-url postgresql+psycopg://postgres@127.0.0.1:5432/test]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import sqlalchemy as sa

from contracts import Decision, Order, Reason, Versions
from detector.review import CaseSink, CaseStore, create_db_engine
from streams.generator import history

__all__ = ["main"]

VERSIONS = Versions(engine="bench", features="f", model="m", ruleset="r")


def decisions_for(orders: list[Order], *, review_share: float) -> list[Decision]:
    out = []
    step = max(1, round(1 / review_share)) if review_share > 0 else 0
    now = datetime.now(UTC)
    for i, o in enumerate(orders):
        review = step and i % step == 0
        out.append(Decision(
            decision_id=f"{o.order_id}:1", order_id=o.order_id, event_time=o.created_at, decided_at=now,
            score=80 if review else 20, action="review" if review else "approve",
            reasons=[Reason(code="HIGH_AMOUNT", detail="amount well above the customer's usual", contribution=3.0)],
            versions=VERSIONS,
        ))
    return out


def bench_sink(store: CaseStore, orders: list[Order], *, review_share: float, batch: int) -> dict[str, float]:
    decisions = decisions_for(orders, review_share=review_share)
    by_id = {o.order_id: o for o in orders}
    sink = CaseSink(store)
    started = time.perf_counter()
    for i in range(0, len(decisions), batch):
        chunk = decisions[i:i + batch]
        sink(chunk, {d.order_id: by_id[d.order_id] for d in chunk})
    seconds = time.perf_counter() - started
    cases = store.count()
    return {"decisions": len(decisions), "cases": cases, "seconds": seconds,
            "decisions_per_s": len(decisions) / seconds, "cases_per_s": cases / seconds}


def bench_claims(store: CaseStore, *, analysts: int, claims: int) -> dict[str, float]:
    latencies: list[float] = []
    lock = threading.Lock()
    barrier = threading.Barrier(analysts)
    budget = [claims]
    seen: set[int] = set()
    dupes = [0]

    def analyst(i: int) -> None:
        barrier.wait()
        while True:
            with lock:
                if budget[0] <= 0:
                    return
                budget[0] -= 1
            t = time.perf_counter()
            case = store.claim_next(actor=f"analyst-{i}")
            dt = time.perf_counter() - t
            if case is None:
                return
            with lock:
                latencies.append(dt)
                if case["id"] in seen:
                    dupes[0] += 1
                seen.add(case["id"])
            store.verdict(case["id"], actor=f"analyst-{i}", verdict="legit")

    threads = [threading.Thread(target=analyst, args=(i,)) for i in range(analysts)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    q = statistics.quantiles(latencies, n=100)
    return {"claims": len(latencies), "duplicates": dupes[0], "p50_ms": q[49] * 1e3, "p95_ms": q[94] * 1e3,
            "p99_ms": q[98] * 1e3, "claims_per_s": len(latencies) / wall}


def run(label: str, store: CaseStore, orders: list[Order], args: argparse.Namespace) -> None:
    sink = bench_sink(store, orders, review_share=args.review_share, batch=args.batch)
    print(f"[{label}] case sink: {sink['decisions']} decisions in {sink['seconds']:.2f} s -> "
          f"{sink['decisions_per_s']:.0f} decisions/s, {sink['cases_per_s']:.0f} cases opened/s "
          f"({sink['cases']} cases, batch {args.batch}, review share {args.review_share})")
    solo = bench_claims(store, analysts=1, claims=min(200, sink["cases"] // 4))
    print(f"[{label}] claim-next, one analyst alone (claim, then verdict): {solo['claims']} claims, "
          f"p50 {solo['p50_ms']:.1f} ms, p95 {solo['p95_ms']:.1f} ms, p99 {solo['p99_ms']:.1f} ms")
    claims = bench_claims(store, analysts=args.analysts, claims=min(args.cases, sink["cases"] - solo["claims"]))
    print(f"[{label}] claim-next with {args.analysts} concurrent analysts (claim, then verdict): "
          f"{claims['claims']} claims, p50 {claims['p50_ms']:.1f} ms, p95 {claims['p95_ms']:.1f} ms, "
          f"p99 {claims['p99_ms']:.1f} ms, {claims['claims_per_s']:.0f} claims/s, duplicates {claims['duplicates']}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--decisions", type=int, default=20_000)
    ap.add_argument("--review-share", type=float, default=0.1)
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--cases", type=int, default=1500, help="claims to time")
    ap.add_argument("--analysts", type=int, default=10)
    ap.add_argument("--postgres-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    ap.add_argument("--skip-sqlite", action="store_true")
    args = ap.parse_args()

    t = time.perf_counter()
    orders = list(islice(history(n_orders=args.decisions, seed=3), args.decisions))
    print(f"generated {len(orders)} orders in {time.perf_counter() - t:.1f} s (streams.generator, seed 3)")

    schema = f"rw_bench_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(args.postgres_url)
    try:
        with admin.begin() as conn:
            conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    except Exception as exc:
        print(f"PostgreSQL unavailable at {args.postgres_url}: {exc}")
        admin = None
    if admin is not None:
        url = sa.make_url(args.postgres_url).update_query_dict({"options": f"-csearch_path={schema}"})
        store = CaseStore(create_db_engine(url.render_as_string(hide_password=False)))
        try:
            store.upgrade()
            run("postgresql", store, orders, args)
        finally:
            store.engine.dispose()
            with admin.begin() as conn:
                conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
            admin.dispose()
    if not args.skip_sqlite:
        with tempfile.TemporaryDirectory() as tmp:
            store = CaseStore.from_url(f"sqlite:///{tmp}/bench.db")
            run("sqlite", store, orders, args)
            store.engine.dispose()


if __name__ == "__main__":
    main()
