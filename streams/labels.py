"""Publishing Labels (analysts' verdicts) to the labels topic."""

from __future__ import annotations

import logging

from kafka import KafkaProducer
from kafka.errors import KafkaError

from contracts import Label, RiskwireError
from streams.serde import encode

__all__ = ["LabelPublisher", "PublishFailed"]

log = logging.getLogger(__name__)


class PublishFailed(RiskwireError):
    """The broker did not acknowledge a label."""


class LabelPublisher:
    """Sends one Label per call, keyed by order id, and waits for the broker's ack.

    A verdict is an analyst's work: the UI should know at once if it did not reach
    the topic, so the send is synchronous (verdicts are rare; latency is fine).
    """

    def __init__(self, *, bootstrap_servers: str, topic: str, timeout_s: float = 10.0) -> None:
        self.topic = topic
        self._timeout = timeout_s
        self._producer = KafkaProducer(
            bootstrap_servers=bootstrap_servers, acks="all", linger_ms=0, client_id="riskwire-labels"
        )

    def __call__(self, label: Label) -> None:
        try:
            self._producer.send(self.topic, key=label.order_id.encode(), value=encode(label)).get(
                timeout=self._timeout
            )
        except KafkaError as exc:
            raise PublishFailed(f"label for an order not published: {exc}") from exc

    def close(self) -> None:
        self._producer.close(timeout=5)
