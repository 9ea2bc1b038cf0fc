"""Settings: the SQLite file and the model registry follow ``data_dir`` unless set apart."""

from __future__ import annotations

from pathlib import Path

from detector.settings import ModelSettings, Settings, StoreSettings


def test_defaults_sit_in_the_default_data_dir():
    s = Settings()
    assert s.data_dir == Path(".riskwire")
    assert s.store.database_url == "sqlite:///.riskwire/riskwire.db"
    assert s.models.registry_dir == Path(".riskwire/models")


def test_moving_the_data_dir_moves_the_database_and_registry(tmp_path, monkeypatch):
    s = Settings(data_dir=tmp_path)
    assert s.store.database_url == f"sqlite:///{tmp_path}/riskwire.db"
    assert s.models.registry_dir == tmp_path / "models"
    monkeypatch.setenv("RISKWIRE_DATA_DIR", str(tmp_path / "env"))
    monkeypatch.setenv("RISKWIRE_MODELS__BOOTSTRAP_ORDERS", "123")  # a sibling setting stays
    s = Settings()
    assert s.store.database_url == f"sqlite:///{tmp_path}/env/riskwire.db"
    assert s.models.registry_dir == tmp_path / "env" / "models" and s.models.bootstrap_orders == 123


def test_a_database_or_registry_set_on_its_own_stays_where_it_was_set(tmp_path, monkeypatch):
    s = Settings(data_dir=tmp_path, store=StoreSettings(database_url="postgresql+psycopg://db/rw"),
                 models=ModelSettings(registry_dir=Path("/srv/models")))
    assert s.store.database_url == "postgresql+psycopg://db/rw" and s.models.registry_dir == Path("/srv/models")
    monkeypatch.setenv("RISKWIRE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("RISKWIRE_STORE__DATABASE_URL", "sqlite:////var/rw.db")
    s = Settings()
    assert s.store.database_url == "sqlite:////var/rw.db" and s.models.registry_dir == tmp_path / "models"
