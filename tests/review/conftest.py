"""Fixtures for the review queue: a store on a SQLite file, a settable clock, decisions."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import SecretStr

from contracts import Decision, Label, Order, Reason, Versions
from contracts.events import FeatureContribution, TextSpan
from detector.review import CaseStore

T0 = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
VERSIONS = Versions(engine="test", features="f1", model="m1", ruleset="r1")
CHECKOUT_TOKEN = "chk-secret-token"


class Clock:
    """A clock tests move by hand."""

    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kw: float) -> None:
        self.now += timedelta(**kw)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(tmp_path: Any, clock: Clock) -> Iterator[CaseStore]:
    s = CaseStore.from_url(f"sqlite:///{tmp_path}/review.db", clock=clock)
    yield s
    s.engine.dispose()


def make_decision(
    order: Order,
    *,
    score: int = 80,
    action: str = "review",
    revision: int = 1,
    reasons: list[tuple[str, float]] | None = None,
    spans: list[TextSpan] | None = None,
    shadow: dict[str, Any] | None = None,
) -> Decision:
    reasons = reasons if reasons is not None else [("high_amount", 12.5), ("new_account", 4.0)]
    return Decision(
        decision_id=f"{order.order_id}:{revision}",
        order_id=order.order_id,
        revision=revision,
        event_time=order.created_at,
        decided_at=T0,
        score=score,
        action=action,  # type: ignore[arg-type]
        reasons=[Reason(code=c, detail=f"detail of {c}", contribution=w) for c, w in reasons],
        contributions=[FeatureContribution(feature="amount_eur", value=120.0, contribution=0.8)],
        text_spans=spans or [],
        versions=VERSIONS,
        shadow=shadow,
    )


@pytest.fixture
def decide() -> Callable[..., Decision]:
    return make_decision


@pytest.fixture(scope="session")
def real_rules() -> tuple[Any, Any]:
    """The real featurizer and ruleset holder (cheap to build, unlike a fitted model)."""
    from detector.settings import Settings
    from detector.wiring import _attribute_schema, build_featurizer, build_rules

    settings = Settings()
    featurizer = build_featurizer(settings)
    return featurizer, build_rules(settings, schema=_attribute_schema(featurizer, None))


@pytest.fixture
def services_factory(tmp_path: Any, real_rules: tuple[Any, Any]) -> Callable[..., Any]:
    """Services around a stub engine: for tests of the review routes and access control only."""
    from detector.metrics import Metrics
    from detector.settings import ApiSettings, Settings
    from detector.wiring import Services

    class StubEngine:
        # The real engine is exercised by the browser test; here only the auth around it is.
        def decide(self, order: Order, *, path: str = "sync") -> Decision:
            return make_decision(order, score=10, action="approve")

    def build(store: CaseStore | None, *, tokens: tuple[str, ...] = (CHECKOUT_TOKEN,),
              published: list[Label] | None = None) -> Services:
        settings = Settings(
            data_dir=tmp_path,
            api=ApiSettings(score_tokens=tuple(SecretStr(t) for t in tokens),
                            session_secret=SecretStr("test-session-secret")),
        )
        featurizer, rules = real_rules
        services = Services(settings=settings, metrics=Metrics.create(), engine=StubEngine(),  # type: ignore[arg-type]
                            featurizer=featurizer, rules=rules)
        if store is not None:
            services.extras["case_store"] = store
        if published is not None:
            services.publish_label = published.append
        return services

    return build
