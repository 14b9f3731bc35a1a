"""What Stays holds for every stay right now: the truth the pipeline is judged against.

It changes only through the plan's events, which the season applies here and to the Stays
sandbox together (a stay whose record is malformed at that moment keeps its truth; the sandbox
gets the change when the record is restored).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, datetime, timezone
from typing import TYPE_CHECKING

from season.bookings import Booking, Event, check_in_at, check_out_at, reservation_of, window_of

if TYPE_CHECKING:
    from lock_pipeline.sandbox.stays_server import StaysSandbox
    from season.plan import SeasonPlan


@dataclass
class TruthStay:
    booking: Booking
    check_in: date
    check_out: date
    listing: int
    status: str               # confirmed | cancelled | blocked
    created_at: datetime      # when the booking existed in Stays (on the step grid)
    changed_at: datetime      # the last change of its window, listing or status
    raw: dict
    corrupted: bool = False
    window: tuple[datetime, datetime] = (datetime.min.replace(tzinfo=timezone.utc),) * 2

    @property
    def as_booked_now(self) -> Booking:
        return replace(self.booking, check_in=self.check_in, check_out=self.check_out)

    def refresh(self) -> None:
        self.window = window_of(self.as_booked_now)

    # The module's check_in_at / check_out_at below: a method does not see the class's own names.
    @property
    def check_in_at(self) -> datetime:
        return check_in_at(self.as_booked_now)

    @property
    def check_out_at(self) -> datetime:
        return check_out_at(self.as_booked_now)


class Truth:
    """Every stay Stays has had by now, by reservation id and by code."""

    def __init__(self, plan: SeasonPlan) -> None:
        self.plan = plan
        self.stays: dict[str, TruthStay] = {}
        self.by_code: dict[str, TruthStay] = {}

    def add(self, b: Booking, at: datetime) -> TruthStay:
        """``b`` exists in Stays from ``at`` (or from when it was made, before the season)."""
        status = "blocked" if b.kind == "block" else "confirmed"
        created = at if b.created_at >= self.plan.config.begin else b.created_at
        stay = TruthStay(b, b.check_in, b.check_out, b.listing, status, created, created,
                         reservation_of(b, self.plan.seed))
        stay.refresh()
        self.stays[b.rid] = stay
        self.by_code[b.code] = stay
        return stay

    def apply(self, event: Event, now: datetime, stays: StaysSandbox) -> None:
        """One planned booking, change or cancellation, in the truth and in the Stays sandbox."""
        b = self.plan.bookings[event.rid]
        if event.kind == "book":
            stays.put_reservation(self.add(b, now).raw)
            return
        stay = self.stays.get(event.rid)
        if stay is None or stay.status != "confirmed":
            return
        if event.kind == "cancel":
            stay.status = "cancelled"
            stay.raw["type"] = "canceled"
            stays.cancel_reservation(b.rid)
        else:
            change = b.change
            stay.check_in, stay.check_out = change.check_in, change.check_out
            if change.listing is not None:
                stay.listing = change.listing
            stay.raw.update({"checkInDate": stay.check_in.isoformat(), "checkOutDate": stay.check_out.isoformat(),
                             "_idlisting": self.plan.seed.listings[stay.listing]["_id"]})
            if not stay.corrupted:
                stays.modify_reservation(b.rid, checkInDate=stay.check_in.isoformat(),
                                         checkOutDate=stay.check_out.isoformat(), _idlisting=stay.raw["_idlisting"])
            stay.refresh()
        stay.changed_at = now
