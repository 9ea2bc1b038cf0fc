"""Dead letters: the original bytes untouched, the error and the origin as headers.

Headers follow the Kafka Connect convention of carrying context beside the original
record, so a consumer of ``orders-dlq`` can fix and re-publish the value as is.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from contracts import DeadLetter

__all__ = ["DeadLetterRecord", "from_headers", "make_dead_letter"]

H_ERROR = "riskwire.error"
H_KIND = "riskwire.error.kind"
H_TOPIC = "riskwire.source.topic"
H_PARTITION = "riskwire.source.partition"
H_OFFSET = "riskwire.source.offset"
H_FAILED_AT = "riskwire.failed_at"
MAX_ERROR_CHARS = 2000


@dataclass(frozen=True, slots=True)
class DeadLetterRecord:
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]
    kind: str


def make_dead_letter(
    *, key: bytes | None, value: bytes | None, error: str, kind: str, topic: str, partition: int, offset: int
) -> DeadLetterRecord:
    headers = [
        (H_ERROR, error[:MAX_ERROR_CHARS].encode()),
        (H_KIND, kind.encode()),
        (H_TOPIC, topic.encode()),
        (H_PARTITION, str(partition).encode()),
        (H_OFFSET, str(offset).encode()),
        (H_FAILED_AT, datetime.now(UTC).isoformat().encode()),
    ]
    return DeadLetterRecord(key=key, value=value, headers=headers, kind=kind)


def from_headers(key: bytes | None, value: bytes | None, headers: list[tuple[str, bytes]]) -> DeadLetter:
    h = {k: v.decode() for k, v in headers}
    return DeadLetter(
        error=h.get(H_ERROR, ""),
        source_topic=h.get(H_TOPIC, ""),
        partition=int(h.get(H_PARTITION, "-1")),
        offset=int(h.get(H_OFFSET, "-1")),
        key=key,
        value=value,
    )
