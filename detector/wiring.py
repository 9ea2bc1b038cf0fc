"""The composition root: one place that builds every collaborator from Settings.

Entry points (CLI commands, the API factory, the worker) call :func:`build_services`
once; nothing below them reads the environment. Each ``build_*`` function builds one
collaborator, so a test can swap any of them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from contracts import Decision, FeatureSchema, Label, Order
from detector.engine import (
    ENGINE_ATTRIBUTES,
    Engine,
    Featurizer,
    RiskModel,
    RulesetSource,
    TextStage,
)
from detector.metrics import Metrics
from detector.policy import policy_from_settings
from detector.settings import Settings

__all__ = [
    "DecisionSink",
    "Services",
    "build_challenger",
    "build_engine",
    "build_featurizer",
    "build_model",
    "build_rules",
    "build_services",
    "build_text_stage",
]

log = logging.getLogger(__name__)

#: Something that wants every decision after it is made, with the orders it decided
#: (keyed by order id; returns decisions have no entry): the review queue's case store.
DecisionSink = Callable[[list[Decision], Mapping[str, Order]], None]
#: Orders to fit a first model on when the registry is empty (generated history).
HistorySource = Callable[[], Iterable[Order]]


@dataclass
class Services:
    """What the entry points share: the engine and the parts around it."""

    settings: Settings
    metrics: Metrics
    engine: Engine
    featurizer: Featurizer
    rules: RulesetSource
    text: TextStage | None = None
    decision_sinks: list[DecisionSink] = field(default_factory=list)
    #: Publishes a Label to the labels topic; set by the entry points that have a broker.
    publish_label: Callable[[Label], None] | None = None
    #: Called with every batch of Labels the worker consumes (the case store closes
    #: matching cases on chargebacks and refunds).
    label_sinks: list[Callable[[list[Label]], None]] = field(default_factory=list)
    extras: dict[str, Any] = field(default_factory=dict)
    #: Called in reverse order by :meth:`close` (flush queues, stop watchers).
    closers: list[Callable[[], None]] = field(default_factory=list)

    def close(self) -> None:
        """Flush what is queued and stop background threads; idempotent."""
        while self.closers:
            closer = self.closers.pop()
            try:
                closer()
            except Exception:
                log.exception("error while closing %r", closer)

    def after_decisions(self, decisions: list[Decision], orders: Mapping[str, Order] | None = None) -> None:
        for sink in self.decision_sinks:
            sink(decisions, orders or {})

    def after_labels(self, labels: list[Label]) -> None:
        for sink in self.label_sinks:
            sink(labels)


def build_featurizer(settings: Settings) -> Featurizer:
    from features import OrderFeaturizer, build_state

    state = build_state(
        settings.state.backend, redis_url=settings.state.redis_url, key_prefix=settings.state.key_prefix
    )
    return OrderFeaturizer(
        state=state,
        label_delay_s=settings.state.label_delay_s,
        allowed_lateness_s=settings.state.allowed_lateness_s,
        resolutions=settings.state.resolutions,
    )


def build_model(
    settings: Settings, *, schema: FeatureSchema, history: HistorySource | None = None
) -> RiskModel:
    """The registry's current model; with an empty registry, one fitted on ``history``."""
    from models import ModelRegistry, fit_bundle

    registry = ModelRegistry(settings.models.registry_dir)
    if registry.has_current():
        trained_on = registry.manifest(str(registry.current)).get("schema_digest")
        if trained_on == schema.digest or history is None:
            # Production (no history source) always loads, and refuses a mismatch.
            return registry.load_current(schema=schema)
        log.warning(
            "model %s was trained on feature schema %s, the engine has %s: fitting a new "
            "bootstrap model on generated history", registry.current, trained_on, schema.digest,
        )
    elif history is None:
        from contracts import ConfigError

        raise ConfigError(
            f"no model in {settings.models.registry_dir}: run `riskwire train` first"
        )
    log.info("fitting a first unsupervised model on generated history")
    featurizer = build_featurizer(settings.model_copy(update={"state": settings.state.model_copy(update={"backend": "memory"})}))
    names = schema.model_inputs()
    parts: list[np.ndarray] = []
    batch: list[Order] = []
    for order in history():
        batch.append(order)
        if len(batch) >= 500:
            parts.append(featurizer.featurize(batch).numbers(names))
            batch = []
    if batch:
        parts.append(featurizer.featurize(batch).numbers(names))
    from detector.drift import DRIFT_METADATA_KEY, profile_for_training

    X = np.concatenate(parts) if parts else np.empty((0, len(names)))
    bundle = fit_bundle(X, names, random_state=0)
    registry.save(
        bundle,
        metadata={
            "source": "generated-history",
            "rows": int(X.shape[0]),
            "schema_digest": schema.digest,
            # What PSI compares live traffic with (detector.drift).
            DRIFT_METADATA_KEY: profile_for_training(X, names, model=bundle).to_dict(),
        },
        promote=True,
    )
    return registry.load_current(schema=schema)


def build_challenger(settings: Settings, *, schema: FeatureSchema) -> RiskModel | None:
    """The registry's shadow challenger, if one is set and fits the feature schema."""
    from contracts import ConfigError
    from models import ModelRegistry

    registry = ModelRegistry(settings.models.registry_dir)
    try:
        return registry.load_challenger(schema=schema)
    except ConfigError as exc:
        log.warning("shadow challenger not loaded: %s", exc)
        return None


def build_rules(settings: Settings, *, schema: FeatureSchema) -> RulesetSource:
    from rules import RulesetHolder

    # A bad ruleset or list file raises RuleCompileError (a ConfigError) here, at start;
    # later file changes are picked up by the watcher, and a bad change keeps the
    # running ruleset (see rules/holder.py).
    return RulesetHolder.from_settings(
        ruleset_path=settings.rules.ruleset_path,
        lists_dir=settings.rules.lists_dir,
        schema=schema,
        watch_interval_s=2.0,
    )


def build_text_stage(settings: Settings) -> TextStage | None:
    try:
        from detector.text_stage import build_text_stage as _build
    except ImportError:
        return None
    return _build(settings)


def build_engine(
    settings: Settings,
    *,
    metrics: Metrics,
    featurizer: Featurizer,
    model: RiskModel,
    rules: RulesetSource,
    text: TextStage | None,
) -> Engine:
    schema = _attribute_schema(featurizer, text)
    policy = policy_from_settings(settings.policy, schema=schema)
    return Engine(
        featurizer=featurizer,
        model=model,
        rules=rules,
        policy=policy,
        metrics=metrics,
        text=text,
        text_budget_s={"sync": settings.llm.sync_budget_s, "stream": settings.llm.stream_budget_s},
    )


def _attribute_schema(featurizer: Featurizer, text: TextStage | None) -> FeatureSchema:
    """Everything a rule may name: order features, text, model outputs, return features."""
    from detector.returns import return_attribute_schema

    schema = featurizer.schema
    if text is not None:
        schema = schema.merged(text.schema)
    return schema.merged(ENGINE_ATTRIBUTES).merged(return_attribute_schema())


def build_services(
    settings: Settings, *, metrics: Metrics | None = None, history: HistorySource | None = None
) -> Services:
    metrics = metrics or Metrics.create()
    featurizer = build_featurizer(settings)
    text = build_text_stage(settings)
    model = build_model(settings, schema=featurizer.schema, history=history)
    rules = build_rules(settings, schema=_attribute_schema(featurizer, text))
    engine = build_engine(settings, metrics=metrics, featurizer=featurizer, model=model, rules=rules, text=text)
    engine.swap_challenger(build_challenger(settings, schema=featurizer.schema))
    from detector.drift import attach_drift_monitor, reference_from_model

    drift = attach_drift_monitor(metrics, reference=reference_from_model(model))
    engine.on_model_swap(lambda new: drift.set_reference(reference_from_model(new)))
    metrics.build.info(
        {"version": engine_version(), "model": model.version, "ruleset": rules.current.version}
    )
    services = Services(settings=settings, metrics=metrics, engine=engine, featurizer=featurizer, rules=rules, text=text)
    services.extras["drift"] = drift
    services.closers.append(rules.stop)
    _wire_review_queue(services)
    # Tier-3 LLM, late re-decisions and return decisions (see detector.llm).
    from detector.llm import wire_tier3_and_returns

    wire_tier3_and_returns(services)
    return services


def _wire_review_queue(services: Services) -> None:
    """Cases for reviews (and every decision indexed for linked evidence); labels close cases."""
    from detector.review import CaseSink, CaseStore, LabelSink

    store = CaseStore.from_url(services.settings.store.database_url)  # migrates to head
    # Background writes: a checkout answer never waits on the case store.
    sink = CaseSink(store, metrics=services.metrics, background=True)
    services.decision_sinks.append(sink)
    services.closers.append(sink.flush)
    services.label_sinks.append(LabelSink(store, metrics=services.metrics))
    services.extras["case_store"] = store


def engine_version() -> str:
    from detector import __version__

    return __version__
