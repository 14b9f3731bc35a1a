"""Write-back: the door code in a custom field of the Stays reservation (LOCK_PIPELINE_STAYS_WRITE_BACK=pin).

Stays' External API as the reference documents it ("Writing to a reservation"):
- the field is found (``GET /settings/app/custom-fields?target=reservation``, by ``internalName``)
  or created once (``POST``, ``type: text``, hidden), and its ``_idfield`` is remembered;
- the reservation is read (``GET /booking/reservations/{_id}``) for its current ``type``, which the
  ``PATCH`` must carry or the reservation changes type; a field that already holds the value is not
  written again (idempotent, and no change for Stays to announce);
- ``PATCH /booking/reservations/{_id}`` with ``appCustomFields: [{"_idfield", "val"}]``; "" clears it.

A 403 or 404 on a write (or 403 on reading the fields) means this account's API client may not
write: :class:`WriteBackRefused`, which stops the channel with one alert instead of a retry per stay.
"""

from __future__ import annotations

from dataclasses import dataclass

from lock_pipeline.stays.client import StaysClient, StaysError, StaysNotFound, StaysWriteRefused
from lock_pipeline.stays.records import RESERVATION_TYPES

FIELD_TITLE = {"pt_BR": "Código da porta", "en_US": "Door code"}


class WriteBackRefused(Exception):
    """Stays refused write-back for the whole account (403/404): needs a person, not a retry."""


class ReservationGone(Exception):
    """The reservation no longer exists in Stays: nothing to write to."""


class WriteBackFailed(Exception):
    """This attempt failed (Stays down, a timeout, an answer we cannot use); tried again with back-off."""


@dataclass(frozen=True)
class WriteResult:
    field_id: str
    written: bool  # False: the field already held the value


class StaysFieldWriter:
    """Writes one reservation's door-code field; ``field_id`` is the remembered ``_idfield`` (or None)."""

    def __init__(self, client: StaysClient, field_name: str) -> None:
        self.client = client
        self.field_name = field_name

    def write(self, reservation_id: str, value: str, field_id: str | None) -> WriteResult:
        try:
            field_id = field_id or self._find_or_create_field()
            try:
                return WriteResult(field_id, self._write(reservation_id, field_id, value))
            except StaysError as error:
                if error.status != 400 or isinstance(error, StaysWriteRefused):
                    raise
                # The remembered field may have been deleted in Stays: look it up again, once.
                field_id = self._find_or_create_field()
                return WriteResult(field_id, self._write(reservation_id, field_id, value))
        except StaysWriteRefused as refused:
            raise WriteBackRefused(_scrub(f"Stays answered HTTP {refused.status} to a write ({refused}); this "
                                          "account's API client may not write", value)) from None
        except StaysNotFound:
            raise ReservationGone(f"reservation {reservation_id} is not in Stays any more") from None
        except WriteBackFailed as failed:
            raise WriteBackFailed(_scrub(str(failed), value)) from None
        except StaysError as error:
            if error.status == 403:
                raise WriteBackRefused(_scrub(f"Stays answered HTTP 403 to reading the custom fields ({error})",
                                              value)) from None
            raise WriteBackFailed(_scrub(str(error), value)) from None

    def _find_or_create_field(self) -> str:
        found = self._find_field()
        if found is not None:
            return found
        try:
            created = self.client.create_custom_field(internal_name=self.field_name, name=FIELD_TITLE["pt_BR"],
                                                      field_type="text", visibility="hidden")
        except StaysError as error:
            if error.status != 409 and not (error.status is None and "may have reached" in str(error)):
                raise
            created = None  # created meanwhile (or by a request whose answer was lost): read it back
        field_id = (created or {}).get("_idfield") or self._find_field()
        if not isinstance(field_id, str) or not field_id:
            raise WriteBackFailed(f"Stays did not return the id of the custom field {self.field_name} it created")
        return field_id

    def _find_field(self) -> str | None:
        for field in self.client.list_custom_fields("reservation"):
            if field.get("internalName") == self.field_name and isinstance(field.get("_idfield"), str):
                if field.get("type") not in (None, "text"):
                    raise WriteBackFailed(f"the reservation custom field {self.field_name} in Stays is of type "
                                          f"{field.get('type')!r}, not text: set LOCK_PIPELINE_STAYS_PIN_FIELD to "
                                          "another name, or change the field in Stays")
                return field["_idfield"]
        return None

    def _write(self, reservation_id: str, field_id: str, value: str) -> bool:
        current = self.client.get_reservation(reservation_id)
        if not isinstance(current, dict):
            raise WriteBackFailed(f"GET reservation {reservation_id}: the answer is not an object")
        stays_type = current.get("type")
        if stays_type not in RESERVATION_TYPES:
            raise WriteBackFailed(f"reservation {reservation_id} has type {stays_type!r}, not one the pipeline knows: "
                                  "not written (the write must carry the current type, or Stays changes it)")
        values = current.get("appCustomFields")
        for item in values if isinstance(values, list) else ():
            if isinstance(item, dict) and item.get("_idfield") == field_id and str(item.get("val") or "") == value:
                return False
        self.client.update_reservation(reservation_id, stays_type=stays_type, custom_fields={field_id: value})
        return True


def _scrub(message: str, value: str) -> str:
    """An error never carries the digits (a server may echo the request in its answer)."""
    for digits in {part for part in value.replace("(", " ").replace(")", " ").split() if part.isdigit()}:
        message = message.replace(digits, "•••")
    return message
