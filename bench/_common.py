"""Shared set-up for benchmarks: a trained model in a temp registry and generated orders."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from contracts import Order  # noqa: E402
from detector.settings import ModelSettings, Settings, StoreSettings  # noqa: E402

__all__ = ["ROOT", "bench_settings", "generated_orders", "machine_reference", "pct", "train_registry"]


def machine_reference() -> str:
    """How fast this core runs Python right now: these machines are shared, and the same
    code measures up to 2-3x apart between sessions; scale figures by this line."""
    import os
    import timeit

    ref = min(timeit.repeat("s = 0\nfor i in range(1_000_000): s += i", number=1, repeat=3)) * 1000
    return (f"machine reference: a 1M-iteration pure-Python loop takes {ref:.0f} ms "
            f"(~25-30 ms on an idle modern core; scale the figures below by it); load {os.getloadavg()[0]:.1f}")


def bench_settings(data_dir: Path) -> Settings:
    return Settings(
        data_dir=data_dir,
        models=ModelSettings(registry_dir=data_dir / "models"),
        store=StoreSettings(database_url=f"sqlite:///{data_dir / 'riskwire.db'}"),
    )


def train_registry(settings: Settings, *, n: int = 5000) -> None:
    from detector.wiring import build_featurizer, build_model
    from streams.generator import history

    featurizer = build_featurizer(settings)
    build_model(settings, schema=featurizer.schema, history=lambda: history(n, seed=3))


def generated_orders(n: int, *, seed: int = 7) -> list[Order]:
    from streams.generator import GeneratorConfig, TrafficGenerator

    gen = TrafficGenerator(GeneratorConfig(seed=seed))
    out = [ev.event for ev in gen.events(n) if isinstance(ev.event, Order)]
    return out[:n]


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]
