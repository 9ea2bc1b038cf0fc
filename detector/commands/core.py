"""Core commands: broker, worker, serve, generate, replay.

These are entry points: they read Settings once and build everything through
``detector.wiring``. Being above the stream layer, they may import ``streams``.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Annotated

import typer

from contracts import ConfigError, Order
from detector.settings import Settings

__all__ = ["register"]

log = logging.getLogger(__name__)


def _settings(bootstrap_servers: str | None = None) -> Settings:
    settings = Settings()
    if bootstrap_servers:
        settings = settings.model_copy(
            update={"kafka": settings.kafka.model_copy(update={"bootstrap_servers": bootstrap_servers})}
        )
    return settings


def _history(settings: Settings) -> Callable[[], Iterable[Order]] | None:
    """Generated history to fit a first model on, when the settings allow it."""
    if not settings.models.bootstrap:
        return None
    from streams.generator import history

    return lambda: history(settings.models.bootstrap_orders)


def _bootstrap(settings: Settings) -> str:
    if not settings.kafka.bootstrap_servers:
        raise typer.BadParameter(
            "no broker configured: pass --bootstrap-servers, set RISKWIRE_KAFKA__BOOTSTRAP_SERVERS, "
            "or start one with `riskwire broker`"
        )
    return settings.kafka.bootstrap_servers


def register(app: typer.Typer) -> None:
    app.command("broker")(broker)
    app.command("worker")(worker)
    app.command("serve")(serve)
    app.command("generate")(generate)
    app.command("replay")(replay)
    app.command("schemas")(schemas)


def schemas(
    out: Annotated[Path, typer.Option(help="Directory to write the JSON Schemas to.")] = Path("contracts/schemas"),
) -> None:
    """Export the JSON Schema of every wire event (Order, ReturnRequest, Label, Decision)."""
    from contracts.jsonschema import export_schemas

    for path in export_schemas(out):
        typer.echo(str(path))


def broker(
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1 (0 picks a free one).")] = 9092,
) -> None:
    """Start the embedded Kafka-compatible broker (Tansu) on loopback until Ctrl-C."""
    from detector.broker import EmbeddedBroker
    from detector.cli import setup_logging

    setup_logging()
    b = EmbeddedBroker(port=port)
    try:
        b.start()
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"broker ready on {b.bootstrap_servers}", err=True)
    try:
        b.wait()
    except KeyboardInterrupt:
        pass
    finally:
        b.stop()


def worker(
    bootstrap_servers: Annotated[str | None, typer.Option(help="Kafka bootstrap servers.")] = None,
    metrics_port: Annotated[int, typer.Option(help="Serve /metrics on this port (0: off).")] = 0,
    log_level: str = "INFO",
) -> None:
    """Consume orders (and labels, returns), publish decisions; SIGTERM drains and exits 0."""
    from detector.cli import setup_logging
    from detector.runtime import tune_gc
    from detector.wiring import build_services
    from streams.processing import BatchProcessor
    from streams.worker import install_stop_signals, run_worker

    setup_logging(log_level)
    settings = _settings(bootstrap_servers)
    servers = _bootstrap(settings)
    services = build_services(settings, history=_history(settings))
    tune_gc()  # everything long-lived is loaded: keep the collector off it
    if metrics_port:
        from prometheus_client import start_http_server

        start_http_server(metrics_port, addr="127.0.0.1", registry=services.metrics.registry)
    stop = threading.Event()
    install_stop_signals(stop)
    processor = BatchProcessor(
        services=services, topics=settings.kafka, metrics=services.metrics,
        returns_handler=services.extras.get("returns_handler"),
    )
    try:
        run_worker(
            processor=processor, settings=settings.kafka, bootstrap_servers=servers,
            metrics=services.metrics, stop=stop, on_decisions=services.after_decisions,
            late=getattr(services.extras.get("late_verdicts"), "poll_late", None),
        )
    finally:
        services.close()
    log.info("worker stopped cleanly")


def serve(
    host: Annotated[str | None, typer.Option(help="Bind address (default from settings).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default from settings).")] = None,
    bootstrap_servers: Annotated[str | None, typer.Option(help="Broker to report in /readyz.")] = None,
    log_level: str = "INFO",
    workers: Annotated[int | None, typer.Option(
        help="uvicorn worker processes (default from settings); >1 keeps /metrics summed over all of them.",
    )] = None,
) -> None:
    """Serve the HTTP API (POST /v1/score, /healthz, /readyz, /metrics, /docs)."""
    import uvicorn

    from detector.api import create_app
    from detector.cli import setup_logging
    from detector.runtime import tune_gc
    from detector.wiring import build_services

    setup_logging(log_level)
    settings = _settings(bootstrap_servers)
    if (workers or settings.api.workers) > 1:
        from detector.commands.observability import serve_workers

        serve_workers(settings=settings, host=host, port=port, workers=workers or settings.api.workers,
                      log_level=log_level)
        return
    services = build_services(settings, history=_history(settings))
    tune_gc()  # everything long-lived is loaded: keep the collector off it
    if settings.kafka.bootstrap_servers:
        from streams.labels import LabelPublisher

        services.extras["bootstrap_servers"] = settings.kafka.bootstrap_servers
        # Analysts' verdicts in the UI become Labels on the labels topic.
        publisher = LabelPublisher(
            bootstrap_servers=settings.kafka.bootstrap_servers, topic=settings.kafka.labels_topic
        )
        services.publish_label = publisher
        services.closers.append(publisher.close)
    app = create_app(services)
    try:
        uvicorn.run(
            app, host=host or settings.api.host, port=port or settings.api.port,
            log_level=log_level.lower(), access_log=False,
        )
    finally:
        services.close()


def generate(
    count: Annotated[int, typer.Option(help="Orders to generate.")] = 10_000,
    seed: Annotated[int, typer.Option(help="Random seed: the same seed gives the same stream.")] = 7,
    rate: Annotated[float, typer.Option(help="Orders per second to send (0: as fast as possible).")] = 0.0,
    output: Annotated[Path | None, typer.Option(help="Write JSONL events here instead of Kafka.")] = None,
    bootstrap_servers: Annotated[str | None, typer.Option(help="Kafka bootstrap servers.")] = None,
    malformed_share: Annotated[float, typer.Option(help="Share of deliberately malformed order records.")] = 0.0,
) -> None:
    """Generate a realistic seeded order stream with labelled fraud and abuse patterns."""
    from streams.generator import GeneratorConfig, TrafficGenerator
    from streams.traffic import send_events, write_jsonl

    gen = TrafficGenerator(GeneratorConfig(seed=seed))
    events = gen.events(count)
    if output is not None:
        n = write_jsonl(events, output)
        typer.echo(f"wrote {n} events to {output}", err=True)
        return
    settings = _settings(bootstrap_servers)
    stats = send_events(events, bootstrap_servers=_bootstrap(settings), topics=settings.kafka,
                        rate=rate, malformed_share=malformed_share, seed=seed)
    typer.echo(json.dumps(stats), err=True)


def replay(
    dataset: Annotated[str, typer.Argument(help="What to replay: 'handbook' or 'jsonl'.")],
    data: Annotated[Path, typer.Option(help="The file to replay.")],
    limit: Annotated[int, typer.Option(help="Stop after this many orders (0: all).")] = 0,
    rate: Annotated[float, typer.Option(help="Orders per second (0: as fast as possible).")] = 0.0,
    bootstrap_servers: Annotated[str | None, typer.Option(help="Kafka bootstrap servers.")] = None,
) -> None:
    """Replay history as Order events in event-time order (handbook: customer -> customer,
    terminal -> merchant_id; TX_FRAUD becomes a chargeback Label after the label delay)."""
    from streams.traffic import read_handbook_events, read_jsonl, send_events

    settings = _settings(bootstrap_servers)
    if dataset == "handbook":
        events = read_handbook_events(data, label_delay_s=settings.state.label_delay_s, limit=limit)
    elif dataset == "jsonl":
        events = read_jsonl(data, limit=limit)
    else:
        raise typer.BadParameter("dataset is 'handbook' or 'jsonl'")
    started = time.monotonic()
    stats = send_events(events, bootstrap_servers=_bootstrap(settings), topics=settings.kafka, rate=rate)
    stats["seconds"] = round(time.monotonic() - started, 2)
    typer.echo(json.dumps(stats), err=True)
    sys.stdout.flush()
