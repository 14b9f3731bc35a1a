"""What to make of one webhook POST from Stays (pure: no I/O).

Nothing in the body is trusted. Stays' signature algorithm is not public, so a webhook is
believed only as far as what we control: the secret token in the URL (compared in constant
time), the ``x-stays-client-id`` header (the account's API login), and then the reservation
itself, re-fetched from the Stays API by its id. The body only says *which* stay to re-fetch;
a forged or replayed webhook can at most cause a re-fetch.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import datetime

from lock_pipeline.vocabulary import WebhookState

MAX_BODY_BYTES = 64 * 1024

# The actions the pipeline acts on, and what each means in a stay's history.
RESERVATION_ACTIONS = {
    "reservation.created": "booked",
    "reservation.modified": "changed",
    "reservation.canceled": "cancelled",
    "reservation.reactivated": "reactivated",
    "reservation.deleted": "deleted",
}
LISTING_ACTIONS = {"listing.created": "listed", "listing.modified": "listing changed"}

PENDING, IGNORED, REJECTED = WebhookState.PENDING, WebhookState.IGNORED, WebhookState.REJECTED


@dataclass(frozen=True)
class Verdict:
    """The answer to send, and what to store (a refused webhook keeps only its reason)."""

    status: int
    state: str
    reason: str
    action: str | None = None
    event_at: datetime | None = None
    reservation_ref: str | None = None
    listing_ref: str | None = None
    body_sha256: str | None = None

    @property
    def stored_for_work(self) -> bool:
        return self.state == PENDING


def judge(*, url_token: str, expected_token: str, client_id: str | None, expected_client_id: str,
          body: bytes, too_big: bool = False) -> Verdict:
    """Check a webhook in the order an attacker learns least: the URL's token, the client id, then the body.

    ``too_big``: the receiver stopped reading past MAX_BODY_BYTES (``body`` is then not the whole body).
    """
    if not expected_token or not hmac.compare_digest(url_token.encode(), expected_token.encode()):
        return Verdict(404, REJECTED, "unknown webhook URL (wrong token): register the URL `lock-pipeline webhooks "
                                      "--print-url` shows")
    if client_id is None or not hmac.compare_digest(client_id.encode(), expected_client_id.encode()):
        return Verdict(403, REJECTED, "x-stays-client-id does not match STAYS_CLIENT_ID")
    if too_big or len(body) > MAX_BODY_BYTES:
        return Verdict(413, REJECTED, f"body larger than {MAX_BODY_BYTES // 1024} KiB")
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, ValueError):
        return Verdict(400, REJECTED, "body is not JSON")
    if not isinstance(document, dict) or not isinstance(document.get("action"), str) or not document["action"]:
        return Verdict(400, REJECTED, "not a Stays webhook: no \"action\"")
    action = document["action"][:100]
    payload = document.get("payload") if isinstance(document.get("payload"), dict) else {}
    digest = hashlib.sha256(body).hexdigest()
    event_at = _instant(document.get("_dt"))
    if action in RESERVATION_ACTIONS:
        ref = _text(payload.get("_id")) or _text(payload.get("id"))
        if ref is None:
            return Verdict(400, REJECTED, f"{action} without a reservation id (_id or id) in its payload")
        return Verdict(200, PENDING, "accepted", action, event_at, ref, _text(payload.get("_idlisting")), digest)
    if action in LISTING_ACTIONS:
        ref = _text(payload.get("_id")) or _text(payload.get("id"))
        return Verdict(200, PENDING, "accepted", action, event_at, None, ref, digest)
    # An action this pipeline does not act on (Stays adds new ones): kept, answered 2xx so Stays does not retry it.
    return Verdict(200, IGNORED, f"action {action!r} is not one the pipeline acts on", action, event_at,
                   body_sha256=digest)


def _text(value: object) -> str | None:
    return value.strip()[:100] if isinstance(value, str) and value.strip() else None


def _instant(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None
