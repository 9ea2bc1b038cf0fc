"""Scoring cost of the risk models: single order p50/p99, batch throughput, registry load.

Fits an unsupervised and a supervised bundle on generated data shaped like riskwire's
feature rows (``--features`` columns, some missing values), saves both to a temporary
registry, then measures with the loaded bundles, each call doing everything the engine
asks of the model (ensemble, LightGBM, calibration, top-5 explanation):

- one order per call (the sync path), ``--single`` calls after a warm-up, as wall time
  and as the thread's own CPU time (on a shared, busy machine wall-clock p99 mostly
  measures preemption by other processes);
- batches of ``--batch`` rows (the stream path), rows/s;
- ``ModelRegistry.load_current()`` (verify checksums + rebuild), mean of 5.

The process is pinned to one core when the OS allows it.

    .venv/bin/python bench/models.py [--features 60] [--train-rows 50000]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import contextlib

from models import ModelRegistry, fit_bundle

__all__ = ["main"]


def _data(n: int, d: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = np.c_[
        rng.lognormal(size=(n, d // 3)),  # amounts, counts
        rng.normal(size=(n, d // 3)),
        rng.integers(0, 2, size=(n, d - 2 * (d // 3))).astype(float),  # flags
    ]
    logit = 1.5 * np.log(X[:, 0]) + 2.0 * X[:, d // 3] + 1.5 * X[:, -1] - 6.0
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(float)
    X[rng.random(X.shape) < 0.03] = np.nan
    return X, y


def _percentiles(samples: list[float]) -> tuple[float, float, float]:
    a = np.asarray(samples) * 1e3
    return float(np.percentile(a, 50)), float(np.percentile(a, 99)), float(a.max())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--features", type=int, default=60)
    ap.add_argument("--train-rows", type=int, default=50_000)
    ap.add_argument("--single", type=int, default=3000)
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--batches", type=int, default=20)
    args = ap.parse_args(argv)
    if hasattr(os, "sched_setaffinity"):
        with contextlib.suppress(OSError):
            os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})

    d = args.features
    X, y = _data(args.train_rows, d, 0)
    names = [f"feature_{i:02d}" for i in range(d)]
    times = np.arange(len(X))
    t0 = time.perf_counter()
    unsup = fit_bundle(X, names, random_state=0)
    fit_unsup = time.perf_counter() - t0
    t0 = time.perf_counter()
    sup = fit_bundle(X, names, y=y, times=times, random_state=0, min_positives=100)
    fit_sup = time.perf_counter() - t0
    print(f"data: generated, {args.train_rows} training rows x {d} features, "
          f"{int(y.sum())} positives, 3% missing values")
    print(f"fit: unsupervised {fit_unsup:.2f} s, supervised {fit_sup:.2f} s "
          f"({sup.metadata['supervised']['best_iteration']:.0f} trees)")

    with tempfile.TemporaryDirectory() as tmp:
        reg = ModelRegistry(tmp)
        v_unsup = reg.save(unsup)
        v_sup = reg.save(sup)
        sizes = {v: sum(p.stat().st_size for p in (Path(tmp) / "versions" / v).iterdir())
                 for v in (v_unsup, v_sup)}
        loaded = {}
        for v in (v_unsup, v_sup):
            reg.promote(v)
            samples = []
            for _ in range(5):
                t0 = time.perf_counter()
                loaded[v] = reg.load_current()
                samples.append(time.perf_counter() - t0)
            print(f"registry load {loaded[v].kind:<12}: {np.mean(samples) * 1e3:7.1f} ms "
                  f"(artifact {sizes[v] / 1e6:.1f} MB)")

    Xt, _ = _data(max(args.single, args.batch * args.batches), d, 1)
    for v in (v_unsup, v_sup):
        model = loaded[v]
        for i in range(200):
            model.score(Xt[i:i + 1], explain=5)
        samples, cpu = [], []
        for i in range(args.single):
            row = Xt[i:i + 1]
            c0 = time.thread_time()
            t0 = time.perf_counter()
            model.score(row, explain=5)
            samples.append(time.perf_counter() - t0)
            cpu.append(time.thread_time() - c0)
        p50, p99, worst = _percentiles(samples)
        c50, c99, _ = _percentiles(cpu)
        t0 = time.perf_counter()
        for b in range(args.batches):
            model.score(Xt[b * args.batch:(b + 1) * args.batch], explain=5)
        rate = args.batches * args.batch / (time.perf_counter() - t0)
        print(f"{model.kind:<12} single order: wall p50 {p50:.3f} ms  p99 {p99:.3f} ms  "
              f"max {worst:.2f} ms | cpu p50 {c50:.3f} ms  p99 {c99:.3f} ms"
              f"  | batch {args.batch}: {rate:,.0f} rows/s")
    print("wall includes time the core spent on other processes; cpu is this thread's own "
          "CPU time per call (what one dedicated core would see)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
