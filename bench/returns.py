"""Return decisions on generated traffic: throughput and how the return-script ring is caught.

Orders and returns come from the lead's generator (``TrafficGenerator(GeneratorConfig(seed=7))``);
orders go through the order featuriser (so the refund share of spend has the spend),
returns through :class:`detector.returns.ReturnsEngine` with the real text stage (tiers
1-2, recurring phrasing; no LLM) and an empty ruleset, in event-time order, in
micro-batches. Prints returns/s on this machine and the action mix per scenario
(``return_script`` = the ring's scripted reasons, ``normal`` = honest returns).

    .venv/bin/python bench/returns.py [--orders 20000] [--batch 200]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

# Run as a script, this folder would come first on sys.path and ``bench/features.py``
# would shadow the ``features`` package: look packages up from the project root.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--orders", type=int, default=20000)
    ap.add_argument("--batch", type=int, default=200)
    args = ap.parse_args()

    from prometheus_client import CollectorRegistry

    from contracts import Order, ReturnRequest
    from detector.engine import ENGINE_ATTRIBUTES
    from detector.metrics import Metrics
    from detector.policy import Policy
    from detector.returns import ReturnsEngine, return_attribute_schema, returns_policy
    from detector.text_stage import TextClassifier, TextStage
    from features import OrderFeaturizer, build_schema
    from features.returns import ReturnFeaturizer
    from features.state import MemoryState
    from rules import ListStore, RulesetHolder
    from streams.generator import GeneratorConfig, TrafficGenerator

    state = MemoryState()
    orders = OrderFeaturizer(state=state)
    stage = TextStage(TextClassifier.default(state=state))
    schema = build_schema().merged(return_attribute_schema(stage.schema)).merged(ENGINE_ATTRIBUTES)
    engine = ReturnsEngine(
        featurizer=ReturnFeaturizer(state=state),
        rules=RulesetHolder(schema=schema, text="", lists=ListStore()),
        policy=returns_policy(Policy(schema=schema)),
        metrics=Metrics.create(CollectorRegistry()),
        text=stage,
    )
    mix: Counter[tuple[str, str]] = Counter()
    n_returns = 0
    spent = 0.0
    pending_orders: list[Order] = []
    pending_returns: list[ReturnRequest] = []

    def flush() -> None:
        nonlocal n_returns, spent
        if pending_orders:
            orders.featurize(pending_orders)
            pending_orders.clear()
        if pending_returns:
            t0 = time.perf_counter()
            decisions = engine.decide_batch(pending_returns)
            spent += time.perf_counter() - t0
            for r, d in zip(pending_returns, decisions, strict=True):
                mix[(str(r.metadata.get("scenario", "normal")), d.action)] += 1
            n_returns += len(pending_returns)
            pending_returns.clear()

    for ev in TrafficGenerator(GeneratorConfig(seed=7)).events(args.orders):
        if isinstance(ev.event, Order):
            if pending_returns:
                flush()
            pending_orders.append(ev.event)
        elif isinstance(ev.event, ReturnRequest):
            if pending_orders:
                flush()
            pending_returns.append(ev.event)
        if len(pending_orders) + len(pending_returns) >= args.batch:
            flush()
    flush()
    print(f"returns decided: {n_returns} (generated, seed 7, {args.orders} orders)")
    print(f"returns engine time: {spent:.1f}s = {n_returns / max(spent, 1e-9):.0f} returns/s (text stage included)")
    for scenario in sorted({s for s, _ in mix}):
        total = sum(v for (s, _), v in mix.items() if s == scenario)
        parts = ", ".join(f"{a} {mix[(scenario, a)] / total:.1%}" for a in ("approve", "review", "decline"))
        print(f"  {scenario:>14}: {total:5d} returns -> {parts}")


if __name__ == "__main__":
    main()
