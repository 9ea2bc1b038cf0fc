"""Tier 3 on the demo traffic: the share of orders that reach the LLM, and the LLM cache hit rate.

Targets (issue #5): at most 10% of demo orders reach the LLM.

Orders come from the lead's generator (``TrafficGenerator(GeneratorConfig(seed=7))``) and
go through the real text stage (patterns, USE-m3 embeddings, the packaged head,
recurring phrasing) in micro-batches of 200, as the stream path sends them.

1. **Share** (always): an order *reaches the LLM* when at least one of its texts is
   picked for tier 3 (``needs_llm``: tiers 1-2 unsure or flagging). Measured with the
   real classifier and a recording reviewer that answers nothing, so no LLM runs.
2. **Cache hit rate and calls** (``--llm``): the same orders with the real
   ``LlmClassifier`` against the local llama.cpp server (SmolLM2), stream budget
   ``--budget`` seconds; prints hits, misses, calls, late verdicts and per-call time,
   first on a cold cache, then on the next ``--orders`` orders of the same stream
   (warm cache). This costs about 0.5-2 s of one core per distinct text (more on a
   busy machine).

    .venv/bin/python bench/text_llm.py [--orders 2000] [--llm] [--budget 2.0]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

# Run as a script, this folder would come first on sys.path and ``bench/features.py``
# would shadow the ``features`` package: look packages up from the project root.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

from contracts import Order  # noqa: E402


class _Recorder:
    """A tier-3 reviewer that records what it is asked and answers nothing."""

    prompt_version = "bench-recorder"

    def __init__(self) -> None:
        self.batches: list[int] = []
        self.texts: list[str] = []

    def review(
        self, texts: Sequence[str], *, budget_s: float, fields: Sequence[str] | None = None
    ) -> list[Mapping[str, float] | None]:
        self.batches.append(len(texts))
        self.texts.extend(texts)
        return [None] * len(texts)


class _Counts:
    def __init__(self) -> None:
        self.requests: dict[str, int] = {}
        self.hits = 0
        self.misses = 0

    def request(self, outcome: str) -> None:
        self.requests[outcome] = self.requests.get(outcome, 0) + 1

    def cache(self, hit: bool) -> None:
        if hit:
            self.hits += 1
        else:
            self.misses += 1

    def breaker(self, state: str) -> None:
        pass


def _orders(n: int) -> list[Order]:
    from streams.generator import GeneratorConfig, TrafficGenerator

    out = [ev.event for ev in TrafficGenerator(GeneratorConfig(seed=7)).events(n) if isinstance(ev.event, Order)]
    return out[:n]


def _stage(llm: object) -> object:
    from detector.text_stage import TextClassifier, TextStage

    return TextStage(TextClassifier.default(), llm=llm)  # type: ignore[arg-type]


def share(orders: list[Order], batch: int) -> None:
    rec = _Recorder()
    stage = _stage(rec)
    reached = 0
    started = time.perf_counter()
    for i in range(0, len(orders), batch):
        chunk = orders[i : i + batch]
        before = len(rec.texts)
        results = stage.analyze(chunk, budget_s=1.0)  # type: ignore[attr-defined]
        asked = rec.texts[before:]
        # An order reached the LLM if one of its texts was asked: the stage marks it
        # degraded text_llm (no answer) because the recorder answers nothing.
        reached += sum(1 for r in results if any(d.signal == "text_llm" for d in r.degraded))
        del asked
    took = time.perf_counter() - started
    with_text = sum(1 for o in orders if (o.note or o.gift_message))
    print(f"orders: {len(orders)} (generated, seed 7); with a note or gift message: {with_text}")
    print(f"orders reaching the LLM: {reached} = {reached / len(orders):.1%} (target <= 10%)")
    print(f"texts asked of the LLM: {len(rec.texts)}, distinct: {len(set(rec.texts))}")
    print(f"text stage time: {took:.1f}s for {len(orders)} orders ({len(orders) / took:.0f} orders/s, batches of {batch})")


def with_llm(orders: list[Order], later: list[Order], batch: int, budget_s: float) -> None:
    import openai

    from detector.llm_server import DEFAULT_ALIAS, LocalLlmServer
    from features.text.pii import redact
    from models.text.llm import LlmClassifier

    server = LocalLlmServer()
    url = server.start()
    try:
        client = openai.OpenAI(base_url=url, api_key="sk-local", timeout=60.0, max_retries=0)
        counts = _Counts()
        # max_pending high: every distinct text gets its one call, so the hit rate counts
        # repeats, not refusals under load.
        llm = LlmClassifier(client, model=DEFAULT_ALIAS, timeout_s=60.0, max_concurrency=1, max_pending=10_000,
                            redact=redact, observer=counts)
        stage = _stage(llm)
        for label, traffic in (("first pass (cold cache)", orders), ("next orders (warm cache)", later)):
            counts.hits = counts.misses = 0
            counts.requests = {}
            late_orders = 0
            started = time.perf_counter()
            per_batch: list[float] = []
            for i in range(0, len(traffic), batch):
                t0 = time.perf_counter()
                results = stage.analyze(traffic[i : i + batch], budget_s=budget_s)  # type: ignore[attr-defined]
                per_batch.append(time.perf_counter() - t0)
                late_orders += sum(
                    1 for r in results if any(d.signal == "text_llm" and "no answer" in d.reason for d in r.degraded)
                )
            # Let the calls that missed their budget finish (they fill the cache: late verdicts).
            deadline = time.monotonic() + 900
            while llm.pending and time.monotonic() < deadline:
                time.sleep(0.2)
            took = time.perf_counter() - started
            lookups = counts.hits + counts.misses
            ok = counts.requests.get("ok", 0)
            print(f"-- {label}: {len(traffic)} orders")
            print(f"LLM cache lookups: {lookups}, hits: {counts.hits}, hit rate: {counts.hits / max(lookups, 1):.1%}")
            print(f"LLM calls by outcome: {counts.requests}")
            print(f"orders whose verdict missed the {budget_s:g}s budget (late re-decision candidates): {late_orders}")
            print(f"wall time: {took:.1f}s; wall per call: {took / max(ok, 1):.2f}s (one core, busy shared machine)")
            print(f"stage time per batch of {batch}: median {statistics.median(per_batch):.2f}s, max {max(per_batch):.2f}s")
        llm.close()
    finally:
        server.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--orders", type=int, default=2000)
    ap.add_argument("--batch", type=int, default=200)
    ap.add_argument("--llm", action="store_true", help="also run the real local LLM (cache hit rate)")
    ap.add_argument("--budget", type=float, default=2.0, help="stream-path LLM budget per batch, seconds")
    args = ap.parse_args()
    both = _orders(2 * args.orders)
    orders, later = both[: args.orders], both[args.orders :]
    share(orders, args.batch)
    if args.llm:
        with_llm(orders, later, args.batch, args.budget)


if __name__ == "__main__":
    main()
