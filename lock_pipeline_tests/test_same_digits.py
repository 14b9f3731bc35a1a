"""A date change on the same lock moves the PIN's window and keeps the guest's digits (Tuya
modify-password); a lock that refuses gets new digits and a person is told; windows never overlap."""

from __future__ import annotations

from datetime import date, timedelta

from sqlalchemy import text

from lock_pipeline_tests.harness import Harness, World, local

D0 = date(2026, 11, 24)  # Tuesday


def codes(h: Harness, stay: str) -> list:
    with h.engine.connect() as conn:
        return conn.execute(text("""
            SELECT c.code_id, c.state, c.valid_from, c.valid_until, c.digits_changed_at, c.modify_refused_at
            FROM pipeline.access_codes c JOIN pipeline.reservations r USING (reservation_id)
            WHERE r.code = :s ORDER BY c.code_id"""), {"s": stay}).all()


def actions(h: Harness, stay: str) -> list[tuple[str, str]]:
    with h.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(
            "SELECT action, outcome FROM admin.access_history WHERE reservation_code = :s ORDER BY at"), {"s": stay})]


def attention_issues(h: Harness) -> set[tuple[str, str]]:
    return {(row["issue"], row["reservation_code"]) for row in h.attention()}


def test_an_extension_in_the_house_keeps_the_digits(made):
    world = World()
    listing, lock = world.listing(1, "Consolação 71")
    stay = world.stay("LONGR", listing, D0, D0 + timedelta(days=2))
    h = made(world, local(D0, 14))
    h.step(local(D0, 14))
    [(device, pin)] = h.pins_of("LONGR")
    h.stays.modify_reservation(stay["_id"], checkOutDate=(D0 + timedelta(days=4)).isoformat())
    h.step(local(D0 + timedelta(days=1), 9))
    assert h.pins_of("LONGR") == [(device, pin)]  # one code, the same digits
    assert h.tuya.would_open(lock, pin, local(D0 + timedelta(days=3), 12))  # valid for the extra nights
    assert not h.tuya.would_open(lock, pin, local(D0 + timedelta(days=4), 11, 1))  # and not past the new check-out
    [code] = codes(h, "LONGR")
    assert code.state == "active" and code.valid_until == local(D0 + timedelta(days=4), 11)
    assert ("modify", "pending_on_lock") in actions(h, "LONGR") and ("confirm", "active") in actions(h, "LONGR")
    assert ("pin_changed", "LONGR") not in attention_issues(h)


def test_a_shortened_stay_and_an_earlier_arrival_keep_the_digits(made):
    world = World()
    l1, k1 = world.listing(1, "Higienópolis 72")
    l2, k2 = world.listing(2, "Liberdade 73")
    short = world.stay("SHORT", l1, D0 - timedelta(days=1), D0 + timedelta(days=4))
    early = world.stay("EARLY", l2, D0 + timedelta(days=1), D0 + timedelta(days=3))
    h = made(world, local(D0, 9))
    h.step(local(D0, 9))
    [(_, short_pin)] = h.pins_of("SHORT")
    [(_, early_pin)] = h.pins_of("EARLY")  # programmed 28 h ahead of access
    h.stays.modify_reservation(short["_id"], checkOutDate=(D0 + timedelta(days=1)).isoformat())
    h.stays.modify_reservation(early["_id"], checkInDate=D0.isoformat(), checkOutDate=(D0 + timedelta(days=2)).isoformat())
    h.step(local(D0, 9, 30))
    assert h.pins_of("SHORT") == [(k1, short_pin)] and h.pins_of("EARLY") == [(k2, early_pin)]
    assert h.tuya.would_open(k2, early_pin, local(D0, 13, 30))  # arrives a day earlier with the same code
    assert not h.tuya.would_open(k1, short_pin, local(D0 + timedelta(days=1), 11, 1))  # leaves earlier too
    assert len(codes(h, "SHORT")) == 1 and len(codes(h, "EARLY")) == 1


def test_a_lock_that_refuses_to_move_a_pin_gets_new_digits_and_a_person_is_told(made):
    world = World()
    listing, lock = world.listing(1, "Santa Cecília 74")
    stay = world.stay("STUCK", listing, D0, D0 + timedelta(days=2))
    h = made(world, local(D0, 14))
    h.step(local(D0, 14))
    [(_, old_pin)] = h.pins_of("STUCK")
    h.tuya.set_modify_supported(lock, False)
    h.stays.modify_reservation(stay["_id"], checkOutDate=(D0 + timedelta(days=3)).isoformat())
    h.step(local(D0, 14, 30))
    h.step(local(D0, 15))
    pins = h.pins_of("STUCK")
    new_pin = next(pin for _, pin in pins if pin != old_pin)
    assert h.tuya.would_open(lock, new_pin, local(D0 + timedelta(days=2), 12))  # the new code covers the new night
    assert not h.tuya.would_open(lock, old_pin, h.now)  # the old one is gone once the new one is on the lock
    old, new = codes(h, "STUCK")
    assert old.modify_refused_at is not None and old.valid_until == local(D0 + timedelta(days=2), 11)  # never written
    assert old.state == "revoked" and new.state == "active" and new.digits_changed_at is not None
    assert ("modify", "refused") in actions(h, "STUCK")
    assert ("pin_changed", "STUCK") in attention_issues(h)


def test_a_stay_moved_far_ahead_is_revoked_now_and_programmed_later_with_the_same_digits(made):
    world = World()
    listing, lock = world.listing(1, "Aclimação 75")
    stay = world.stay("LATER", listing, D0 + timedelta(days=1), D0 + timedelta(days=3))
    h = made(world, local(D0, 9))
    h.step(local(D0, 9))
    [(_, pin)] = h.pins_of("LATER")
    h.stays.modify_reservation(stay["_id"], checkInDate=(D0 + timedelta(days=10)).isoformat(),
                               checkOutDate=(D0 + timedelta(days=12)).isoformat())
    h.step(local(D0, 9, 30))
    assert h.state_of("LATER") == "scheduled" and not h.tuya.would_open(lock, pin, local(D0 + timedelta(days=1), 16))
    h.step(local(D0 + timedelta(days=8), 14))  # within 48 h of the new access window
    assert [p for _, p in h.pins_of("LATER")] == [pin, pin]  # a new code row, the same digits
    assert h.tuya.would_open(lock, pin, local(D0 + timedelta(days=10), 15))
    assert ("pin_changed", "LATER") not in attention_issues(h)


def test_the_next_guests_window_never_overlaps_a_late_check_out(made):
    world = World()
    listing, lock = world.listing(1, "Paraíso 76")
    world.stay("FIRST", listing, D0 - timedelta(days=2), D0)["checkOutTime"] = "14:00"  # a late check-out
    world.stay("NEXTG", listing, D0, D0 + timedelta(days=2))  # checks in at 15:00
    h = made(world, local(D0, 9))
    h.step(local(D0, 9))
    [(_, first)] = h.pins_of("FIRST")
    [(_, second)] = h.pins_of("NEXTG")
    [code] = codes(h, "NEXTG")
    assert code.valid_from == local(D0, 14)  # not 13:00 (15:00 minus the 2 h lead): the first guest leaves at 14:00
    assert h.tuya.would_open(lock, first, local(D0, 13, 30)) and not h.tuya.would_open(lock, second, local(D0, 13, 30))
    assert h.tuya.would_open(lock, second, local(D0, 14)) and not h.tuya.would_open(lock, first, local(D0, 14))
