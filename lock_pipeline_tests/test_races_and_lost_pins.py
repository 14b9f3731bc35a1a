"""What a review found: runs that overlap the audit, a backup request that failed once, a moved PIN, a PIN
deleted on the lock by hand, a stay deleted in Stays after its backup code, webhooks refused, and what
the guest was told (on real Postgres and the sandboxes)."""

from __future__ import annotations

from datetime import date, timedelta

from sqlalchemy import text

from lock_pipeline.access import store as access_store
from lock_pipeline.access.executor import AccessExecutor
from lock_pipeline.access.planning import AccessPolicy, plan_actions
from lock_pipeline.sandbox.seed import hex_id
from lock_pipeline.sandbox.tuya_cloud import _Reply
from lock_pipeline_tests.harness import World, local
from lock_pipeline_tests.helpers import make_tuya_client
from lock_pipeline_tests.test_bad_input import answer

D0 = date(2026, 11, 24)  # Tuesday


def issues(h) -> list[tuple[str, str | None]]:
    return [(row["issue"], row["reservation_code"]) for row in h.attention()]


def test_a_pin_another_run_programs_while_the_audit_walks_the_locks_is_not_taken_for_an_orphan(made, monkeypatch):
    """The audit reads each lock's codes under that lock's advisory lock: a run that programmed a PIN on a
    later lock after the audit began has committed by then, so its PIN is known, not deleted."""
    import lock_pipeline.orchestration.access as orchestration
    from season.driver import run_near_term_sync

    world = World()
    la, lock_a = world.listing(1, "Alfa 10")
    lb, lock_b = world.listing(2, "Beta 20")
    first, second = sorted([lock_a, lock_b])
    world.stay("LATER", la if second == lock_a else lb, D0 + timedelta(days=3), D0 + timedelta(days=5))
    h = made(world, local(D0, 9))
    h.step(local(D0, 9))
    assert h.state_of("LATER") == "scheduled"
    h.move_to(local(D0 + timedelta(days=1), 13, 5))  # its PIN falls due now (48 h before access opens)
    policy = AccessPolicy.from_settings(h.settings)
    audit_lock = orchestration.audit_lock
    ran = []

    def a_run_in_between(device_id, *args, **kwargs):
        if device_id == first and not ran:  # the sensor's (or a webhook's) run programs the other lock meanwhile
            ran.append(device_id)
            executor = AccessExecutor(h.engine, make_tuya_client(h.tuya), h.vault, now=lambda: h.now, policy=policy)
            for _round in range(2):  # generate, then confirm
                with h.engine.connect() as conn:
                    stays, codes = access_store.load_for_planning(conn, h.now, policy)
                for action in plan_actions(stays, codes, h.now, policy).actions:
                    executor.perform(action)
        return audit_lock(device_id, *args, **kwargs)

    monkeypatch.setattr(orchestration, "audit_lock", a_run_in_between)
    assert run_near_term_sync(h.defs, instance=h.instance).success
    monkeypatch.setattr(orchestration, "audit_lock", audit_lock)
    assert ran and h.state_of("LATER") == "active"
    assert [(p.name.split(" ")[1], p.phase) for p in h.tuya.pins(second)] == [("LATER", 2)]
    h.step(local(D0 + timedelta(days=3), 15))
    assert h.opens("LATER", second)


def test_a_pin_deleted_on_the_lock_by_hand_is_programmed_again_with_the_same_digits(made):
    world = World()
    listing, lock = world.listing(1, "Gama 30")
    world.stay("HANDS", listing, D0 + timedelta(days=1), D0 + timedelta(days=3))
    h = made(world, local(D0, 9))
    h.step(local(D0, 9))
    assert h.state_of("HANDS") == "active"
    [(_device, digits)] = h.pins_of("HANDS")
    [pin] = h.tuya.pins(lock)
    with make_tuya_client(h.tuya) as owner:  # the owner deletes it in the Tuya app
        owner.delete_temp_password(lock, pin.password_id)
    h.step(local(D0, 9, 30))  # the 30-minute sync's audit finds it gone; the sensor programs it again
    h.step(local(D0, 10))
    assert h.state_of("HANDS") == "active"
    assert [p.phase for p in h.tuya.pins(lock)] == [0, 2]
    assert {pin for _device, pin in h.pins_of("HANDS")} == {digits}  # the guest's code still works
    h.move_to(local(D0 + timedelta(days=1), 15))
    assert h.opens("HANDS", lock)
    with h.engine.connect() as conn:
        details = conn.execute(text("SELECT detail FROM pipeline.access_code_events WHERE detail LIKE '%no longer on%'"))
        assert details.scalars().all()  # the stay's history says what happened


def test_a_backup_request_that_failed_once_is_asked_again(made, monkeypatch):
    world = World()
    listing, lock = world.listing(1, "Butantã 91", online=False)
    world.stay("OFFLN", listing, D0 + timedelta(days=1), D0 + timedelta(days=3))  # access 25/11 13:00
    h = made(world, local(D0, 9))
    h.use_step_retry_delay(0.02)
    h.step(local(D0, 9))
    real = h.tuya._handle
    answer(h, monkeypatch, "POST", "/offline-temp-password", _Reply(502, b"bad gateway"))
    h.step(local(D0 + timedelta(days=1), 10))  # the backup falls due: the cloud fails every step retry
    assert [c for c in h.tuya.offline_codes(lock) if c.kind == "multiple"] == []
    monkeypatch.setattr(h.tuya, "_handle", real)  # the cloud answers again
    h.step(local(D0 + timedelta(days=1), 10, 30))
    [code] = [c for c in h.tuya.offline_codes(lock) if c.kind == "multiple"]
    assert h.tuya.would_open(lock, code.digits, local(D0 + timedelta(days=1), 15))
    with h.engine.connect() as conn:
        states = conn.execute(text("SELECT state FROM pipeline.backup_codes ORDER BY backup_id")).scalars().all()
    assert states[-1] == "issued" and set(states[:-1]) == {"lost"}  # each failed attempt marked lost, not covering


def test_a_request_whose_run_died_no_longer_covers_the_stay(made):
    """A run killed between committing its request and the cloud's answer leaves a `requesting` row: after
    ten minutes it no longer counts, the next run marks it lost and asks again under another name."""
    world = World()
    listing, lock = world.listing(1, "Vila 11", online=False)
    world.stay("DIED1", listing, D0 + timedelta(days=1), D0 + timedelta(days=3))
    h = made(world, local(D0, 9))
    h.step(local(D0, 9))
    with h.engine.begin() as conn:  # what the killed run left
        conn.execute(text("""
            INSERT INTO pipeline.backup_codes (reservation_id, device_id, name, requested_from, requested_until, state,
                run_id, created_at)
            VALUES (:r, :d, 'LP DIED1 B', :f, :u, 'requesting', 'killed', :at)
        """), {"r": hex_id("harness", "DIED1"), "d": lock, "f": local(D0 + timedelta(days=1), 13),
               "u": local(D0 + timedelta(days=3), 11), "at": local(D0 + timedelta(days=1), 10)})
    h.step(local(D0 + timedelta(days=1), 10, 5))  # a request five minutes old: still in flight, nothing asked
    assert [c for c in h.tuya.offline_codes(lock) if c.kind == "multiple"] == []
    h.step(local(D0 + timedelta(days=1), 10, 30))
    assert [c.name for c in h.tuya.offline_codes(lock) if c.kind == "multiple"] == ["LP DIED1 B2"]


def test_a_moved_pin_waiting_for_its_confirm_gets_no_needless_backup_code(made):
    world = World()
    listing, lock = world.listing(1, "Jardins 40")  # online
    world.stay("MOVED", listing, D0 + timedelta(days=1), D0 + timedelta(days=3))  # access 25/11 13:00
    h = made(world, local(D0, 9))
    h.step(local(D0, 9))
    h.move_to(local(D0 + timedelta(days=1), 10, 30))  # inside the backup lead
    h.stays.modify_reservation(hex_id("harness", "MOVED"), checkOutDate=str(D0 + timedelta(days=4)))
    h.settle()
    assert h.state_of("MOVED") == "active"
    assert h.tuya.offline_codes(lock) == []
    assert ("backup_code_issued", "MOVED") not in issues(h)


def test_a_stay_deleted_in_stays_after_its_backup_code_asks_for_the_code_to_be_cleared(made):
    world = World()
    listing, lock = world.listing(1, "Pacaembu 97", online=False)
    world.stay("GONE1", listing, D0 + timedelta(days=1), D0 + timedelta(days=3))
    other, _ = world.listing(2, "Outro 12")  # the feed is not empty once GONE1 is gone (that would be distrusted)
    world.stay("OTHR1", other, D0 + timedelta(days=1), D0 + timedelta(days=4))
    h = made(world, local(D0, 9))
    h.step(local(D0, 9))
    h.step(local(D0 + timedelta(days=1), 10))  # the lock is offline: a backup code is issued
    assert ("backup_code_issued", "GONE1") in issues(h)
    h.stays.delete_reservation(hex_id("harness", "GONE1"))
    h.step(local(D0 + timedelta(days=1), 11))  # looked up by id: gone, flagged missing
    found = issues(h)
    assert ("backup_code_issued", "GONE1") not in found
    assert ("backup_code_outstanding", "GONE1") in found
    [row] = [r for r in h.attention() if r["issue"] == "backup_code_outstanding"]
    assert "stay gone from Stays" in row["what_to_do"]


def test_webhooks_refused_in_the_last_hour_are_listed_until_one_is_accepted(made):
    import httpx

    world = World()
    listing, _ = world.listing(1, "Lapa 50")
    world.stay("HOOKS", listing, D0 + timedelta(days=5), D0 + timedelta(days=7))
    h = made(world, local(D0, 9))
    h.step(local(D0, 9))
    h.start_receiver()
    try:
        wrong = h.webhook_url.rsplit("/", 1)[0] + "/not-the-token"
        refused = httpx.post(wrong, json={"action": "reservation.modified", "payload": {"_id": "x"}}, timeout=10)
        assert refused.status_code == 404
        [row] = [r for r in h.attention() if r["issue"] == "webhook_failed"]
        assert "refused" in row["what_to_do"] and "--print-url" in row["what_to_do"]
        h.stays.modify_reservation(hex_id("harness", "HOOKS"), checkOutDate=str(D0 + timedelta(days=8)))
        assert h.stays.wait_for_webhooks(10)
        assert not [r for r in h.attention() if r["issue"] == "webhook_failed"]
    finally:
        h.stop_receiver()


def test_pin_changed_leaves_the_list_once_a_channel_delivered_the_new_digits(made):
    world = World()
    listing, lock = world.listing(1, "Pompeia 60")
    world.stay("DIGIT", listing, D0 + timedelta(days=1), D0 + timedelta(days=3))
    h = made(world, local(D0, 9), LOCK_PIPELINE_STAYS_WRITE_BACK="pin")
    h.step(local(D0, 9))
    h.deliver()
    h.tuya.set_modify_supported(lock, False)  # this lock will not move a PIN: new digits, pin_changed
    h.stays.modify_reservation(hex_id("harness", "DIGIT"), checkOutDate=str(D0 + timedelta(days=4)))
    h.step(local(D0, 9, 30))
    assert ("pin_changed", "DIGIT") in issues(h)
    for _ in range(3):
        h.deliver()
    assert ("pin_changed", "DIGIT") not in issues(h)
