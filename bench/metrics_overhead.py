"""Cost of instrumentation on the hot path: the engine with real metrics vs no-op metrics.

Three engines share one trained model and ruleset and differ only in their ``Metrics``:
``noop`` (every metric a no-op, no stage timers), ``metrics`` (the real ones, in a fresh
registry) and ``metrics+drift`` (plus the drift monitor fed by every batch). Each has its
own featuriser, and all three see the same generated orders in the same order: each order
(each batch on the stream path) goes through the three engines back to back, so machine
noise hits every arm alike, and the per-order CPU-time difference is the instrumentation.
Printed: checkout ``decide`` CPU p50/mean and wall p50/p99 per arm, stream ``decide_batch``
CPU per order, the same-run paired differences and ratios, and the bare CPU cost of
``observe_decisions``, ``stage_timer`` and the drift monitor.

    .venv/bin/python bench/metrics_overhead.py [--orders 1500] [--batch 200]

Data: generated orders (streams.generator), model fitted on generated history.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _common import bench_settings, generated_orders, pct, train_registry

__all__ = ["main"]


class _Noop:
    """Stands in for any metric: labels() returns itself, updates do nothing."""

    def labels(self, *_a: Any, **_k: Any) -> _Noop:
        return self

    def inc(self, *_a: Any) -> None: ...

    def observe(self, *_a: Any) -> None: ...

    def set(self, *_a: Any) -> None: ...

    def info(self, *_a: Any) -> None: ...


def noop_metrics() -> Any:
    from prometheus_client import CollectorRegistry

    from detector.metrics import Metrics

    @dataclass(frozen=True)
    class NoopMetrics(Metrics):
        def stage_timer(self, stage: str) -> AbstractContextManager[None]:
            return nullcontext()

        def observe_decisions(self, decisions: Any, *, path: str, seconds: float, rows: Any = None) -> None:
            return None

    n = _Noop()
    names = [f for f in Metrics.__dataclass_fields__ if f not in ("registry", "multiprocess", "_observers")]
    return NoopMetrics(registry=CollectorRegistry(), **dict.fromkeys(names, n))  # type: ignore[arg-type]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--orders", type=int, default=1500, help="orders per path, each through every arm")
    ap.add_argument("--batch", type=int, default=200)
    args = ap.parse_args()

    from prometheus_client import CollectorRegistry

    from detector.drift import attach_drift_monitor, reference_from_model
    from detector.metrics import Metrics
    from detector.wiring import build_engine, build_featurizer, build_services

    with tempfile.TemporaryDirectory() as tmp:
        settings = bench_settings(Path(tmp))
        train_registry(settings, n=3000)
        base = build_services(settings, metrics=Metrics.create(CollectorRegistry()))
        model, rules, text = base.engine.model, base.rules, base.text

        real = Metrics.create(CollectorRegistry())
        drifted = Metrics.create(CollectorRegistry())
        attach_drift_monitor(drifted, reference=reference_from_model(model))
        arms = {"noop": noop_metrics(), "metrics": real, "metrics+drift": drifted}
        engines = {
            name: build_engine(settings, metrics=m, featurizer=build_featurizer(settings), model=model,
                               rules=rules, text=text)
            for name, m in arms.items()
        }
        total = args.orders
        sync_orders = generated_orders(total, seed=21)
        stream_orders = generated_orders(total, seed=22)
        # Warm-up (first calls pay for caches and lazy imports), on orders no arm sees again.
        for e in engines.values():
            for o in generated_orders(50, seed=99):
                e.decide(o)

        names = list(engines)
        # Paired design: every order goes through all three engines back to back, in a
        # rotating order, timed by this thread's CPU clock (on a shared machine wall time
        # also counts other processes' turns). Noise then hits the arms of a pair alike and
        # the per-order difference isolates the instrumentation.
        sync_cpu: dict[str, list[float]] = {k: [] for k in names}
        sync_wall: dict[str, list[float]] = {k: [] for k in names}
        for i, o in enumerate(sync_orders):
            for k in range(len(names)):
                name = names[(i + k) % len(names)]
                c0, t0 = time.thread_time(), time.perf_counter()
                engines[name].decide(o, path="sync")
                sync_wall[name].append((time.perf_counter() - t0) * 1e6)
                sync_cpu[name].append((time.thread_time() - c0) * 1e6)
        stream_cpu: dict[str, list[float]] = {k: [] for k in names}
        for j, i in enumerate(range(0, len(stream_orders), args.batch)):
            batch = stream_orders[i:i + args.batch]
            for k in range(len(names)):
                name = names[(j + k) % len(names)]
                c0 = time.thread_time()
                engines[name].decide_batch(batch, path="stream")
                stream_cpu[name].append((time.thread_time() - c0) * 1e6 / len(batch))

        print(f"engine with and without instrumentation: {total} checkout orders and {total} stream orders "
              f"(batches of {args.batch}) through each arm, paired; generated data")
        print(f"{'arm':<15}{'sync cpu p50':>13}{'mean':>9}{'wall p50':>10}{'wall p99':>10}{'stream cpu/order':>18}")
        for name in names:
            c, w = sync_cpu[name], sync_wall[name]
            print(f"{name:<15}{pct(c, 0.5):>11.0f}us{statistics.fmean(c):>7.0f}us{pct(w, 0.5):>8.0f}us"
                  f"{pct(w, 0.99):>8.0f}us{statistics.fmean(stream_cpu[name]):>16.1f}us")
        for name in ("metrics", "metrics+drift"):
            diff = [a - b for a, b in zip(sync_cpu[name], sync_cpu["noop"], strict=True)]
            sdiff = [a - b for a, b in zip(stream_cpu[name], stream_cpu["noop"], strict=True)]
            print(f"{name} vs noop (same run): checkout median paired diff {statistics.median(diff):+.0f} us/order "
                  f"(x{statistics.median(sync_cpu[name]) / statistics.median(sync_cpu['noop']):.3f} of median cpu); "
                  f"stream median paired diff {statistics.median(sdiff):+.1f} us/order "
                  f"(x{statistics.fmean(stream_cpu[name]) / statistics.fmean(stream_cpu['noop']):.3f})")

        # The instrumentation alone, without the engine around it.
        m = Metrics.create(CollectorRegistry())
        decisions = engines["noop"].decide_batch(generated_orders(200, seed=5), path="stream")
        n = 50
        t0 = time.thread_time()
        for _ in range(n):
            m.observe_decisions(decisions, path="stream", seconds=0.01)
        per_decision = (time.thread_time() - t0) * 1e6 / (n * len(decisions))
        t0 = time.thread_time()
        for _ in range(n):
            for d in decisions:
                m.observe_decisions([d], path="sync", seconds=0.001)
        per_single = (time.thread_time() - t0) * 1e6 / (n * len(decisions))
        t0 = time.thread_time()
        for _ in range(20_000):
            with m.stage_timer("models"):
                pass
        per_timer = (time.thread_time() - t0) * 1e6 / 20_000
        mon = attach_drift_monitor(m, reference=reference_from_model(model))
        t0 = time.thread_time()
        for _ in range(n):
            mon(decisions, None)
        per_drift = (time.thread_time() - t0) * 1e6 / (n * len(decisions))
        print(f"bare cost (cpu): observe_decisions {per_decision:.1f} us/decision in batches of {len(decisions)}, "
              f"{per_single:.1f} us for a batch of one; stage_timer {per_timer:.2f} us/call; "
              f"drift monitor {per_drift:.2f} us/decision")


if __name__ == "__main__":
    main()
