"""The PIN life cycle end to end: real sensor and jobs, real Postgres, sandbox Stays and Tuya,
a controlled clock moved through a week. At every step the sandbox lock's own answer to
"would this PIN open this door now?" must agree with the stay calendar."""

from __future__ import annotations

from collections import Counter
from datetime import date, timedelta

import pytest
from sqlalchemy import text

from lock_pipeline_tests.harness import Harness, World, local

D0 = date(2026, 11, 24)  # Tuesday


@pytest.fixture
def world():
    return World()


@pytest.fixture
def harness(database_url, world, tmp_path, request):
    start = getattr(request, "param", None) or local(D0 - timedelta(days=1), 9)
    made = []

    def make(start_at=start):
        h = Harness(database_url, world, tmp_path, start_at)
        made.append(h)
        return h

    yield make
    for h in made:
        h.close()


def test_a_week_on_one_lock_with_same_day_turnover_cancellations_and_changes(world, harness):
    l1, k1 = world.listing(1, "Vila Mariana 11")
    l2, k2 = world.listing(2, "Bela Vista 22")
    l3, k3 = world.listing(3, "Perdizes 33")
    world.stay("TURN1", l1, D0, D0 + timedelta(days=2), guest="Ana Lima")
    world.stay("TURN2", l1, D0 + timedelta(days=2), D0 + timedelta(days=4), guest="João Souza")
    never = world.stay("CANC1", l2, D0 + timedelta(days=1), D0 + timedelta(days=3))
    later = world.stay("CANC2", l2, D0 + timedelta(days=4), D0 + timedelta(days=6))
    early = world.stay("EARLY", l3, D0, D0 + timedelta(days=5))
    h = harness()

    h.step(local(D0 - timedelta(days=1), 9))  # Monday 09:00: programming horizon is 48 h
    assert h.state_of("TURN1") in ("active",)
    assert h.state_of("TURN2") == "scheduled"  # access opens Thu 13:00, beyond 48 h
    h.stays.cancel_reservation(never["_id"])  # cancelled before its PIN exists
    h.step(local(D0 - timedelta(days=1), 18))
    assert h.state_of("CANC1") == "cancelled" and h.pins_of("CANC1") == []

    h.step(local(D0, 13, 30))  # Tue 13:30: TURN1's access is open
    assert h.opens("TURN1", k1) and h.opens("EARLY", k3)

    h.step(local(D0 + timedelta(days=1), 10))  # Wed: early check-out moved from Sun to Thu
    h.stays.modify_reservation(early["_id"], checkOutDate=(D0 + timedelta(days=2)).isoformat())
    h.step(local(D0 + timedelta(days=1), 10, 30))
    assert h.opens("EARLY", k3)  # the guest is never without a working PIN
    assert not h.opens("EARLY", k3, at=local(D0 + timedelta(days=3), 9))  # but not past the new check-out

    h.step(local(D0 + timedelta(days=2), 10))  # Thu 10:00: same-day turnover on lock 1
    assert h.opens("TURN1", k1) and not h.opens("TURN2", k1)
    h.step(local(D0 + timedelta(days=2), 11, 1))  # TURN1 checked out at 11:00
    assert not h.opens("TURN1", k1)
    h.step(local(D0 + timedelta(days=2), 13, 1))  # TURN2's access opens at 13:00
    assert h.opens("TURN2", k1)

    h.step(local(D0 + timedelta(days=2), 16))  # CANC2 (Sat arrival) got its PIN; then it is cancelled
    assert h.state_of("CANC2") == "active"
    h.stays.cancel_reservation(later["_id"])
    h.step(local(D0 + timedelta(days=2), 16, 30))
    assert h.state_of("CANC2") == "revoked"
    assert not h.opens("CANC2", k2, at=local(D0 + timedelta(days=4), 16))  # the lock will not let them in on Saturday

    with h.engine.connect() as conn:
        per_stay = dict(conn.execute(text("""
            SELECT r.code, count(*) FROM pipeline.access_codes c JOIN pipeline.reservations r USING (reservation_id)
            GROUP BY r.code""")).all())
    assert per_stay["TURN1"] == 1 and per_stay["TURN2"] == 1 and per_stay["CANC2"] == 1
    assert per_stay["EARLY"] == 1  # the same PIN, moved to the shortened window (the guest keeps the digits)


def test_extended_and_moved_stays_and_a_remap(world, harness):
    l1, k1 = world.listing(1, "Pinheiros 41")
    l2, k2 = world.listing(2, "Moema 52")
    extended = world.stay("LONGR", l1, D0, D0 + timedelta(days=2))
    moved = world.stay("MOVED", l2, D0 + timedelta(days=1), D0 + timedelta(days=3))
    h = harness()
    h.step(local(D0, 14))
    assert h.opens("LONGR", k1) and h.state_of("MOVED") == "active"

    h.stays.modify_reservation(extended["_id"], checkOutDate=(D0 + timedelta(days=4)).isoformat())
    h.stays.modify_reservation(moved["_id"], checkInDate=(D0 + timedelta(days=10)).isoformat(),
                               checkOutDate=(D0 + timedelta(days=12)).isoformat())
    h.step(local(D0 + timedelta(days=1), 9))
    assert h.opens("LONGR", k1, at=local(D0 + timedelta(days=3), 12))  # valid for the extra nights
    assert h.state_of("MOVED") == "scheduled"  # old window revoked, new one not due yet
    assert not h.opens("MOVED", k2, at=local(D0 + timedelta(days=1), 16))

    # The admin moves listing 1 to a new lock while the guest is in.
    from lock_pipeline.sandbox.seed import SeedLock

    new_lock = SeedLock(device_id="ebnewlock000000000001", name="Fechadura nova Pinheiros 41")
    h.tuya.add_lock(new_lock)
    h.sync()
    from lock_pipeline.mapping import store

    with h.engine.begin() as conn:
        store.set_mapping(conn, l1_code(h, l1), new_lock.device_id, "test-admin", h.now)
    h.step(local(D0 + timedelta(days=1), 9, 30))
    assert h.opens("LONGR", new_lock.device_id) and not h.opens("LONGR", k1)
    with h.engine.connect() as conn:
        events = conn.execute(text("SELECT action FROM pipeline.lock_mapping_events WHERE listing_id = :l"), {"l": l1}).scalars().all()
    assert "remap" in events


def l1_code(h: Harness, listing_id: str) -> str:
    with h.engine.connect() as conn:
        return conn.execute(text("SELECT short_code FROM pipeline.listings WHERE listing_id = :l"), {"l": listing_id}).scalar()


def test_an_offline_lock_gets_the_pin_when_it_wakes_and_is_flagged_until_then(world, harness):
    l1, k1 = world.listing(1, "Jardins 61", online=False)
    world.stay("SLEEP", l1, D0 + timedelta(days=1), D0 + timedelta(days=3))
    h = harness()
    h.step(local(D0, 9))  # programmed 30 h ahead; the lock is offline
    assert h.state_of("SLEEP") == "pending_on_lock"
    h.step(local(D0 + timedelta(days=1), 6))  # 9 h before access opens: a person is told
    with h.engine.begin() as conn:
        conn.execute(text("SET LOCAL lock_pipeline.now = :n"), {"n": h.now.isoformat()})
        issues = conn.execute(text("SELECT issue, reservation_code FROM admin.attention")).all()
    assert ("pin_not_on_lock_yet", "SLEEP") in [tuple(i) for i in issues]
    assert ("lock_offline_arrival_soon", "SLEEP") in [tuple(i) for i in issues]
    h.tuya.set_online(k1, True)  # comes online an hour before arrival
    h.step(local(D0 + timedelta(days=1), 14))
    assert h.state_of("SLEEP") == "active" and h.opens("SLEEP", k1)


def test_a_throttled_cloud_still_gets_every_pin_exactly_once(world, harness):
    listings = [world.listing(i, f"Centro {i}") for i in range(1, 4)]
    for i, (listing_id, _device) in enumerate(listings):
        world.stay(f"THR0{i}", listing_id, D0, D0 + timedelta(days=2))
    h = harness()
    h.move_to(local(D0, 9))
    h.sync()
    h.tuya.inject("throttle", count=4)
    h.settle()
    h.assert_truth()
    for i, (_listing, device) in enumerate(listings):
        assert h.state_of(f"THR0{i}") == "active"
        assert len([p for p in h.tuya.pins(device) if p.phase in (1, 2)]) == 1


def _first_generate_dies(world, harness, monkeypatch, code: str, street: str, dies):
    """One stay due now; its first generate run dies inside ``_program`` as ``dies`` says, then
    the clock moves past the stale-row limit and the retry's Tuya calls are counted."""
    from lock_pipeline.access import executor as executor_module

    listing, device = world.listing(1, street)
    world.stay(code, listing, D0, D0 + timedelta(days=2))
    h = harness()
    h.move_to(local(D0, 9))
    h.sync()
    real_program = executor_module.AccessExecutor._program
    monkeypatch.setattr(executor_module.AccessExecutor, "_program",
                        lambda self, *args, **kwargs: dies(real_program, self, *args, **kwargs))
    [killed] = h.tick()
    assert not killed.success and h.state_of(code) == "programming"
    monkeypatch.setattr(executor_module.AccessExecutor, "_program", real_program)
    pins_after_kill = len(h.tuya.pins(device))

    h.move_to(local(D0, 9, 11))  # the stale programming row is picked up again
    h.sync()
    seen = len(h.tuya.request_log)
    [retry] = h.tick()
    assert retry.success
    return h, device, pins_after_kill, calls_by_kind(h.tuya.request_log[seen:])


def test_a_run_killed_between_tuya_and_the_commit_adopts_its_pin(world, harness, monkeypatch):
    def program_then_die(real_program, self, *args, **kwargs):
        real_program(self, *args, **kwargs)  # the PIN now exists on the lock...
        raise SystemExit("process killed")  # ...and the process dies before the commit

    h, k1, pins_after_kill, retry_calls = _first_generate_dies(
        world, harness, monkeypatch, "KILLD", "Consolação 71", program_then_die)
    assert pins_after_kill == 1
    # The row existed before this attempt, so the lock's list is read, and the PIN found there is adopted.
    assert retry_calls["list_temp_passwords"] == 1 and retry_calls["create"] == retry_calls["ticket"] == 0, retry_calls
    h.settle()
    assert h.state_of("KILLD") == "active"
    assert len(h.tuya.pins(k1)) == 1  # adopted, not created twice
    assert h.opens("KILLD", k1, at=local(D0, 14))


def test_a_run_killed_before_tuya_searches_the_lock_then_creates_once(world, harness, monkeypatch):
    """Killed after the code row was committed, before any Tuya call: the retry cannot know that,
    so it reads the lock's list first, finds nothing and creates the PIN once."""
    def die_before_tuya(real_program, self, *args, **kwargs):
        raise SystemExit("process killed")

    h, k1, pins_after_kill, calls = _first_generate_dies(
        world, harness, monkeypatch, "EARLY", "Higienópolis 72", die_before_tuya)
    assert pins_after_kill == 0
    assert (calls["list_temp_passwords"], calls["ticket"], calls["create"]) == (1, 1, 1), calls
    h.settle()
    assert h.state_of("EARLY") == "active" and len(h.tuya.pins(k1)) == 1


def calls_by_kind(log: list[tuple[str, str]]) -> Counter:
    """The sandbox's request log, counted by what each call is."""
    kinds: Counter = Counter()
    for method, path in log:
        if path.startswith("/v1.0/token"):
            kind = "token_refresh" if path != "/v1.0/token" else "token"
        elif path.endswith("/door-lock/password-ticket"):
            kind = "ticket"
        elif method == "POST" and path.endswith("/door-lock/temp-password"):
            kind = "create"
        elif method == "GET" and path.endswith("/door-lock/temp-passwords"):
            kind = "list_temp_passwords"
        elif method == "GET" and "/door-lock/temp-password/" in path:
            kind = "get_temp_password"
        elif method == "DELETE":
            kind = "delete"
        else:
            kind = f"{method} {path}"
        kinds[kind] += 1
    return kinds


def _stays_due_now(world, harness, n: int, *, code_prefix: str, street: str):
    """n listings with a lock each and a stay arriving today; synced at 09:00, nothing run yet."""
    listings = [world.listing(i, f"{street} {i}") for i in range(1, n + 1)]
    for i, (listing_id, _device) in enumerate(listings):
        world.stay(f"{code_prefix}{i:02d}", listing_id, D0, D0 + timedelta(days=2))
    h = harness()
    h.move_to(local(D0, 9))
    h.sync()
    return h, listings


def test_a_burst_costs_a_ticket_and_a_create_per_pin_and_no_token_call(world, harness, monkeypatch):
    """More than 10 PINs due at once go in one run: one Tuya client for the run, using the token the
    deployment's runs share (an earlier run fetched it: no token call at all), then exactly a ticket
    and a create per PIN: no search of the lock's list for a row the attempt has just inserted, no
    phase read after the create. The codes say pending_on_lock (the create's answer does not say the
    lock has the PIN) until the next tick's confirm reads the phase."""
    from lock_pipeline.access import executor as executor_module

    n = 12  # > SINGLE_ACTION_RUNS_UP_TO: batched into one run
    h, listings = _stays_due_now(world, harness, n, code_prefix="BRST", street="Rua Burst")
    clients = []
    real_init = executor_module.AccessExecutor.__init__

    def remember_client(self, engine, tuya, *args, **kwargs):
        clients.append(tuya)
        real_init(self, engine, tuya, *args, **kwargs)

    monkeypatch.setattr(executor_module.AccessExecutor, "__init__", remember_client)

    seen = len(h.tuya.request_log)
    [run] = h.tick()
    assert run.success
    calls = calls_by_kind(h.tuya.request_log[seen:])
    assert calls == Counter({"ticket": n, "create": n}), calls
    assert len(clients) == n and len({id(c) for c in clients}) == 1  # one client for every step of the run
    assert clients[0]._http.is_closed  # closed when the run ended
    codes = [h.state_of(f"BRST{i:02d}") for i in range(n)]
    assert codes == ["pending_on_lock"] * n  # created, not yet confirmed: the database does not claim "active"
    for _listing, device in listings:
        assert [p.phase for p in h.tuya.pins(device)] == [2]  # (the sandbox's locks are online: on the lock)

    seen = len(h.tuya.request_log)
    [confirms] = h.tick()  # the next tick confirms them: one phase read each, in one run
    assert confirms.success
    assert calls_by_kind(h.tuya.request_log[seen:]) == Counter({"get_temp_password": n})
    assert [h.state_of(f"BRST{i:02d}") for i in range(n)] == ["active"] * n
    assert h.tick() == []
    h.assert_truth()


def test_a_long_lived_client_renews_an_expired_token_between_steps(world, harness, monkeypatch):
    """The run's one client outlives its token: the cloud answers 1010, the client renews with its
    refresh token and repeats the call, and every PIN is still created exactly once."""
    from lock_pipeline.access import executor as executor_module

    n = 11
    h, listings = _stays_due_now(world, harness, n, code_prefix="TOKN", street="Rua Token")
    real_perform = executor_module.AccessExecutor.perform
    performed = []

    def expire_midway(self, action, **kwargs):
        performed.append(action.key)
        if len(performed) in (4, 8):
            h.tuya.expire_tokens()  # the token the run holds is now refused with 1010
        return real_perform(self, action, **kwargs)

    monkeypatch.setattr(executor_module.AccessExecutor, "perform", expire_midway)
    seen = len(h.tuya.request_log)
    [run] = h.tick()
    assert run.success
    calls = calls_by_kind(h.tuya.request_log[seen:])
    # the shared token (no grant), two renewals by refresh token, and the two calls refused with 1010 sent again
    assert calls == Counter({"token_refresh": 2, "ticket": n + 2, "create": n}), calls
    assert all(len([p for p in h.tuya.pins(device) if p.phase in (1, 2)]) == 1 for _l, device in listings)
    h.settle()
    assert [h.state_of(f"TOKN{i:02d}") for i in range(n)] == ["active"] * n


def test_a_repeated_tick_never_doubles_a_run(world, harness):
    l1, _k1 = world.listing(1, "Liberdade 81")
    world.stay("TWICE", l1, D0, D0 + timedelta(days=2))
    h = harness()
    h.move_to(local(D0, 9))
    h.sync()
    from dagster import build_sensor_context

    from lock_pipeline.orchestration.access import pin_actions_sensor

    resources = {key: h.defs.resources[key] for key in ("postgres", "clock", "settings")}
    first = pin_actions_sensor(build_sensor_context(instance=h.instance, cursor=None, resources=resources))
    again = pin_actions_sensor(build_sensor_context(instance=h.instance, cursor=None, resources=resources))
    assert [r.run_key for r in first] == [r.run_key for r in again]  # same key: Dagster launches it once
    assert first[0].tags["lock_pipeline/stay"] == "TWICE"
    assert first[0].run_key.startswith("generate:TWICE:")


def _check(result, name):
    return next(e for e in result.get_asset_check_evaluations() if e.check_name == name)


def test_the_audit_revokes_orphans_leaves_foreign_pins_and_names_violations(world, harness):
    l1, k1 = world.listing(1, "Aclimação 91")
    world.stay("AUDIT", l1, D0, D0 + timedelta(days=2))
    h = harness()
    h.step(local(D0, 9))
    owner = h.tuya.add_foreign_pin(k1, "5820731", "Dono", local(D0 - timedelta(days=300), 0), local(D0 + timedelta(days=300), 0))
    orphan = h.tuya.add_foreign_pin(k1, "6091847", "LP ZZZZZ Ghost", local(D0, 0), local(D0 + timedelta(days=3), 0))
    result = h.sync()
    assert _check(result, "no_pin_valid_outside_its_stay").passed
    assert [p.password_id for p in h.tuya.pins(k1) if p.phase == 2 and p.password_id == orphan] == []  # orphan revoked
    assert any(p.password_id == owner and p.phase == 2 for p in h.tuya.pins(k1))  # the owner's code untouched
    assert h.opens("AUDIT", k1, at=local(D0, 14))

    # Someone marks the code revoked in the database by hand: the lock still holds it.
    with h.engine.begin() as conn:
        conn.execute(text("UPDATE pipeline.access_codes SET state = 'revoked'"))
    result = h.sync()
    violation = _check(result, "no_pin_valid_outside_its_stay")
    assert not violation.passed
    assert violation.metadata["offending_rows"].value[0]["reservation_code"] == "AUDIT"


def test_every_stay_in_its_window_needs_an_active_pin(world, harness):
    l1, k1 = world.listing(1, "Butantã 95", online=False)
    world.stay("NOPIN", l1, D0, D0 + timedelta(days=2))
    h = harness()
    h.step(local(D0, 14))  # window open, lock offline: PIN waits at phase 1
    result = h.sync()
    missing = _check(result, "every_stay_in_its_window_has_an_active_pin")
    assert not missing.passed
    assert missing.metadata["offending_rows"].value == [{"reservation_code": "NOPIN", "lock_id": k1, "code_states": "pending_on_lock"}]


def test_a_failed_pin_is_surfaced_recorded_and_reprocessed(world, harness):
    from dagster import DagsterEventType, DagsterRunStatus, build_run_status_sensor_context

    from lock_pipeline.orchestration.access import record_failed_runs

    l1, k1 = world.listing(1, "Sé 97")
    world.stay("FAILS", l1, D0, D0 + timedelta(days=2))
    h = harness()
    h.move_to(local(D0, 9))
    h.sync()
    h.tuya.inject("server_error", count=100, path_contains="temp-password")  # the cloud keeps failing creates
    [run] = h.tick()  # 1 try + 3 retries (2 s, 4 s, 8 s), then failed
    assert not run.success
    h.tuya.clear_faults()
    with h.engine.connect() as conn:
        code = conn.execute(text("SELECT state, attempts, last_error, next_attempt_at FROM pipeline.access_codes")).one()
    assert code.state == "failed" and code.attempts == 4 and "500" in code.last_error
    assert code.next_attempt_at is not None and code.next_attempt_at > h.now

    failure_event = next(e for e in h.instance.all_logs(run.run_id)
                         if e.dagster_event and e.dagster_event.event_type == DagsterEventType.RUN_FAILURE)
    context = build_run_status_sensor_context(
        sensor_name="record_failed_runs", dagster_instance=h.instance, dagster_run=run.dagster_run,
        dagster_event=failure_event.dagster_event, resources={k: h.defs.resources[k] for k in ("postgres", "clock")},
    ).for_run_failure()
    record_failed_runs(context)
    with h.engine.begin() as conn:
        conn.execute(text("SET LOCAL lock_pipeline.now = :n"), {"n": h.now.isoformat()})
        issues = {tuple(r) for r in conn.execute(text("SELECT issue, reservation_code FROM admin.attention"))}
    assert ("pin_failed", "FAILS") in issues and ("run_failed", "FAILS") in issues
    assert run.dagster_run.status == DagsterRunStatus.FAILURE

    reprocess = h.defs.resolve_job_def("reprocess_stay_job")
    result = reprocess.execute_in_process(run_config={"ops": {"reprocess_stay": {"config": {"reservation_code": "fails"}}}},
                                          instance=h.instance)
    assert result.success and h.state_of("FAILS") == "active" and h.opens("FAILS", k1, at=local(D0, 14))
    assert len([p for p in h.tuya.pins(k1) if p.phase == 2]) == 1
    unknown = reprocess.execute_in_process(run_config={"ops": {"reprocess_stay": {"config": {"reservation_code": "NOPE1"}}}},
                                           instance=h.instance, raise_on_error=False)
    assert not unknown.success
