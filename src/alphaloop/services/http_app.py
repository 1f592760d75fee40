"""The FastAPI app every HTTP service starts from.

It answers ``GET /health`` (readiness: 200 when every check passes, else 503), ``/health/live``,
``/health/ready`` and ``/metrics`` (Prometheus text), measures every request, refuses bodies over
the configured limit with 413 before reading them, turns alphaloop's own errors into 4xx with the
message, and starts/stops the service's background workers with the app (so ``SIGTERM`` drains
them: uvicorn stops taking requests, the lifespan stops the workers, the process exits 0).
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any, Protocol

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException

from alphaloop import __version__
from alphaloop.core.errors import AlphaloopError, ConfigError, DataError, OrderError, StrategyError
from alphaloop.services import metrics

log = logging.getLogger(__name__)

# Which 4xx an alphaloop error becomes: the caller sent something unusable (422), a name that is not
# there (404 is left to the endpoints, which know), or a request the current state refuses (409).
_STATUS_OF: tuple[tuple[type[AlphaloopError], int], ...] = (
    (DataError, 422), (StrategyError, 422), (OrderError, 422), (ConfigError, 422))


class Worker(Protocol):
    """A background part of a service (a bus consumer, a gRPC server, a replay)."""

    name: str

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def health(self) -> dict[str, Any]:
        """``{"ok": bool, ...details}``."""
        ...


class _BodyLimit:
    """Pure ASGI middleware: 413 when Content-Length says too much, or when a streamed body turns out
    to be too long (counted while the app reads it)."""

    def __init__(self, app: Any, limit: int, service: str):
        self.app, self.limit, self.service = app, limit, service

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for key, value in scope.get("headers", ()):
            if key == b"content-length":
                try:
                    too_long = int(value) > self.limit
                except ValueError:
                    too_long = True
                if too_long:
                    metrics.ERRORS.labels(self.service, "body_too_large").inc()
                    await self._refuse(send)
                    return
        seen = 0

        async def counted() -> dict:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    metrics.ERRORS.labels(self.service, "body_too_large").inc()
                    raise _TooLarge(self.limit)  # an HTTP error, so FastAPI answers 413 (not 400)
            return message

        await self.app(scope, counted, send)

    async def _refuse(self, send: Callable) -> None:
        body = f'{{"detail":"request body larger than {self.limit} bytes"}}'.encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


class _TooLarge(StarletteHTTPException):
    def __init__(self, limit: int):
        super().__init__(status_code=413, detail=f"request body larger than {limit} bytes")


def bearer_auth(token: str | None) -> Callable[..., None]:
    """A dependency for state-changing endpoints: with a token configured, requests must carry
    ``Authorization: Bearer <token>`` (401 otherwise); without one, everything is allowed (the
    services bind to loopback by default)."""
    scheme = HTTPBearer(auto_error=False)

    def check(credentials: HTTPAuthorizationCredentials | None = Depends(scheme)) -> None:  # noqa: B008
        if token is None:
            return
        if credentials is None or not hmac.compare_digest(credentials.credentials.encode(), token.encode()):
            raise HTTPException(status_code=401, detail="missing or wrong bearer token",
                                headers={"WWW-Authenticate": "Bearer"})

    return check


def make_app(service: str, *, title: str, description: str = "", workers: Sequence[Worker] = (),
             checks: dict[str, Callable[[], dict[str, Any]]] | None = None, max_body_bytes: int = 1_048_576,
             health_prefixes: Sequence[str] = ()) -> FastAPI:
    """An app with health, metrics, limits and error mapping; endpoints are added by the caller.

    ``checks`` are extra readiness checks (name -> ``{"ok": bool, ...}``); ``health_prefixes`` adds
    aliases of the live/ready pair (the ML service adds KServe-v2's ``/v2/health``)."""
    started = time.time()
    checks = dict(checks or {})

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        for w in workers:
            w.start()
            log.info("worker %s started", w.name)
        metrics.UP.labels(service).set(1)
        try:
            yield
        finally:
            metrics.UP.labels(service).set(0)
            for w in reversed(workers):
                try:
                    w.stop()
                    log.info("worker %s stopped", w.name)
                except Exception:
                    log.exception("worker %s did not stop cleanly", w.name)

    app = FastAPI(title=title, description=description, version=__version__, lifespan=lifespan)
    app.add_middleware(_BodyLimit, limit=max_body_bytes, service=service)
    app.state.service = service

    @app.middleware("http")
    async def measure(request: Request, call_next: Callable) -> Response:
        t0 = time.perf_counter()
        status = 500
        try:
            response = await call_next(request)
            status = response.status_code
            return response
        finally:
            route = request.scope.get("route")
            path = getattr(route, "path", "unmatched")  # templates, not raw paths: bounded label values
            metrics.REQUEST_SECONDS.labels(service, request.method, path, str(status)).observe(
                time.perf_counter() - t0)

    @app.exception_handler(AlphaloopError)
    async def alphaloop_error(request: Request, e: AlphaloopError) -> JSONResponse:
        status = next((code for cls, code in _STATUS_OF if isinstance(e, cls)), 409)
        metrics.ERRORS.labels(service, type(e).__name__).inc()
        return JSONResponse({"detail": str(e), "error": type(e).__name__}, status_code=status)

    def readiness() -> tuple[bool, dict[str, Any]]:
        report: dict[str, Any] = {}
        for w in workers:
            report[w.name] = _safe(w.health)
        for name, fn in checks.items():
            report[name] = _safe(fn)
        return all(r.get("ok") for r in report.values()), report

    def health_body(ok: bool, report: dict[str, Any]) -> dict[str, Any]:
        return {"status": "ok" if ok else "unavailable", "service": service, "version": __version__,
                "uptime_s": round(time.time() - started, 3), "checks": report}

    @app.get("/health", tags=["health"], summary="Readiness with every check (503 when one fails)")
    def health() -> JSONResponse:
        ok, report = readiness()
        return JSONResponse(health_body(ok, report), status_code=200 if ok else 503)

    def live() -> dict[str, Any]:
        return {"status": "alive", "service": service}

    def ready() -> JSONResponse:
        ok, report = readiness()
        return JSONResponse(health_body(ok, report), status_code=200 if ok else 503)

    for prefix in ("/health", *health_prefixes):
        app.add_api_route(f"{prefix}/live", live, methods=["GET"], tags=["health"], summary="Liveness")
        app.add_api_route(f"{prefix}/ready", ready, methods=["GET"], tags=["health"], summary="Readiness")

    @app.get("/metrics", tags=["health"], summary="Prometheus metrics", response_class=Response)
    def prometheus() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return app


def _safe(fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    try:
        out = dict(fn())
    except Exception as e:  # a failing check is an answer (not ready), not a 500
        return {"ok": False, "error": f"{type(e).__name__}: {e}"}
    out.setdefault("ok", False)
    return out
