"""One settings object, read once at the entry points and passed down as plain values.

Environment variables use the prefix ``RISKWIRE_`` and ``__`` between sections, e.g.
``RISKWIRE_KAFKA__BOOTSTRAP_SERVERS=broker:9092`` or ``RISKWIRE_LLM__BASE_URL=...``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = [
    "ApiSettings",
    "KafkaSettings",
    "LlmSettings",
    "ModelSettings",
    "PolicySettings",
    "RulesSettings",
    "Settings",
    "StateSettings",
    "StoreSettings",
]


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True)


class KafkaSettings(_Section):
    #: Empty means "use the embedded broker that the CLI starts".
    bootstrap_servers: str = ""
    orders_topic: str = "orders"
    returns_topic: str = "returns"
    labels_topic: str = "labels"
    decisions_topic: str = "risk-decisions"
    dlq_topic: str = "orders-dlq"
    group_id: str = "riskwire"
    max_poll_records: int = 500
    poll_timeout_ms: int = 200
    #: Short timeouts suit the embedded broker, which holds a group join for
    #: session_timeout/2 (stack.md); production raises them.
    session_timeout_ms: int = 3000
    heartbeat_interval_ms: int = 500
    auto_offset_reset: Literal["earliest", "latest"] = "earliest"
    topic_partitions: int = 4
    produce_timeout_s: float = 30.0


class ApiSettings(_Section):
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1
    max_body_bytes: int = 256 * 1024
    #: Checkout tokens: may call /v1/score and nothing else. Empty disables the check.
    score_tokens: tuple[SecretStr, ...] = ()
    session_secret: SecretStr = SecretStr("change-me-riskwire-dev-secret")


class StateSettings(_Section):
    backend: Literal["memory", "redis"] = "memory"
    redis_url: str = "redis://127.0.0.1:6379/0"
    key_prefix: str = "rw"
    #: Out-of-order events within this many seconds still count in their windows.
    allowed_lateness_s: int = 3600
    label_delay_s: int = 7 * 86400
    #: Bucket seconds per entity family, e.g. ``{"merchant": 60}`` for a shop whose few
    #: merchant ids see every order (default: 1 s, exact; 1 h for e-mail domain, SKU and
    #: country combination). Training (``riskwire featurize``) reads the same setting.
    resolutions: dict[str, int] = {}


class StoreSettings(_Section):
    database_url: str = "sqlite:///.riskwire/riskwire.db"


class LlmSettings(_Section):
    enabled: bool = False
    #: Empty with ``enabled`` means "start the local llama.cpp server".
    base_url: str = ""
    model: str = "smollm2-135m-instruct"
    api_key: SecretStr = SecretStr("sk-local")
    timeout_s: float = 2.0
    #: Calls that miss it keep running; their verdict re-decides the order later.
    stream_budget_s: float = 0.25
    sync_budget_s: float = 0.0
    max_concurrency: int = 2
    redact: bool = True
    #: In-process verdict cache entries; with state.backend=redis a shared Redis cache sits behind it.
    cache_size: int = 50_000
    #: LLM labels below this confidence (0-1) are dropped.
    min_confidence: float = 0.5
    breaker_failures: int = 5
    breaker_reset_s: float = 30.0
    #: A late verdict re-decides the order only if it arrives within this many seconds.
    late_window_s: float = 120.0


class ModelSettings(_Section):
    registry_dir: Path = Path(".riskwire/models")
    #: With an empty registry (or a model trained on another feature schema), fit a
    #: first unsupervised model on generated history. Right for the demo and first
    #: steps; production sets it false and runs ``riskwire train`` on its own history.
    bootstrap: bool = True
    bootstrap_orders: int = 8000
    min_labels_for_supervised: int = 200


class RulesSettings(_Section):
    #: Empty means the default e-commerce ruleset that ships with riskwire.
    ruleset_path: Path | None = None
    lists_dir: Path | None = None


class PolicySettings(_Section):
    """Score thresholds per model family (see ``detector.policy`` for the two scales)."""

    review_at: float = Field(default=50.0, ge=0, le=100)
    decline_at: float = Field(default=90.0, ge=0, le=100)
    unsupervised_review_at: float = Field(default=99.0, ge=0, le=100)
    unsupervised_decline_at: float = Field(default=99.9, ge=0, le=100)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="RISKWIRE_", env_nested_delimiter="__", frozen=True, extra="ignore"
    )

    data_dir: Path = Path(".riskwire")
    kafka: KafkaSettings = KafkaSettings()
    api: ApiSettings = ApiSettings()
    state: StateSettings = StateSettings()
    store: StoreSettings = StoreSettings()
    llm: LlmSettings = LlmSettings()
    models: ModelSettings = ModelSettings()
    rules: RulesSettings = RulesSettings()
    policy: PolicySettings = PolicySettings()

    @model_validator(mode="before")
    @classmethod
    def _state_under_data_dir(cls, data: Any) -> Any:
        """The SQLite file and the model registry live in ``data_dir`` unless they are set
        on their own: moving ``RISKWIRE_DATA_DIR`` moves them too."""
        if not isinstance(data, dict) or data.get("data_dir") is None:
            return data
        base = Path(data["data_dir"])
        data = dict(data)  # the caller's mapping stays as it was
        for section, field, value in (("store", "database_url", f"sqlite:///{base / 'riskwire.db'}"),
                                      ("models", "registry_dir", base / "models")):
            sub = data.get(section)
            if sub is None:
                data[section] = {field: value}
            elif isinstance(sub, dict) and field not in sub:
                data[section] = {**sub, field: value}
            elif isinstance(sub, BaseModel) and field not in sub.model_fields_set:
                data[section] = sub.model_copy(update={field: value})
        return data
