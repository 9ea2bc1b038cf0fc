"""``POST /v1/score`` latency at a fixed concurrency, server pinned to one core.

Starts ``riskwire serve`` (uvicorn, one worker, CPU affinity to core 0 where the OS
allows), warms up, then sends generated orders from ``--concurrency`` client threads on
the other core. Prints p50/p99/max and throughput, plus the engine's own in-process
``decide`` p50/p99 for the same orders. Target: p99 under 10 ms without a remote LLM.

    .venv/bin/python bench/api_latency.py [--requests 3000] [--concurrency 4]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from _common import ROOT, bench_settings, generated_orders, pct, train_registry


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=3000)
    ap.add_argument("--concurrency", type=int, default=4)
    args = ap.parse_args()
    from detector.broker import free_port
    from detector.wiring import build_services

    with tempfile.TemporaryDirectory() as tmp:
        settings = bench_settings(Path(tmp))
        train_registry(settings)
        orders = generated_orders(args.requests + 500, seed=11)
        bodies = [o.model_dump_json(exclude_none=True).encode() for o in orders]

        engine = build_services(settings).engine
        times = []
        for o in orders[: args.requests]:
            t0 = time.perf_counter()
            engine.decide(o)
            times.append((time.perf_counter() - t0) * 1000)
        print(f"engine.decide in-process: p50 {pct(times, 0.5):.2f} ms  p99 {pct(times, 0.99):.2f} ms  (n={len(times)})")

        port = free_port()
        env = {**os.environ, "RISKWIRE_MODELS__REGISTRY_DIR": str(settings.models.registry_dir),
               "RISKWIRE_DATA_DIR": tmp, "RISKWIRE_STORE__DATABASE_URL": settings.store.database_url}

        def pin() -> None:
            if hasattr(os, "sched_setaffinity") and os.cpu_count() and os.cpu_count() > 1:
                os.sched_setaffinity(0, {0})

        server = subprocess.Popen(
            [sys.executable, "-m", "detector.cli", "serve", "--port", str(port), "--log-level", "WARNING"],
            env=env, cwd=str(ROOT), preexec_fn=pin, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
            os.sched_setaffinity(0, {1})
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                try:
                    if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.2)
            client = httpx.Client(base_url=base, timeout=10, limits=httpx.Limits(max_connections=args.concurrency))
            headers = {"content-type": "application/json"}
            for body in bodies[-500:]:
                client.post("/v1/score", content=body, headers=headers)

            def one(body: bytes) -> float:
                t0 = time.perf_counter()
                r = client.post("/v1/score", content=body, headers=headers)
                r.raise_for_status()
                return (time.perf_counter() - t0) * 1000

            t0 = time.perf_counter()
            with ThreadPoolExecutor(args.concurrency) as pool:
                lat = list(pool.map(one, bodies[: args.requests]))
            wall = time.perf_counter() - t0
            print(f"POST /v1/score, concurrency {args.concurrency}, server on 1 core, generated orders:")
            print(f"  p50 {pct(lat, 0.5):.2f} ms  p99 {pct(lat, 0.99):.2f} ms  max {max(lat):.2f} ms  "
                  f"throughput {len(lat) / wall:.0f} req/s  (target p99 < 10 ms)")
        finally:
            server.terminate()
            server.wait(timeout=10)


if __name__ == "__main__":
    main()
