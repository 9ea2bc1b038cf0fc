"""The HTTP API: ``POST /v1/score`` for checkout, health, readiness, metrics and docs.

CPU-bound routes are plain ``def`` (FastAPI runs them in its thread pool). Validation
errors answer 422 with field paths and messages but never echo the submitted values;
bodies over ``api.max_body_bytes`` answer 413 before they are read in full.
Feature routers (review queue, rules, ...) live in ``detector/routes/`` and are mounted
automatically.
"""

from __future__ import annotations

import importlib
import logging
import pkgutil
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from contracts import Decision, Order, RiskwireError
from detector import __version__
from detector.auth import Principal, require_scorer
from detector.engine import Engine
from detector.wiring import Services

__all__ = ["EngineDep", "ServicesDep", "create_app", "get_engine", "get_services"]

log = logging.getLogger(__name__)


# Dependencies that do no I/O are ``async``: FastAPI runs a sync dependency in its
# thread pool, and each hop there costs more than the lookup itself.
async def get_services(request: Request) -> Services:
    return request.app.state.services  # type: ignore[no-any-return]


async def get_engine(request: Request) -> Engine:
    return (await get_services(request)).engine


async def _scorer(request: Request) -> Principal:
    # Checkout tokens are compared in memory; only an admin's token touches the store.
    return require_scorer(request)


ServicesDep = Annotated[Services, Depends(get_services)]
EngineDep = Annotated[Engine, Depends(get_engine)]


class BodyLimit:
    """Reject request bodies larger than ``limit`` bytes with 413, declared or streamed."""

    def __init__(self, app: ASGIApp, *, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length" and value.isdigit() and int(value) > self.limit:
                await _too_large(self.limit, send)
                return
        seen = 0
        too_large = False

        async def limited() -> Message:
            nonlocal seen, too_large
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    too_large = True
                    raise _BodyTooLarge
            return message

        replaced = False

        async def guarded_send(message: Message) -> None:
            # The framework may catch the read error and answer 400 itself; whatever it
            # sends once the limit was hit is replaced by one 413.
            nonlocal replaced
            if too_large:
                if not replaced:
                    replaced = True
                    await _too_large(self.limit, send)
                return
            await send(message)

        try:
            await self.app(scope, limited, guarded_send)
        except _BodyTooLarge:
            if not replaced:
                await _too_large(self.limit, send)


class _BodyTooLarge(Exception):
    pass


async def _too_large(limit: int, send: Send) -> None:
    response = JSONResponse(
        {"detail": f"request body exceeds {limit} bytes"}, status_code=413
    )
    await response({"type": "http"}, _empty_receive, send)


async def _empty_receive() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


def create_app(services: Services) -> FastAPI:
    app = FastAPI(
        title="riskwire",
        version=__version__,
        description="Real-time fraud and abuse scoring for online shops.",
    )
    app.state.services = services

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"loc": ".".join(str(p) for p in e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
            for e in exc.errors()
        ]
        shown = "; ".join(f"{e['loc']}: {e['msg']}" for e in errors[:5])
        return JSONResponse({"detail": f"invalid request: {shown}", "errors": errors}, status_code=422)

    @app.exception_handler(RiskwireError)
    async def _domain(_request: Request, exc: RiskwireError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)[:500]}, status_code=400)

    # Checkout tokens only; open on loopback while none is configured (detector.auth).
    @app.post("/v1/score", response_model=Decision, tags=["checkout"], dependencies=[Depends(_scorer)])
    async def score(order: Order, services: ServicesDep) -> Response:
        """Score one order synchronously: an Order in, a Decision out."""
        # One thread-pool hop for the CPU-bound part: the engine and the sinks.
        body = await run_in_threadpool(_score_one, services, order)
        return Response(body, media_type="application/json")

    @app.get("/healthz", tags=["ops"])
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["ops"])
    def readyz(services: ServicesDep) -> JSONResponse:
        checks: dict[str, Any] = {"model": services.engine.model.version, "ruleset": services.engine.ruleset_version}
        ready = True
        bootstrap = services.extras.get("bootstrap_servers")
        if bootstrap:
            from detector.broker import api_versions_ok

            host, _, port = str(bootstrap).split(",")[0].rpartition(":")
            broker_ok = api_versions_ok(host or "127.0.0.1", int(port))
            checks["broker"] = "ok" if broker_ok else "unreachable"
            ready = ready and broker_ok
        return JSONResponse({"ready": ready, **checks}, status_code=200 if ready else 503)

    @app.get("/metrics", tags=["ops"], include_in_schema=False)
    def metrics(services: ServicesDep) -> Response:
        store = services.extras.get("case_store")
        if store is not None:
            # Queue depth and age move while nobody acts on the queue: refresh on scrape.
            store.refresh_metrics(services.metrics, min_interval_s=5)
        return Response(generate_latest(services.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    _mount_routes(app)
    app.add_middleware(BodyLimit, limit=services.settings.api.max_body_bytes)
    return app


def _score_one(services: Services, order: Order) -> bytes:
    decision = services.engine.decide(order, path="sync")
    if services.decision_sinks:
        try:
            services.after_decisions([decision], {order.order_id: order})
        except Exception:
            # The checkout answer must not depend on the case store being up.
            log.exception("decision sink failed for a sync decision")
    # The Decision is already validated: serialise it once, in Rust, instead of letting
    # the framework re-validate and re-encode it.
    return decision.model_dump_json().encode()


def _mount_routes(app: FastAPI) -> None:
    import detector.routes as routes_pkg

    for info in sorted(pkgutil.iter_modules(routes_pkg.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"detector.routes.{info.name}")
        router = getattr(module, "router", None)
        if router is not None:
            app.include_router(router)
