"""Helpers for tests that run the real engine, worker and broker."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from detector.settings import KafkaSettings, ModelSettings, Settings, StateSettings, StoreSettings

__all__ = ["consume", "engine_settings", "produce", "start_worker", "unique_topics", "worker_env"]

ROOT = Path(__file__).resolve().parents[1]


def engine_settings(data_dir: Path, **sections: Any) -> Settings:
    """Settings for a test engine whose files all live under ``data_dir``."""
    base = Settings(
        data_dir=data_dir,
        models=ModelSettings(registry_dir=data_dir / "models"),
        store=StoreSettings(database_url=f"sqlite:///{data_dir / 'riskwire.db'}"),
        state=StateSettings(),
    )
    return base.model_copy(update=sections)


def unique_topics(**over: Any) -> KafkaSettings:
    tag = uuid.uuid4().hex[:8]
    return KafkaSettings(
        orders_topic=f"orders-{tag}", returns_topic=f"returns-{tag}", labels_topic=f"labels-{tag}",
        decisions_topic=f"risk-decisions-{tag}", dlq_topic=f"orders-dlq-{tag}", group_id=f"riskwire-{tag}",
        **over,
    )


def worker_env(settings: Settings, bootstrap: str, **extra: str) -> dict[str, str]:
    k = settings.kafka
    env = {
        **os.environ,
        "RISKWIRE_DATA_DIR": str(settings.data_dir),
        "RISKWIRE_MODELS__REGISTRY_DIR": str(settings.models.registry_dir),
        "RISKWIRE_STORE__DATABASE_URL": settings.store.database_url,
        "RISKWIRE_KAFKA__BOOTSTRAP_SERVERS": bootstrap,
        "RISKWIRE_KAFKA__ORDERS_TOPIC": k.orders_topic,
        "RISKWIRE_KAFKA__RETURNS_TOPIC": k.returns_topic,
        "RISKWIRE_KAFKA__LABELS_TOPIC": k.labels_topic,
        "RISKWIRE_KAFKA__DECISIONS_TOPIC": k.decisions_topic,
        "RISKWIRE_KAFKA__DLQ_TOPIC": k.dlq_topic,
        "RISKWIRE_KAFKA__GROUP_ID": k.group_id,
        "RISKWIRE_KAFKA__MAX_POLL_RECORDS": str(k.max_poll_records),
        "RISKWIRE_STATE__BACKEND": settings.state.backend,
        "RISKWIRE_STATE__REDIS_URL": settings.state.redis_url,
        "RISKWIRE_STATE__KEY_PREFIX": settings.state.key_prefix,
    }
    env.update(extra)
    return env


def start_worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    fh = log.open("ab")
    return subprocess.Popen(
        [sys.executable, "-m", "detector.cli", "worker", "--log-level", "INFO"],
        env=env, stdout=fh, stderr=subprocess.STDOUT, cwd=str(ROOT),
    )


def produce(bootstrap: str, records: Iterable[tuple[str, bytes | None, bytes]]) -> int:
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=10)
    n = 0
    for topic, key, value in records:
        producer.send(topic, key=key, value=value)
        n += 1
    producer.flush(timeout=30)
    producer.close(timeout=5)
    return n


def consume(
    bootstrap: str,
    topics: list[str],
    *,
    until: Callable[[list[Any]], bool],
    timeout: float = 60.0,
    settle: float = 1.5,
) -> list[Any]:
    """Read ``topics`` from the beginning until ``until(records)`` holds, then ``settle`` s more."""
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(
        *topics, bootstrap_servers=bootstrap, group_id=f"reader-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest", enable_auto_commit=False,
        session_timeout_ms=3000, heartbeat_interval_ms=500,
    )
    records: list[Any] = []
    deadline = time.monotonic() + timeout
    done_at: float | None = None
    try:
        while time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=200).values():
                records.extend(batch)
            if done_at is None and until(records):
                done_at = time.monotonic()
            if done_at is not None and time.monotonic() - done_at >= settle:
                break
    finally:
        consumer.close()
    return records
