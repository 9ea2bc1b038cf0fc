"""Serving the API with several uvicorn workers, metrics kept right across them.

``riskwire serve --workers N`` (N > 1) lands here. Each worker is a separate process
with its own engine, so ``/metrics`` from one worker would show only its share. We use
prometheus-client's multiprocess mode: every worker writes its values to files in
``PROMETHEUS_MULTIPROC_DIR`` and whichever worker answers ``/metrics`` sums them all
(``detector.metrics`` does the registry side). The variable has to be set before any
worker imports prometheus-client, so the parent sets it and uvicorn spawns the workers
from an import string: :func:`app_factory`.
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from detector.metrics import MULTIPROC_ENV

if TYPE_CHECKING:
    from fastapi import FastAPI

    from detector.settings import Settings

__all__ = ["APP_FACTORY", "app_factory", "prepare_multiprocess_dir", "register", "serve_workers"]

log = logging.getLogger(__name__)

#: What uvicorn imports in every worker process.
APP_FACTORY = "detector.commands.observability:app_factory"


def register(app: typer.Typer) -> None:
    """No commands of its own: ``riskwire serve --workers N`` calls :func:`serve_workers`."""


def app_factory() -> FastAPI:
    """Build the API in a worker process: settings from the environment, as in ``serve``."""
    from prometheus_client import multiprocess

    from detector.api import create_app
    from detector.metrics import multiprocess_enabled
    from detector.settings import Settings
    from detector.wiring import build_services
    from streams.generator import history

    settings = Settings()
    services = build_services(settings, history=history)
    from detector.runtime import tune_gc

    tune_gc()  # everything long-lived is loaded: keep the collector off it
    if settings.kafka.bootstrap_servers:
        services.extras["bootstrap_servers"] = settings.kafka.bootstrap_servers
    if multiprocess_enabled():
        # Live gauges (breaker, lag, queue depth) of a worker that exits must stop counting.
        atexit.register(multiprocess.mark_process_dead, os.getpid())
    return create_app(services)


def prepare_multiprocess_dir(path: Path | None = None) -> tuple[Path, bool]:
    """Create (or empty) the multiprocess directory and export it; returns (dir, is_temporary).

    An existing ``PROMETHEUS_MULTIPROC_DIR`` is honoured; stale ``*.db`` files in it are
    removed, because values from a previous run would be summed into this one.
    """
    given = path or (Path(os.environ[MULTIPROC_ENV]) if os.environ.get(MULTIPROC_ENV) else None)
    if given is None:
        directory, temporary = Path(tempfile.mkdtemp(prefix="riskwire-metrics-")), True
    else:
        directory, temporary = given, False
        directory.mkdir(parents=True, exist_ok=True)
        for stale in directory.glob("*.db"):
            stale.unlink()
    os.environ[MULTIPROC_ENV] = str(directory)
    return directory, temporary


def serve_workers(
    *,
    settings: Settings,
    host: str | None,
    port: int | None,
    workers: int,
    log_level: str = "INFO",
) -> None:
    """Run ``workers`` uvicorn worker processes on one socket, metrics in multiprocess mode."""
    import uvicorn

    if settings.state.backend == "memory":
        log.warning(
            "%d API workers with the in-process state backend: each worker keeps its own velocity "
            "state; use RISKWIRE_STATE__BACKEND=redis to share it", workers,
        )
    directory, temporary = prepare_multiprocess_dir()
    if temporary:
        atexit.register(shutil.rmtree, directory, True)
    # Workers read Settings from the environment: carry over what the command line changed.
    if settings.kafka.bootstrap_servers:
        os.environ["RISKWIRE_KAFKA__BOOTSTRAP_SERVERS"] = settings.kafka.bootstrap_servers
    _prefit_model(settings)
    log.info("serving with %d workers; metrics summed from %s", workers, directory)
    uvicorn.run(
        APP_FACTORY, factory=True, workers=workers,
        host=host or settings.api.host, port=port or settings.api.port,
        log_level=log_level.lower(), access_log=False,
    )


def _prefit_model(settings: Settings) -> None:
    """Fit the first model once here, so N workers do not race to fill an empty registry."""
    from detector.wiring import build_featurizer, build_model
    from streams.generator import history

    build_model(settings, schema=build_featurizer(settings).schema, history=history)
