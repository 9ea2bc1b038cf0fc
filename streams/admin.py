"""Topic admin: create the topics riskwire uses when they are missing."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable

from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

__all__ = ["ensure_topics"]

log = logging.getLogger(__name__)


def ensure_topics(
    bootstrap_servers: str, names: Iterable[str], *, partitions: int = 4, replication: int = 1, timeout_s: float = 15.0
) -> list[str]:
    """Create each missing topic; return the names created. Idempotent."""
    wanted = sorted(set(names))
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            admin = KafkaAdminClient(bootstrap_servers=bootstrap_servers, client_id="riskwire-admin")
            break
        except KafkaError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    try:
        existing = set(admin.list_topics())
        missing = [n for n in wanted if n not in existing]
        created: list[str] = []
        for name in missing:
            try:
                admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=replication)])
                created.append(name)
            except TopicAlreadyExistsError:
                pass  # another worker of the group created it first
        if created:
            log.info("created topics %s", created)
        return created
    finally:
        admin.close()
