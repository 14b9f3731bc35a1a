"""The Stays webhook receiver: ``POST /stays/webhooks/{token}``, on Starlette and uvicorn.

It only stores: each webhook is judged (stays/webhooks.py) and written to Postgres before the
answer goes out, and a Dagster sensor picks the stored ones up (orchestration/webhooks.py). So
the receiver stays small and quick, and a pipeline that is down loses nothing Stays sent.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import Engine
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from lock_pipeline.stays import webhook_store
from lock_pipeline.stays.webhooks import MAX_BODY_BYTES, Verdict, judge

WEBHOOK_PATH = "/stays/webhooks/{token}"


def webhook_url(base_url: str, token: str) -> str:
    return base_url.rstrip("/") + WEBHOOK_PATH.format(token=token)


def receiver_app(engine: Engine, *, token: str, client_id: str, now: Callable[[], datetime]) -> Starlette:
    async def receive(request: Request) -> JSONResponse:
        received_at = now()
        body, too_big = await _bounded_body(request)
        verdict = judge(url_token=request.path_params["token"], expected_token=token,
                        client_id=request.headers.get("x-stays-client-id"), expected_client_id=client_id,
                        body=body, too_big=too_big)
        webhook_id, duplicate = await run_in_threadpool(_store, engine, verdict, received_at)
        if verdict.status >= 400:
            return JSONResponse({"status": "rejected", "error": verdict.reason}, status_code=verdict.status)
        answer = "duplicate" if duplicate else str(verdict.state)
        return JSONResponse({"status": answer, **({"webhook_id": webhook_id} if webhook_id else {})}, status_code=200)

    async def health(_request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    return Starlette(routes=[Route(WEBHOOK_PATH, receive, methods=["POST"]),
                             Route("/stays/webhooks-health", health, methods=["GET"])])


def serve(engine: Engine, *, host: str, port: int, token: str, client_id: str, now: Callable[[], datetime]) -> None:
    """Run the receiver until stopped (SIGINT/SIGTERM); uvicorn, with its own access log off (URLs hold the token)."""
    import uvicorn

    app = receiver_app(engine, token=token, client_id=client_id, now=now)
    uvicorn.run(app, host=host, port=port, access_log=False, log_level="warning", proxy_headers=True)


class BackgroundReceiver:
    """The receiver in a thread of another process (`lock-pipeline up`, the tests, the benchmarks)."""

    def __init__(self, engine: Engine, *, host: str, port: int, token: str, client_id: str,
                 now: Callable[[], datetime]) -> None:
        import uvicorn

        app = receiver_app(engine, token=token, client_id=client_id, now=now)
        self._server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, access_log=False, log_level="warning",
                                                     lifespan="off"))
        self._thread: threading.Thread | None = None

    def start(self, timeout: float = 10.0) -> "BackgroundReceiver":
        self._thread = threading.Thread(target=self._server.run, name="stays-webhook-receiver", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the webhook receiver did not start (is its port taken? "
                                   "set LOCK_PIPELINE_WEBHOOK_PORT)")
            time.sleep(0.02)
        return self

    @property
    def port(self) -> int:
        return self._server.servers[0].sockets[0].getsockname()[1]

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)


def _store(engine: Engine, verdict: Verdict, received_at: datetime) -> tuple[int | None, bool]:
    with engine.begin() as conn:
        return webhook_store.record(conn, verdict, received_at)


async def _bounded_body(request: Request) -> tuple[bytes, bool]:
    """The body, or (what was read, True) as soon as it passes the bound: a huge body is never read whole."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        return b"", True
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return b"", True
        chunks.append(chunk)
    return b"".join(chunks), False
