"""Builds the tier-3 LLM classifier from settings, with metrics and redaction wired in.

The entry points call :func:`build_llm` once. With ``llm.enabled`` and an empty
``llm.base_url`` it starts the local llama.cpp server (``detector.llm_server``) for the
life of the process; otherwise it points the ``openai`` client at the configured
endpoint. It returns ``None`` when the LLM is disabled.
"""

from __future__ import annotations

import atexit
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from detector.metrics import Metrics
from detector.settings import LlmSettings
from models.text.llm import LlmClassifier
from models.text.llm_breaker import BreakerState, CircuitBreaker
from models.text.llm_cache import LlmCache, LruCache, RedisCache, TieredCache

__all__ = ["MetricsObserver", "build_llm", "default_redactor", "wire_tier3_and_returns"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MetricsObserver:
    """Feeds ``riskwire_llm_requests_total``, ``_llm_cache_total`` and ``_llm_breaker_open``."""

    metrics: Metrics

    def request(self, outcome: str) -> None:
        self.metrics.llm_requests.labels(outcome=outcome).inc()

    def cache(self, hit: bool) -> None:
        self.metrics.llm_cache.labels(result="hit" if hit else "miss").inc()

    def breaker(self, state: BreakerState) -> None:
        self.metrics.llm_breaker_open.set(1.0 if state == "open" else 0.0)


def default_redactor() -> Callable[[str], str]:
    """The text stage's PII redaction (``features.text.pii.redact``)."""
    from features.text.pii import redact

    return redact


def build_llm(
    settings: LlmSettings,
    *,
    metrics: Metrics | None = None,
    redis_url: str | None = None,
    key_prefix: str = "rw",
    client: object | None = None,
    force: bool = False,
) -> LlmClassifier | None:
    """The configured classifier, or ``None`` when disabled (``force`` ignores ``enabled``).

    ``redis_url`` adds a shared Redis cache behind the in-process LRU, so every worker
    of a group reuses a verdict. ``client`` replaces the ``openai`` client (tests).
    """
    if not (settings.enabled or force):
        return None
    if client is None:
        import openai

        base_url = settings.base_url or _start_local_server()
        client = openai.OpenAI(
            base_url=base_url,
            api_key=settings.api_key.get_secret_value(),
            timeout=settings.timeout_s,
            max_retries=0,
        )
    observer = MetricsObserver(metrics) if metrics is not None else None
    cache: LlmCache = LruCache(settings.cache_size)
    if redis_url:
        import redis

        cache = TieredCache(
            LruCache(settings.cache_size),
            RedisCache(redis.Redis.from_url(redis_url, socket_timeout=0.05), prefix=f"{key_prefix}:llm:"),
        )
    breaker = CircuitBreaker(
        failure_threshold=settings.breaker_failures,
        reset_after_s=settings.breaker_reset_s,
        on_change=observer.breaker if observer is not None else None,
    )
    return LlmClassifier(
        client,
        model=settings.model,
        timeout_s=settings.timeout_s,
        max_concurrency=settings.max_concurrency,
        cache=cache,
        breaker=breaker,
        redact=default_redactor() if settings.redact else None,
        min_confidence=settings.min_confidence,
        observer=observer,
    )


_local: list[Any] = []


def _start_local_server() -> str:
    """One local server per process, however many times services are built."""
    from detector.llm_server import LocalLlmServer

    if _local and _local[0].base_url:
        return str(_local[0].base_url)
    server = LocalLlmServer()
    url = server.start()
    _local[:] = [server]
    atexit.register(server.stop)
    log.info("llm.base_url is empty: started the local SmolLM2 server at %s", url)
    return url


def wire_tier3_and_returns(services: Any) -> None:
    """Attach tier 3, late re-decisions and return decisions to built ``Services``.

    Called once by ``detector.wiring.build_services``. Sets, when they apply:

    - ``services.text.llm``: the LLM classifier (``llm.enabled``), so the text stage
      consults it for uncertain or flagged texts within the path's budget;
    - ``services.extras["llm"]``: the same classifier (the CLI and the bench use it);
    - ``services.extras["late_verdicts"]``: a :class:`detector.redecide.LateVerdicts`
      whose ``observe`` is appended to ``services.decision_sinks``; the worker calls its
      ``poll_late()`` once per loop iteration and produces what it returns;
    - ``services.extras["returns_handler"]``: ``ReturnsEngine.decide_batch`` for the
      ``returns`` topic.
    """
    from detector.redecide import LateVerdicts
    from detector.returns import build_returns_engine

    settings = services.settings
    text = services.text
    # The text stage may already carry the classifier (detector.text_stage builds it when
    # llm.enabled); build one only if it does not, so there is one client and one server.
    llm = getattr(text, "llm", None) if text is not None else None
    if llm is None and settings.llm.enabled:
        redis_url = settings.state.redis_url if settings.state.backend == "redis" else None
        llm = build_llm(settings.llm, metrics=services.metrics, redis_url=redis_url, key_prefix=settings.state.key_prefix)
        if text is not None:
            text.llm = llm
    if isinstance(llm, LlmClassifier) and llm.observer is None:
        llm.observer = MetricsObserver(services.metrics)
    if llm is not None:
        services.extras["llm"] = llm
        if text is not None and isinstance(llm, LlmClassifier):
            late = LateVerdicts(engine=services.engine, llm=llm, window_s=settings.llm.late_window_s)
            text.late = late
            services.extras["late_verdicts"] = late
            services.decision_sinks.append(late.observe)
    services.extras["returns_engine"] = engine = build_returns_engine(services)
    services.extras["returns_handler"] = engine.decide_batch
