"""Kafka: serde, the consumer worker, decision producer, dead letters, topic admin,
and the traffic generator / replayer."""

__all__: list[str] = []
