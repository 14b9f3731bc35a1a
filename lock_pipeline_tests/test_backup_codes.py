"""Offline backup codes: when a lock cannot take (or confirm) the PIN in time, the cloud computes a code
the lock opens for while offline, inside the stay's window and nowhere outside it; lock health."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import text

from lock_pipeline.cli import main
from lock_pipeline.sandbox.tuya_cloud import _fail, _ok, _Reply
from lock_pipeline_tests.harness import Harness, World, local
from lock_pipeline_tests.helpers import TEST_PIN_KEY
from lock_pipeline_tests.test_bad_input import answer

D0 = date(2026, 11, 24)  # Tuesday; São Paulo is UTC-3, so local whole hours are UTC whole hours


def issues(h: Harness) -> dict[str, list[dict]]:
    found: dict[str, list[dict]] = {}
    for row in h.attention():
        found.setdefault(row["issue"], []).append(row)
    return found


def backup_row(h: Harness, code: str):
    with h.engine.connect() as conn:
        return conn.execute(text("SELECT backup_code_masked, backup_code_from, backup_code_until FROM admin.reservations "
                                 "WHERE reservation_code = :c"), {"c": code}).one()


def issued(h: Harness, lock: str) -> list:
    return [c for c in h.tuya.offline_codes(lock) if c.kind == "multiple"]


def test_an_offline_lock_through_arrival_gets_a_code_that_opens_in_the_window_and_not_an_hour_outside(made, monkeypatch,
                                                                                                        capsys):
    world = World()
    listing, lock = world.listing(1, "Butantã 91", online=False)
    world.stay("OFFLN", listing, D0 + timedelta(days=1), D0 + timedelta(days=3))  # access 25/11 13:00 .. 27/11 11:00
    h = made(world, local(D0, 9))
    h.step(local(D0, 9))
    assert h.state_of("OFFLN") == "pending_on_lock" and issued(h, lock) == []  # too early for a backup
    h.step(local(D0 + timedelta(days=1), 9, 30))  # 3 h 30 before access opens: not yet
    assert issued(h, lock) == []
    h.step(local(D0 + timedelta(days=1), 10))  # 180 min before access opens, the PIN still not on the lock
    [code] = issued(h, lock)
    assert (code.effective, code.invalid) == (local(D0 + timedelta(days=1), 13), local(D0 + timedelta(days=3), 11))
    at = local(D0 + timedelta(days=1), 15, 10)  # the guest arrives; the lock is still offline
    assert h.tuya.would_open(lock, code.digits, at) and not h.tuya.is_online(lock)
    assert not h.tuya.would_open(lock, code.digits, local(D0 + timedelta(days=1), 12, 30))  # not an hour early
    assert h.tuya.enter_code(lock, code.digits, at)  # used within 24 h of its start: it keeps working
    assert h.tuya.would_open(lock, code.digits, local(D0 + timedelta(days=3), 10, 30))
    assert not h.tuya.would_open(lock, code.digits, local(D0 + timedelta(days=3), 11, 30))  # not past check-out
    masked, starts, ends = backup_row(h, "OFFLN")
    assert masked.endswith(code.digits[-2:]) and code.digits not in masked
    assert (starts.hour, ends.hour) == (13, 11)
    assert "OFFLN" in [r["reservation_code"] for r in issues(h)["backup_code_issued"]]
    [offline] = issues(h)["lock_offline_arrival_soon"]
    assert "an offline backup code is issued for the arrival" in offline["what_to_do"]
    h.step(local(D0 + timedelta(days=1), 10, 30))
    assert len(issued(h, lock)) == 1  # one code per stay, not one per tick
    monkeypatch.setenv("LOCK_PIPELINE_DATABASE_URL", h.engine.url.render_as_string(hide_password=False))
    monkeypatch.setenv("LOCK_PIPELINE_PIN_KEY", TEST_PIN_KEY)
    assert main(["pin", "show", "OFFLN", "--by", "ana", "--reason", "guest at the door"]) == 0
    shown = capsys.readouterr().out
    assert f"backup code {code.digits}" in shown and "offline code" in shown
    with h.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM pipeline.pin_reveals WHERE backup_id IS NOT NULL")).scalar() == 1


def test_rounding_never_reaches_into_the_previous_guests_window_on_a_same_day_turnover(made):
    world = World()
    listing, lock = world.listing(1, "Lapa 92")
    world.stay("EARLY", listing, D0 - timedelta(days=2), D0 + timedelta(days=1))["checkOutTime"] = "14:30"
    world.stay("NEXTG", listing, D0 + timedelta(days=1), D0 + timedelta(days=3))  # 15:00: access would open 13:00
    h = made(world, local(D0, 9))
    h.tuya.set_online(lock, False)  # both guests' PINs wait for an offline lock
    h.step(local(D0, 9))
    h.step(local(D0 + timedelta(days=1), 9))
    h.step(local(D0 + timedelta(days=1), 12))
    codes = {c.name: c for c in issued(h, lock)}
    early, code = codes["LP EARLY B"], codes["LP NEXTG B"]
    assert early.invalid == local(D0 + timedelta(days=1), 14)  # 14:30 rounded down: never past EARLY's check-out
    assert code.effective == local(D0 + timedelta(days=1), 15)  # 14:30 rounded up, never down into EARLY's stay
    assert not h.tuya.would_open(lock, code.digits, local(D0 + timedelta(days=1), 14, 45))
    assert h.tuya.would_open(lock, code.digits, local(D0 + timedelta(days=1), 15))


def test_a_lock_that_refuses_pins_near_arrival_gets_a_backup_code(made):
    world = World()
    listing, lock = world.listing(1, "Perdizes 93")
    world.stay("FULLK", listing, D0 + timedelta(days=1), D0 + timedelta(days=2))
    h = made(world, local(D0 - timedelta(days=1), 9))
    h.use_step_retry_delay(0.02)
    h.tuya.set_storage_limit(lock, 0)  # storage full: every create is refused (2304)
    h.step(local(D0, 14))
    assert h.state_of("FULLK") == "failed"
    h.step(local(D0 + timedelta(days=1), 10))
    [code] = issued(h, lock)
    assert h.tuya.would_open(lock, code.digits, local(D0 + timedelta(days=1), 15))  # the guest gets in anyway
    assert {"pin_failed", "backup_code_issued"} <= issues(h).keys()


def test_a_lock_without_offline_codes_keeps_the_alert_path_and_is_marked(made):
    world = World()
    listing, lock = world.listing(1, "Pompéia 94", online=False)
    world.stay("NOOFF", listing, D0 + timedelta(days=1), D0 + timedelta(days=2))
    h = made(world, local(D0, 9))
    h.tuya.set_offline_codes_supported(lock, False)
    h.step(local(D0 + timedelta(days=1), 10))
    h.step(local(D0 + timedelta(days=1), 10, 30))
    assert issued(h, lock) == []
    with h.engine.connect() as conn:
        assert conn.execute(text("SELECT offline_codes FROM admin.locks WHERE lock_id = :l"), {"l": lock}).scalar() \
            == "unsupported"
        refused = conn.execute(text("SELECT count(*) FROM admin.access_history WHERE action = 'backup' "
                                    "AND outcome = 'refused'")).scalar()
    assert refused == 1  # asked once; the lock is marked and not asked again
    [offline] = issues(h)["lock_offline_arrival_soon"]
    assert "no backup is possible" in offline["what_to_do"]


def test_a_cancellation_after_the_backup_code_is_listed_until_it_is_cleared_at_the_lock(made, monkeypatch, capsys):
    world = World()
    listing, lock = world.listing(1, "Sumaré 95", online=False)
    stay = world.stay("GONER", listing, D0 + timedelta(days=1), D0 + timedelta(days=3))
    h = made(world, local(D0 + timedelta(days=1), 10))
    h.step(local(D0 + timedelta(days=1), 10))
    [code] = issued(h, lock)
    h.stays.cancel_reservation(stay["_id"])
    h.step(local(D0 + timedelta(days=1), 11))
    [outstanding] = issues(h)["backup_code_outstanding"]
    assert outstanding["reservation_code"] == "GONER" and "27/11 11:00" in outstanding["what_to_do"]
    assert "lock-pipeline backup-code clear GONER" in outstanding["what_to_do"]
    assert "backup_code_issued" not in issues(h)  # nobody should give it out any more
    tuya = h.tuya
    monkeypatch.setenv("LOCK_PIPELINE_DATABASE_URL", h.engine.url.render_as_string(hide_password=False))
    monkeypatch.setenv("LOCK_PIPELINE_PIN_KEY", TEST_PIN_KEY)
    monkeypatch.setenv("TUYA_BASE_URL", tuya.base_url)
    monkeypatch.setenv("TUYA_ACCESS_ID", tuya.access_id)
    monkeypatch.setenv("TUYA_ACCESS_SECRET", tuya.access_secret)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", tuya.ca_cert_path)
    monkeypatch.setenv("LOCK_PIPELINE_CLOCK_FILE", str(h.clock.path))
    assert main(["backup-code", "clear", "GONER", "--by", "ana"]) == 0
    clear_digits = capsys.readouterr().out.split("type ")[1].split(" ")[0]
    assert h.tuya.would_open(lock, code.digits, local(D0 + timedelta(days=1), 15))
    h.tuya.enter_code(lock, clear_digits, h.now)  # typed at the lock (it opens nothing): the backup code stops working
    assert not h.tuya.would_open(lock, code.digits, local(D0 + timedelta(days=1), 15))
    assert "backup_code_outstanding" in issues(h)  # until a person says it is done
    assert main(["backup-code", "cleared", "GONER", "--by", "ana"]) == 0
    assert "backup_code_outstanding" not in issues(h)


def test_a_low_battery_with_an_arrival_is_listed_with_what_the_lock_reports(made):
    world = World()
    listing, lock = world.listing(1, "Vila Romana 96")
    world.stay("SOONB", listing, D0 + timedelta(days=4), D0 + timedelta(days=6))
    h = made(world, local(D0, 9))
    h.step(local(D0, 9))
    assert "lock_battery_low" not in issues(h)
    h.move_to(local(D0, 9, 30))
    h.tuya.set_battery(lock, 12)  # (it drains with the sandbox's clock from here)
    h.step(local(D0, 9, 30))
    with h.engine.connect() as conn:
        battery, low, reported, kind = conn.execute(text(
            "SELECT battery, battery_low, battery_reported_at, battery_kind FROM admin.locks WHERE lock_id = :l"),
            {"l": lock}).one()
    assert (battery, low, kind) == ("12", True, "percent") and reported is not None
    [row] = issues(h)["lock_battery_low"]
    assert row["reservation_code"] == "SOONB" and "12%" in row["what_to_do"]


OFFLINE_ANSWERS = [
    ("malformed", _Reply(200, b'{"t": 1}'), False),
    ("missing fields", _ok({"offline_temp_password_id": "77"}), False),
    ("unsupported", _fail(2004, "not support offline password"), False),
    ("times in milliseconds", None, True),
]


@pytest.mark.parametrize("name, reply, accepted", OFFLINE_ANSWERS, ids=[c[0] for c in OFFLINE_ANSWERS])
def test_bad_offline_code_answers_store_nothing_wrong(made, monkeypatch, name, reply, accepted):
    world = World()
    listing, lock = world.listing(1, "Pacaembu 97", online=False)
    world.stay("BADAN", listing, D0 + timedelta(days=1), D0 + timedelta(days=3))
    h = made(world, local(D0 + timedelta(days=1), 10))
    h.use_step_retry_delay(0.02)
    if reply is None:  # the real answer, its times given in milliseconds
        real = h.tuya._handle

        def in_ms(method, target, headers, body):
            served = real(method, target, headers, body)
            if method == "POST" and "offline-temp-password" in target:
                import json

                document = json.loads(served.body)
                document["result"]["effective_time"] *= 1000
                document["result"]["invalid_time"] *= 1000
                return _Reply(200, json.dumps(document).encode())
            return served

        monkeypatch.setattr(h.tuya, "_handle", in_ms)
    else:
        answer(h, monkeypatch, "POST", "/offline-temp-password", reply)
    h.step(local(D0 + timedelta(days=1), 10))
    with h.engine.connect() as conn:
        rows = conn.execute(text("SELECT state, effective_from, invalid_at, code_masked FROM pipeline.backup_codes")).all()
    if accepted:
        [row] = rows
        assert row.state == "issued" and row.effective_from == local(D0 + timedelta(days=1), 13)
        assert row.invalid_at == local(D0 + timedelta(days=3), 11)
    else:
        assert all(row.state != "issued" for row in rows)  # nothing a person could give a guest by mistake
        assert backup_row(h, "BADAN")[0] is None
