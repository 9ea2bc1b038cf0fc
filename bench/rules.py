"""Rule evaluation cost per order for 10, 100 and 500 rules, on one core.

Target (issue #6): 500 rules in under 200 µs per order.

Rulesets are generated (seeded) in the shape of real e-commerce rules: mostly 2-3 clause
conjunctions over amounts, velocities, country mismatches, booleans, list lookups (IP CIDR,
email domains, customers), text labels and some arithmetic, over a 60-attribute schema;
orders are generated attribute dicts with some attributes missing. Also prints the
compile time and the share of orders with at least one hit (so the figure is not the
cost of rules that never get past their first clause).

    .venv/bin/python bench/rules.py [--orders 4000] [--seed 7]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path and its name would shadow
# the ``rules`` package: look the package up from the project root instead.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

from contracts.schema import FeatureSchema, FeatureSpec  # noqa: E402
from rules import ListStore, NamedList, compile_ruleset  # noqa: E402

__all__ = ["main"]

COUNTRIES = ["PL", "DE", "US", "GB", "FR", "NG", "BR", "IN", "CN", "ES"]
LABELS = ["reshipping", "payment_evasion", "urgency_pressure", "prompt_injection", "gibberish"]


def make_schema() -> FeatureSchema:
    specs = [
        FeatureSpec(f"num_{i}", "number", "", "") for i in range(30)
    ] + [
        FeatureSpec(f"flag_{i}", "bool", "", "") for i in range(12)
    ] + [
        FeatureSpec(n, "string", "", "")
        for n in ("shipping_country", "billing_country", "ip_country", "card_country",
                  "email", "email_domain", "ip_address", "customer_id", "device_id", "channel",
                  "card_bin", "sku_category")
    ] + [
        FeatureSpec("amount_base", "number", "EUR", ""),
        FeatureSpec("account_age_days", "number", "days", ""),
        FeatureSpec("model_score", "number", "0-100", ""),
        FeatureSpec("text_labels", "string_list", "", ""),
    ]
    return FeatureSchema.of(specs)


def make_lists(rng: random.Random) -> ListStore:
    ips = [f"10.{rng.randrange(256)}.{rng.randrange(256)}.0/24" for _ in range(2000)] + [
        f"203.0.{rng.randrange(256)}.{rng.randrange(256)}" for _ in range(5000)
    ]
    domains = [f"trash{i}.example" for i in range(3000)]
    customers = [f"c-{i}" for i in range(0, 200_000, 7)]
    return ListStore([
        NamedList.build("blocked_ips", "ip", ips),
        NamedList.build("disposable_domains", "email_domain", domains),
        NamedList.build("trusted_customers", "customer", customers),
        NamedList.build("blocked_devices", "device", [f"d-{i}" for i in range(0, 50_000, 11)]),
    ])


def _clause(rng: random.Random) -> str:
    kind = rng.random()
    if kind < 0.45:
        # Thresholds in the tails, as real rules have (values are exponential, mean 20).
        if rng.random() < 0.7:
            return f":num_{rng.randrange(30)}: {rng.choice(['>', '>='])} {rng.randrange(30, 120)}"
        return f":num_{rng.randrange(30)}: {rng.choice(['<', '<='])} {rng.randrange(1, 5)}"
    if kind < 0.60:
        return f"{'not ' if rng.random() < 0.2 else ''}:flag_{rng.randrange(12)}:"
    if kind < 0.70:
        a, b = rng.sample(["shipping_country", "billing_country", "ip_country", "card_country"], 2)
        return f":{a}: != :{b}:"
    if kind < 0.76:
        return f":shipping_country: in [{', '.join(repr(c) for c in rng.sample(COUNTRIES, 3))}]"
    if kind < 0.80:
        return f":amount_base: > {rng.randrange(50, 2000)}"
    if kind < 0.84:
        return f":account_age_days: < {rng.randrange(1, 30)}"
    if kind < 0.87:
        return f":model_score: >= {rng.randrange(50, 100)}"
    if kind < 0.90:
        return f":text_labels: contains '{rng.choice(LABELS)}'"
    if kind < 0.93:
        return rng.choice([":ip_address: in @blocked_ips", ":email: in @disposable_domains",
                           ":device_id: in @blocked_devices"])
    if kind < 0.97:
        return f":num_{rng.randrange(30)}: / (:num_{rng.randrange(30)}: + 1) > {rng.randrange(2, 10)}"
    return f":card_bin: starts_with '{rng.randrange(40, 60)}'"


def make_rules(n: int, rng: random.Random) -> str:
    out = ["ruleset bench\n"]
    for i in range(n):
        clauses = [_clause(rng) for _ in range(rng.choice([1, 2, 2, 3, 3, 4]))]
        joiner = " or " if rng.random() < 0.1 else " and "
        action = rng.choice(["review", "review", "decline", "allow"])
        shadow = " shadow" if rng.random() < 0.1 else ""
        out.append(f"rule r{i}{shadow}:\n    reason: R{i}\n    {action} if {joiner.join(clauses)}\n")
    return "\n".join(out)


def make_orders(n: int, rng: random.Random) -> list[dict[str, object]]:
    orders: list[dict[str, object]] = []
    for k in range(n):
        o: dict[str, object] = {f"num_{i}": rng.expovariate(1 / 20) for i in range(30)}
        o.update({f"flag_{i}": rng.random() < 0.1 for i in range(12)})
        for c in ("shipping_country", "billing_country", "ip_country", "card_country"):
            o[c] = rng.choice(COUNTRIES[:3]) if rng.random() < 0.8 else rng.choice(COUNTRIES)
        o["email"] = f"user{k}@{'trash3.example' if rng.random() < 0.02 else 'example.com'}"
        o["ip_address"] = f"{rng.choice(['10', '198', '203'])}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(256)}"
        o["customer_id"] = f"c-{rng.randrange(200_000)}"
        o["device_id"] = f"d-{rng.randrange(50_000)}"
        o["card_bin"] = str(rng.randrange(400000, 600000))
        o["amount_base"] = rng.lognormvariate(4, 1)
        o["account_age_days"] = rng.expovariate(1 / 200)
        o["model_score"] = rng.random() * 100
        o["text_labels"] = rng.sample(LABELS, rng.choice([0, 0, 0, 1]))
        for name in rng.sample(list(o), 5):  # some attributes are always missing
            del o[name]
        orders.append(o)
    return orders


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=4000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    rng = random.Random(args.seed)
    schema = make_schema()
    lists = make_lists(rng)
    orders = make_orders(args.orders, rng)
    print(f"orders: {len(orders)} generated attribute dicts (seed {args.seed}), one core")
    # CPU time of this process (the machine may be shared: wall time would count the
    # time spent waiting for a core), with wall time beside it.
    print(f"{'rules':>6} {'compile ms':>11} {'CPU µs/order (median of 5)':>27} {'min':>7} {'wall µs/order':>14} {'orders with a hit':>18}")
    for n in (10, 100, 500):
        text = make_rules(n, random.Random(args.seed + n))
        t0 = time.process_time()
        ruleset = compile_ruleset(text, schema=schema, lists=lists)
        compile_ms = (time.process_time() - t0) * 1000
        evaluate = ruleset.evaluate
        hit = sum(1 for o in orders if evaluate(o).hits)
        cpu, wall = [], []
        for _ in range(5):
            w0, c0 = time.perf_counter(), time.process_time()
            for o in orders:
                evaluate(o)
            cpu.append((time.process_time() - c0) / len(orders) * 1e6)
            wall.append((time.perf_counter() - w0) / len(orders) * 1e6)
        print(
            f"{n:>6} {compile_ms:>11.1f} {statistics.median(cpu):>27.1f} {min(cpu):>7.1f} "
            f"{statistics.median(wall):>14.1f} {hit / len(orders):>17.1%}"
        )
    print("target: 500 rules < 200 µs/order")


if __name__ == "__main__":
    main()
