"""Signed notifications for the operator's automation (LOCK_PIPELINE_NOTIFY_URL), Standard Webhooks style.

Each code event is POSTed as JSON ``{"type", "timestamp", "data"}`` with the headers
``webhook-id`` (the event's id: the same on every retry, so a receiver can drop a duplicate),
``webhook-timestamp`` and ``webhook-signature``, signed by the ``standardwebhooks`` library with
the ``whsec_`` secret, so n8n, Zapier, a WhatsApp tool or ``lock-pipeline sandbox notifications``
verify it with any Standard Webhooks verifier.

``timestamp`` in the body is when the change happened (the pipeline's clock); the
``webhook-timestamp`` header is when this attempt was sent (the machine's clock, like every
transport signature: a receiver compares it with its own clock to refuse replays).

The PIN is in ``data.pin`` only with LOCK_PIPELINE_NOTIFY_INCLUDE_PIN=true; otherwise ``data`` says
the code is ready and where to read it. A receiver's answer is never stored or logged (it may
echo the request).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import httpx
from standardwebhooks import Webhook

from lock_pipeline.vocabulary import ANNOUNCING_EVENTS, CodeEvent

USER_AGENT = "lock-pipeline-notify/1"
TIMEOUT_SECONDS = 10.0

_MESSAGES = {
    CodeEvent.ACTIVE: "the door code for {code} is on the lock",
    CodeEvent.CHANGED: "the door code for {code} changed: the guest needs the new one",
    CodeEvent.BACKUP_ISSUED: "an offline backup code covers {code}",
    CodeEvent.FAILED: "the door code for {code} could not be put on the lock yet: a person must act",
    CodeEvent.REVOKED: "the door code for {code} no longer opens the door",
}


@dataclass(frozen=True)
class EventFacts:
    """What a notification says; built by the sender from the outbox row and its context."""

    event_type: str
    occurred_at: datetime
    reservation_code: str
    reservation_id: str
    listing: str
    listing_code: str
    lock_id: str
    lock_name: str | None
    time_zone: str
    access_from: datetime | None
    access_until: datetime | None
    check_in_at: datetime
    check_out_at: datetime
    pin_masked: str | None = None
    reason: str | None = None


def event_body(facts: EventFacts, *, pin: str | None, stays_field: str | None) -> str:
    """The JSON body: ``pin`` is given only when the operator switched it on; ``stays_field`` names the
    reservation field that holds the code when write-back is on."""
    event = CodeEvent(facts.event_type)
    zone = ZoneInfo(facts.time_zone)
    data: dict[str, object] = {
        "reservation_code": facts.reservation_code,
        "reservation_id": facts.reservation_id,
        "listing": facts.listing,
        "listing_code": facts.listing_code,
        "lock_id": facts.lock_id,
        "lock_name": facts.lock_name,
        "access_from": _local(facts.access_from, zone),
        "access_until": _local(facts.access_until, zone),
        "check_in": _local(facts.check_in_at, zone),
        "check_out": _local(facts.check_out_at, zone),
        "time_zone": facts.time_zone,
        "message": _MESSAGES[event].format(code=facts.reservation_code),
    }
    if event in ANNOUNCING_EVENTS:
        data["pin_masked"] = facts.pin_masked
        if pin is not None:
            data["pin"] = pin
        else:
            data["pin_included"] = False
            data["read_pin_with"] = f"lock-pipeline pin show {facts.reservation_code}"
            if stays_field:
                data["stays_custom_field"] = stays_field
    if event == CodeEvent.FAILED and facts.reason:
        data["reason"] = facts.reason
    body = {"type": event.value, "timestamp": _utc(facts.occurred_at), "data": data}
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"))


class NotifyFailed(Exception):
    """The receiver did not take the event (no 2xx answer); the message never holds its answer's body."""


class Notifier:
    """POSTs signed events to one URL (https, or http to loopback: validated in settings)."""

    def __init__(self, url: str, secret: str, *, timeout: float = TIMEOUT_SECONDS,
                 clock=None) -> None:
        self.url = url
        self._webhook = Webhook(secret)
        self._wall_clock = clock or (lambda: datetime.now(timezone.utc))
        self._http = httpx.Client(timeout=timeout, follow_redirects=False, headers={"user-agent": USER_AGENT})

    def __repr__(self) -> str:
        return f"Notifier({self.url!r}, secret=<hidden>)"

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "Notifier":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def signed_headers(self, event_id: str, body: str) -> dict[str, str]:
        sent_at = self._wall_clock().astimezone(timezone.utc)
        return {
            "content-type": "application/json",
            "webhook-id": event_id,
            "webhook-timestamp": str(int(sent_at.timestamp())),
            # sign() reads the instant as UTC (it replaces the zone), so it is given one in UTC.
            "webhook-signature": self._webhook.sign(msg_id=event_id, timestamp=sent_at, data=body),
        }

    def send(self, event_id: str, body: str) -> int:
        """One attempt; returns the 2xx status, raises :class:`NotifyFailed` otherwise."""
        try:
            answer = self._http.post(self.url, content=body.encode("utf-8"),
                                     headers=self.signed_headers(event_id, body))
        except httpx.TimeoutException:
            raise NotifyFailed(f"no answer within {self._http.timeout.read or TIMEOUT_SECONDS:g} s") from None
        except httpx.HTTPError as error:
            raise NotifyFailed(f"could not reach the receiver ({type(error).__name__})") from None
        if not 200 <= answer.status_code < 300:
            where = f" (redirect to {answer.headers.get('location', '?')}: not followed)" \
                if 300 <= answer.status_code < 400 else ""
            raise NotifyFailed(f"the receiver answered HTTP {answer.status_code}{where}")
        return answer.status_code


def _local(instant: datetime | None, zone: ZoneInfo) -> str | None:
    return instant.astimezone(zone).isoformat() if instant is not None else None


def _utc(instant: datetime) -> str:
    return instant.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")
