"""A tiny receiver for the pipeline's signed notifications: what the operator's automation would be.

``lock-pipeline sandbox notifications --port 8787 --secret whsec_...`` runs it on loopback and prints
each event it verified with the ``standardwebhooks`` library's own verifier (the one n8n-style
receivers use); a request that does not verify is answered 401 and counted, never printed. It
answers 204 and remembers each ``webhook-id``, so a retried event is shown as a repeat. Tests use
the same class, and can make it answer errors (``fail_next``) or stop and start it on the same port.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

MAX_BODY_BYTES = 64 * 1024


@dataclass(frozen=True)
class Received:
    """One verified delivery (an attempt the receiver checked), with what it answered."""

    webhook_id: str
    event: dict
    body: bytes
    headers: dict[str, str]
    status: int
    repeat: bool  # this webhook-id was taken before (an at-least-once retry)


@dataclass
class NotificationReceiver:
    secret: str
    host: str = "127.0.0.1"
    port: int = 0
    on_event: Callable[[Received], None] | None = None
    received: list[Received] = field(default_factory=list)  # every verified attempt, answered 2xx or not
    rejected: int = 0

    def __post_init__(self) -> None:
        self._webhook = Webhook(self.secret)
        self._lock = threading.Lock()
        self._fail: list[int] = []
        self._taken: set[str] = set()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ running

    def start(self) -> "NotificationReceiver":
        server = ThreadingHTTPServer((self.host, self.port), _handler_for(self))
        server.daemon_threads = True
        self.port = server.server_address[1]  # stopped and started again, it comes back on the same port
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="notification-receiver", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/lock-pipeline/events"

    def fail_next(self, count: int, status: int = 500) -> None:
        """Verify the next ``count`` events but answer ``status``: a receiver that took them and then broke."""
        with self._lock:
            self._fail.extend([status] * count)

    # ------------------------------------------------------------------ what arrived

    @property
    def taken(self) -> list[Received]:
        """Verified deliveries answered 2xx, in arrival order (repeats included)."""
        with self._lock:
            return [r for r in self.received if 200 <= r.status < 300]

    def events(self) -> list[dict]:
        """Each event once (first delivery per webhook-id), in arrival order."""
        return [r.event for r in self.taken if not r.repeat]

    # ------------------------------------------------------------------ one request

    def handle(self, body: bytes, headers: dict[str, str]) -> int:
        try:
            event = self._webhook.verify(body, headers)
        except (WebhookVerificationError, ValueError, UnicodeDecodeError):
            with self._lock:
                self.rejected += 1
            return 401
        webhook_id = {k.lower(): v for k, v in headers.items()}["webhook-id"]
        with self._lock:
            status = self._fail.pop(0) if self._fail else 204
            repeat = webhook_id in self._taken
            if 200 <= status < 300:
                self._taken.add(webhook_id)
            received = Received(webhook_id, event, body, dict(headers), status, repeat)
            self.received.append(received)
        if self.on_event is not None:
            self.on_event(received)
        return status


def _handler_for(receiver: NotificationReceiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            length = int(self.headers.get("content-length") or 0)
            if length > MAX_BODY_BYTES:
                self.send_response(413)
                self.end_headers()
                return
            status = receiver.handle(self.rfile.read(length), {k: v for k, v in self.headers.items()})
            self.send_response(status)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass  # each verified event is printed by the command; nothing else

    return Handler


def print_event(received: Received) -> None:
    """How ``lock-pipeline sandbox notifications`` shows a verified event."""
    event = received.event
    data = event.get("data", {})
    mark = " (a repeat: already taken)" if received.repeat else ""
    answered = "" if 200 <= received.status < 300 else f" -> answered HTTP {received.status}"
    print(f"verified {event.get('type')} for {data.get('reservation_code')} at {data.get('listing')} "
          f"[webhook-id {received.webhook_id}]{mark}{answered}", flush=True)
    print("  " + json.dumps(data, ensure_ascii=False, indent=None), flush=True)
