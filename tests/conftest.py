"""Shared fixtures: an order factory and the real services integration tests use.

Integration tests skip on a machine that lacks a service, except when
``RISKWIRE_REQUIRE_SERVICES=1`` (set by ``.ci/run``): there a missing service fails.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from contracts import Order

REQUIRE_SERVICES = os.environ.get("RISKWIRE_REQUIRE_SERVICES") == "1"
T0 = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)


def missing_service(what: str) -> None:
    """Skip on a user's machine; fail in CI, where every service must be there."""
    if REQUIRE_SERVICES:
        pytest.fail(f"required service unavailable in CI: {what}", pytrace=False)
    pytest.skip(f"service unavailable: {what}")


def _merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def order_payload(**overrides: Any) -> dict[str, Any]:
    """A valid Order as JSON-ready data; nested dicts in overrides are merged."""
    base: dict[str, Any] = {
        "schema_version": 1,
        "order_id": "o-1",
        "created_at": T0.isoformat(),
        "customer": {
            "customer_id": "c-1",
            "email": "anna.nowak@example.com",
            "phone": "+48 600 100 200",
            "name": "Anna Nowak",
            "account_created_at": (T0 - timedelta(days=400)).isoformat(),
        },
        "payment": {
            "method": "card",
            "card_fingerprint": "fp-1",
            "card_bin": "535522",
            "card_country": "PL",
            "amount": "120.00",
            "currency": "PLN",
        },
        "billing_address": {"line1": "ul. Dluga 5", "city": "Gdansk", "postal_code": "80-827", "country": "PL"},
        "shipping_address": {"line1": "ul. Dluga 5", "city": "Gdansk", "postal_code": "80-827", "country": "PL"},
        "ip_address": "198.51.100.7",
        "device_id": "d-1",
        "channel": "web",
        "merchant_id": "m-01",
        "items": [{"sku": "BOOK-1", "category": "books", "quantity": 1, "unit_price": "120.00"}],
    }
    return _merge(base, overrides)


@pytest.fixture
def order_factory() -> Callable[..., Order]:
    def make(**overrides: Any) -> Order:
        return Order.model_validate(order_payload(**overrides))

    return make


@pytest.fixture(scope="session")
def broker() -> Iterator[str]:
    """A real embedded Tansu broker on loopback; yields bootstrap servers."""
    from contracts import ConfigError
    from detector.broker import EmbeddedBroker

    try:
        b = EmbeddedBroker().start()
    except ConfigError as exc:
        missing_service(f"embedded broker: {exc}")
        return
    try:
        yield b.bootstrap_servers
    finally:
        b.stop()


@pytest.fixture(scope="session")
def redis_url() -> str:
    url = os.environ.get("RISKWIRE_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
    try:
        import redis

        redis.Redis.from_url(url, socket_connect_timeout=1).ping()
    except Exception as exc:
        missing_service(f"Redis at {url}: {exc}")
    return url


@pytest.fixture(scope="session")
def postgres_url() -> str:
    url = os.environ.get("RISKWIRE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
    try:
        import sqlalchemy as sa

        engine = sa.create_engine(url, connect_args={"connect_timeout": 2})
        with engine.connect() as conn:
            conn.execute(sa.text("select 1"))
        engine.dispose()
    except Exception as exc:
        missing_service(f"PostgreSQL at {url}: {exc}")
    return url


@pytest.fixture(scope="session")
def chromium_path() -> str:
    path = shutil.which("chromium")
    if path is None:
        missing_service("Debian chromium (apt-get install chromium chromium-driver)")
    return str(path)


@pytest.fixture(scope="session")
def prometheus_bin() -> str:
    path = shutil.which("prometheus")
    if path is None:
        missing_service("Debian prometheus (apt-get install prometheus)")
    return str(path)


def fresh_registry() -> Any:
    from prometheus_client import CollectorRegistry

    return CollectorRegistry()


Factory = Callable[..., Order]


@pytest.fixture(scope="session")
def trained_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A data dir whose model registry holds a model fitted on generated history.

    Fitted once per session: tests then load it like a worker or API process would.
    """
    from detector.wiring import build_featurizer, build_model
    from streams.generator import history
    from tests.support import engine_settings

    data_dir = tmp_path_factory.mktemp("riskwire-data")
    settings = engine_settings(data_dir)
    featurizer = build_featurizer(settings)
    build_model(settings, schema=featurizer.schema, history=lambda: history(3000, seed=3))
    return data_dir


@pytest.fixture
def services_factory(trained_data_dir: Any, tmp_path: Any) -> Iterator[Callable[..., Any]]:
    """Build real Services (engine with featuriser, model, rules) around the trained registry."""
    from detector.settings import ModelSettings, StoreSettings
    from detector.wiring import build_services
    from tests.support import engine_settings

    built: list[Any] = []

    def make(**sections: Any) -> Any:
        settings = engine_settings(
            tmp_path,
            models=ModelSettings(registry_dir=trained_data_dir / "models"),
            store=StoreSettings(database_url=f"sqlite:///{tmp_path / 'cases.db'}"),
        )
        if sections:
            settings = settings.model_copy(update=sections)
        services = build_services(settings, metrics=None)
        built.append(services)
        return services

    yield make
    for services in built:
        services.close()
