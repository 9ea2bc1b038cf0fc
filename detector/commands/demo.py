"""``riskwire demo``: broker, worker, API and generator on embedded defaults, with a live summary.

Everything runs on loopback: the Tansu broker, a worker and the API as child processes,
a generator thread sending seeded traffic (with a few malformed records), and a checkout
prober calling ``POST /v1/score``. Ctrl-C (or ``--duration``) stops every process the demo
started.
"""

from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import typer

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)


@dataclass
class _Stats:
    started: float = field(default_factory=time.monotonic)
    decisions: int = 0
    actions: collections.Counter[str] = field(default_factory=collections.Counter)
    reasons: collections.Counter[str] = field(default_factory=collections.Counter)
    dead_letters: int = 0
    engine_ms: collections.deque[float] = field(default_factory=lambda: collections.deque(maxlen=5000))
    api_ms: collections.deque[float] = field(default_factory=lambda: collections.deque(maxlen=2000))
    api_errors: int = 0
    recent: collections.deque[tuple[float, int]] = field(default_factory=lambda: collections.deque(maxlen=20))
    lock: threading.RLock = field(default_factory=threading.RLock)

    def rate(self) -> float:
        with self.lock:
            if len(self.recent) < 2:
                return 0.0
            (t0, n0), (t1, n1) = self.recent[0], self.recent[-1]
        return (n1 - n0) / (t1 - t0) if t1 > t0 else 0.0


def _pct(values: collections.deque[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def demo(
    duration: Annotated[float, typer.Option(help="Seconds to run (0: until Ctrl-C).")] = 0.0,
    rate: Annotated[float, typer.Option(help="Generated orders per second.")] = 200.0,
    api_port: Annotated[int, typer.Option(help="API port (0: a free one).")] = 8080,
    seed: Annotated[int, typer.Option(help="Traffic seed.")] = 7,
) -> None:
    """Run the whole engine on embedded defaults with a live terminal summary."""
    from rich.console import Console

    from detector.broker import EmbeddedBroker, free_port
    from detector.cli import setup_logging
    from detector.settings import Settings
    from detector.wiring import build_featurizer, build_model
    from streams.admin import ensure_topics
    from streams.generator import GeneratorConfig, TrafficGenerator, history
    from streams.traffic import send_events

    setup_logging("WARNING")
    console = Console(stderr=False)
    settings = Settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    console.print("[bold]riskwire demo[/bold]: preparing the model (first run fits one on generated history)...")
    featurizer = build_featurizer(settings)
    model = build_model(settings, schema=featurizer.schema,
                        history=lambda: history(settings.models.bootstrap_orders))
    console.print(f"model {model.version} ({model.kind})")

    api_port = api_port or free_port()
    worker_metrics = free_port()
    stop = threading.Event()
    stats = _Stats()
    children: dict[str, subprocess.Popen[bytes]] = {}  # by name; each logs to <name>.log
    log_dir = settings.data_dir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)

    with EmbeddedBroker(log_path=log_dir / "broker.log") as broker:
        servers = broker.bootstrap_servers
        k = settings.kafka
        ensure_topics(servers, [k.orders_topic, k.returns_topic, k.labels_topic, k.decisions_topic, k.dlq_topic],
                      partitions=k.topic_partitions)
        env = {**os.environ, "RISKWIRE_KAFKA__BOOTSTRAP_SERVERS": servers}
        cli = [sys.executable, "-m", "detector.cli"]
        try:
            for name, args in (("worker", ["worker", "--metrics-port", str(worker_metrics)]),
                               ("api", ["serve", "--port", str(api_port)])):
                children[name] = _spawn([*cli, *args, "--log-level", "WARNING"], env, log_dir / f"{name}.log")
            base = f"http://127.0.0.1:{api_port}"
            if not _wait_http(f"{base}/healthz", list(children.values()), timeout=120):
                # Name what failed: a worker that died at start-up used to be reported as the API.
                if not _report_exited(console, children, log_dir):
                    console.print(f"[red]the API did not answer {base}/healthz within 120 s; "
                                  f"see {log_dir / 'api.log'}[/red]")
                raise typer.Exit(1)
            console.print(f"API docs:        {base}/docs")
            console.print(f"API metrics:     {base}/metrics")
            console.print(f"worker metrics:  http://127.0.0.1:{worker_metrics}/metrics")
            console.print(f"broker:          {servers}   logs: {log_dir}")
            console.print("Ctrl-C stops everything.\n")

            gen = TrafficGenerator(GeneratorConfig(seed=seed, days=2, mean_gap_s=20))
            threads = [
                threading.Thread(
                    target=send_events, name="generator", daemon=True,
                    kwargs={"events": gen.events(10_000_000), "bootstrap_servers": servers, "topics": k,
                            "rate": rate, "malformed_share": 0.005, "seed": seed, "stop": stop},
                ),
                threading.Thread(target=_monitor, args=(servers, k, stats, stop), name="monitor", daemon=True),
                threading.Thread(target=_prober, args=(base, stats, stop, seed), name="prober", daemon=True),
            ]
            for t in threads:
                t.start()
            _summary_loop(console, stats, stop, duration, children, log_dir)
        except KeyboardInterrupt:
            pass
        finally:
            stop.set()
            for p in children.values():
                if p.poll() is None:
                    p.send_signal(signal.SIGTERM)
            for p in children.values():
                try:
                    p.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    p.kill()
    console.print(_final_line(stats), soft_wrap=True)


def _spawn(cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    fh = log.open("ab")
    return subprocess.Popen(cmd, env=env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)


def _wait_http(url: str, procs: list[subprocess.Popen[bytes]], *, timeout: float) -> bool:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(p.poll() is not None for p in procs):
            return False
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    return False


def _monitor(servers: str, topics: Any, stats: _Stats, stop: threading.Event) -> None:
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(
        topics.decisions_topic, topics.dlq_topic, bootstrap_servers=servers, group_id="riskwire-demo-monitor",
        auto_offset_reset="earliest", session_timeout_ms=3000, heartbeat_interval_ms=500,
    )
    try:
        while not stop.is_set():
            for tp, records in consumer.poll(timeout_ms=300).items():
                for r in records:
                    if tp.topic == topics.dlq_topic:
                        with stats.lock:
                            stats.dead_letters += 1
                        continue
                    d = json.loads(r.value)
                    with stats.lock:
                        stats.decisions += 1
                        stats.actions[d["action"]] += 1
                        stats.engine_ms.append(float(d.get("latency_ms", 0.0)))
                        for reason in d.get("reasons", [])[:3]:
                            stats.reasons[reason["code"]] += 1
            with stats.lock:
                stats.recent.append((time.monotonic(), stats.decisions))
    finally:
        consumer.close()


def _prober(base: str, stats: _Stats, stop: threading.Event, seed: int) -> None:
    """A checkout client: a few synchronous scores per second."""
    import httpx

    from streams.generator import GeneratorConfig, TrafficGenerator

    gen = TrafficGenerator(GeneratorConfig(seed=seed + 1000, days=1))
    with httpx.Client(base_url=base, timeout=5) as client:
        for ev in gen.events(10_000_000):
            if stop.is_set():
                return
            if ev.topic != "orders":
                continue
            body = ev.event.model_dump_json(exclude_none=True)
            t0 = time.perf_counter()
            try:
                resp = client.post("/v1/score", content=body, headers={"content-type": "application/json"})
                ok = resp.status_code == 200
            except httpx.HTTPError:
                ok = False
            with stats.lock:
                if ok:
                    stats.api_ms.append((time.perf_counter() - t0) * 1000)
                else:
                    stats.api_errors += 1
            stop.wait(0.2)


def _report_exited(console: Any, children: dict[str, subprocess.Popen[bytes]], log_dir: Path) -> bool:
    """Print each child process that exited, with its code and log; whether any had."""
    exited = {name: p.returncode for name, p in children.items() if p.poll() is not None}
    for name, code in exited.items():
        console.print(f"[red]the {name} exited with code {code}; see {log_dir / f'{name}.log'}[/red]")
    return bool(exited)


def _summary_loop(console: Any, stats: _Stats, stop: threading.Event, duration: float,
                  children: dict[str, subprocess.Popen[bytes]], log_dir: Path) -> None:
    from rich.live import Live

    procs = list(children.values())
    deadline = time.monotonic() + duration if duration > 0 else float("inf")
    if console.is_terminal:
        with Live(_table(stats), console=console, refresh_per_second=2) as live:
            while time.monotonic() < deadline and not stop.is_set() and _alive(procs):
                time.sleep(0.5)
                live.update(_table(stats))
    else:
        last = 0.0
        while time.monotonic() < deadline and not stop.is_set() and _alive(procs):
            time.sleep(0.5)
            if time.monotonic() - last >= 5:
                console.print(_final_line(stats), soft_wrap=True)
                last = time.monotonic()
    _report_exited(console, children, log_dir)


def _alive(procs: list[subprocess.Popen[bytes]]) -> bool:
    return all(p.poll() is None for p in procs)


def _table(stats: _Stats) -> Any:
    from rich.table import Table

    t = Table(title="riskwire live", show_header=False, min_width=60)
    with stats.lock:
        actions = dict(stats.actions)
        top = stats.reasons.most_common(5)
        dead = stats.dead_letters
        decided = stats.decisions
        api_n, api_err = len(stats.api_ms), stats.api_errors
    t.add_row("orders decided/s (stream)", f"{stats.rate():.0f}")
    t.add_row("decisions", f"{decided}  " + "  ".join(f"{a}={actions.get(a, 0)}" for a in ("approve", "review", "decline")))
    t.add_row("engine latency p50/p99", f"{_pct(stats.engine_ms, 0.5):.2f} / {_pct(stats.engine_ms, 0.99):.2f} ms per order")
    t.add_row("API /v1/score p50/p99", f"{_pct(stats.api_ms, 0.5):.1f} / {_pct(stats.api_ms, 0.99):.1f} ms ({api_n} calls, {api_err} errors)")
    t.add_row("dead letters", str(dead))
    t.add_row("top reasons", ", ".join(f"{c} ({n})" for c, n in top) or "-")
    return t


def _final_line(stats: _Stats) -> str:
    with stats.lock:
        actions = dict(stats.actions)
        return (
            f"decided={stats.decisions} rate={stats.rate():.0f}/s "
            + " ".join(f"{a}={actions.get(a, 0)}" for a in ("approve", "review", "decline"))
            + f" engine_p50={_pct(stats.engine_ms, 0.5):.2f}ms engine_p99={_pct(stats.engine_ms, 0.99):.2f}ms"
            + f" api_p50={_pct(stats.api_ms, 0.5):.1f}ms api_p99={_pct(stats.api_ms, 0.99):.1f}ms"
            + f" dead_letters={stats.dead_letters}"
        )
