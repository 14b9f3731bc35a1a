"""Bad input, end to end through the sync and the jobs: each case gets a clear error AND loses or
changes nothing else (reservations, codes, the PINs on the locks, the mappings).

Record-level parsing, the Stays client and the Tuya client have their own tests
(test_stays_records.py, test_stays_client.py, test_stays_sync.py, test_tuya_client.py); here the
same kinds of input go through the real sync run, the real PIN runs, the CLI and the job configs.
"""

from __future__ import annotations

import copy
from datetime import timedelta

import pytest
from cryptography.fernet import Fernet
from dagster import DagsterInstance
from sqlalchemy import text

from lock_pipeline.cli import main
from lock_pipeline.sandbox.seed import hex_id, reservation_record
from lock_pipeline.sandbox.tuya_cloud import _fail, _ok, _Reply
from lock_pipeline.settings import SettingsError, load_settings
from lock_pipeline_tests.harness import Harness, World, local
from lock_pipeline_tests.helpers import make_settings
from lock_pipeline_tests.test_access_lifecycle import D0
from season.driver import STAYS_CLIENT_ID, run_sync, simulation_definitions
from season.faults import PostgresFault


@pytest.fixture
def h(database_url, tmp_path):
    """Three listings: a guest in the house, one arriving tomorrow (PIN on the lock), one in 5 days."""
    world = World()
    la, _ka = world.listing(1, "Vila Olímpia 101")
    lb, _kb = world.listing(2, "Itaim Bibi 202")
    lc, _kc = world.listing(3, "Brooklin 303")
    world.stay("INHSE", la, D0 - timedelta(days=1), D0 + timedelta(days=2), guest="Ana Lima")
    world.stay("TMRRW", lb, D0 + timedelta(days=1), D0 + timedelta(days=3), guest="João Souza")
    world.stay("LATER", lc, D0 + timedelta(days=5), D0 + timedelta(days=7), guest="Rita Alves")
    harness = Harness(database_url, world, tmp_path, local(D0, 10))
    harness.settle()
    assert harness.state_of("INHSE") == "active" and harness.state_of("TMRRW") == "active"
    assert harness.state_of("LATER") == "scheduled"
    yield harness
    harness.close()


@pytest.fixture
def fast_retries(h):
    h.use_step_retry_delay(0.02)
    yield
    h.use_step_retry_delay(None)


def snapshot(h: Harness) -> dict:
    """Everything a bad input must not touch: stays, codes, mappings, and what each lock holds."""
    with h.engine.connect() as conn:
        data = {
            "reservations": conn.execute(text(
                "SELECT reservation_id, code, listing_id, status, check_in_at, check_out_at, content_hash, "
                "missing_since, cancelled_at FROM pipeline.reservations ORDER BY 1")).all(),
            "codes": conn.execute(text(
                "SELECT code_id, reservation_id, device_id, valid_from, valid_until, state, tuya_password_id, "
                "pin_ciphertext FROM pipeline.access_codes ORDER BY 1")).all(),
            "listings": conn.execute(text("SELECT listing_id, content_hash FROM pipeline.listings ORDER BY 1")).all(),
            "mappings": conn.execute(text("SELECT listing_id, device_id, status FROM pipeline.lock_mappings ORDER BY 1")).all(),
            "devices": conn.execute(text("SELECT device_id FROM pipeline.locks ORDER BY 1")).scalars().all(),
        }
    data["pins"] = {d: [(p.password_id, p.phase, p.effective, p.invalid) for p in h.tuya.pins(d)] for d in data["devices"]}
    return data


def last_log(h: Harness, date_type: str | None = None) -> dict:
    where = "WHERE date_type = :t" if date_type else ""
    with h.engine.connect() as conn:
        return dict(conn.execute(text(f"SELECT * FROM pipeline.reconciliation_logs {where} ORDER BY sync_id DESC LIMIT 1"),
                                 {"t": date_type}).mappings().one())


def quarantine(h: Harness) -> dict[str | None, str]:
    with h.engine.connect() as conn:
        return {r.record_id: r.reason for r in conn.execute(text("SELECT record_id, reason FROM pipeline.quarantined_records"))}


def raw_of(h: Harness, code: str) -> dict:
    return next(r for r in h.stays.reservations() if r["id"] == code)


def attention(h: Harness) -> list[tuple]:
    return [(row["issue"], row["reservation_code"]) for row in h.attention()]


# ----------------------------------------------------------------- Stays records through the sync

def _drop(key):
    return lambda raw: {k: v for k, v in raw.items() if k != key}


def _set(**changes):
    return lambda raw: {**raw, **changes}


NEW_BAD_RECORDS = [
    ("missing _idlisting", _drop("_idlisting"), "_idlisting is missing"),
    ("missing short code", _drop("id"), "id is missing"),
    ("missing check-in", _drop("checkInDate"), "checkInDate is missing"),
    ("check-in is a number", _set(checkInDate=20261130), "is not a date (YYYY-MM-DD)"),
    ("type is a list", _set(type=["booked"]), "type ['booked'] is not one of"),
    ("listing id is a number", _set(_idlisting=42), "_idlisting 42 is a int, not a string"),
    ("check-in time 25:00", _set(checkInTime="25:00"), "is not a time of day"),
    ("check-out in the year 9999", _set(checkOutDate="9999-01-01"), "outside the years"),
    ("check-out on 30 February", _set(checkOutDate="2027-02-30"), "not a calendar date"),
    ("400 nights", _set(checkOutDate=(D0 + timedelta(days=404)).isoformat()), "longer than 366"),
    ("same-day guest stay", _set(checkOutDate=(D0 + timedelta(days=4)).isoformat()), "must check out after the check-in day"),
]


def test_bad_new_records_are_quarantined_naming_the_field_and_nothing_else_changes(h):
    listing_id = raw_of(h, "LATER")["_idlisting"]
    expected = {}
    for number, (name, breaks, reason) in enumerate(NEW_BAD_RECORDS):
        good = reservation_record(reservation_id=hex_id("bad", name), code=f"BAD{number:02d}", listing_id=listing_id,
                                  check_in=D0 + timedelta(days=4), check_out=D0 + timedelta(days=5))
        bad = breaks(good)
        h.stays.put_reservation(bad)
        expected[bad["_id"] if isinstance(bad.get("_id"), str) else bad["id"]] = reason
    before = snapshot(h)
    h.settle()
    assert snapshot(h) == before  # no stay written, changed or flagged; no PIN work
    reasons = quarantine(h)
    for record_id, reason in expected.items():
        assert reason in reasons[record_id], (record_id, reasons.get(record_id))
    assert len(reasons) == len(NEW_BAD_RECORDS)
    log = last_log(h, "arrival")
    assert (log["status"], log["quarantined"]) == ("partial", len(NEW_BAD_RECORDS))


EXISTING_GOES_BAD = [
    ("check-out before check-in", _set(checkOutDate=(D0 - timedelta(days=3)).isoformat()), "check-out is before check-in"),
    ("moved to an unknown listing", _set(_idlisting=hex_id("nowhere")), "is not a known listing"),
    ("type garbage", _set(type="booked!"), "is not one of"),
    ("dates gone", _drop("checkOutDate"), "checkOutDate is missing"),
]


@pytest.mark.parametrize("name, breaks, reason", EXISTING_GOES_BAD, ids=[c[0] for c in EXISTING_GOES_BAD])
def test_a_known_stay_whose_record_turns_bad_keeps_its_pin_past_the_missing_tolerance(h, name, breaks, reason):
    """A malformed record is not an absent one: it never flags the stay missing, so its PIN is never revoked."""
    h.stays.put_reservation(breaks(raw_of(h, "TMRRW")))
    before = snapshot(h)
    h.settle()
    assert snapshot(h) == before
    assert reason in quarantine(h)[hex_id("harness", "TMRRW")]
    h.move_to(h.now + timedelta(hours=30))  # past LOCK_PIPELINE_MISSING_TOLERANCE_HOURS (24): its window is open
    h.settle()
    with h.engine.connect() as conn:
        row = conn.execute(text("SELECT status, missing_since FROM pipeline.reservations WHERE code = 'TMRRW'")).one()
    assert tuple(row) == ("confirmed", None)
    assert h.state_of("TMRRW") == "active"
    [(device, _pin)] = h.pins_of("TMRRW")
    assert h.opens("TMRRW", device)


def test_a_duplicate_id_in_the_feed_keeps_the_first_copy_and_cancels_nothing(h, monkeypatch):
    real = h.stays._find_reservations

    def with_a_cancelled_twin(query):
        rows = real(query)
        twin = next((r for r in rows if r.get("id") == "TMRRW"), None)
        return rows + ([{**copy.deepcopy(twin), "type": "canceled"}] if twin else [])

    monkeypatch.setattr(h.stays, "_find_reservations", with_a_cancelled_twin)
    before = snapshot(h)
    h.settle()
    assert snapshot(h) == before
    assert "duplicate _id" in quarantine(h)[hex_id("harness", "TMRRW")]
    assert h.state_of("TMRRW") == "active"


@pytest.mark.parametrize("fault, message", [
    ("oversized", "21 rows for limit=20"),
    ("object", "answer is a JSON dict, not an array"),
    ("html", "answer is not JSON (text/html"),
])
def test_a_broken_page_fails_the_sync_clearly_and_changes_nothing(h, fault, message):
    for i in range(25):  # more than one page, so an oversized page shows
        h.stays.put_reservation(reservation_record(
            reservation_id=hex_id("page", i), code=f"PG{i:03d}", listing_id=raw_of(h, "LATER")["_idlisting"],
            check_in=D0 + timedelta(days=20 + 2 * i), check_out=D0 + timedelta(days=21 + 2 * i)))
    h.settle()
    before = snapshot(h)
    h.move_to(h.now + timedelta(minutes=30))  # the next scheduled sync (the views order syncs by time)
    if fault == "html":
        h.stays.set_html_errors(True)
    else:
        h.stays.set_page_fault(fault)
    result = h.sync()
    assert not result.success
    h.settle()
    assert snapshot(h) == before
    log = last_log(h)
    assert log["status"] == "failed" and message in log["message"] and "nothing changed" in log["message"]
    assert ("sync_failing", None) in attention(h)


# ----------------------------------------------------------------- Tuya answers during a PIN run

def answer(h: Harness, monkeypatch, method: str, path_end: str, reply: _Reply, *, after_real: bool = False) -> None:
    """The sandbox cloud answers ``method ...path_end`` with ``reply`` (after serving it for real, if asked)."""
    real = h.tuya._handle

    def handle(m, target, headers, body):
        if m == method and target.split("?")[0].endswith(path_end):
            if after_real:
                real(m, target, headers, body)
            return reply
        return real(m, target, headers, body)

    monkeypatch.setattr(h.tuya, "_handle", handle)


def lp_pins(h: Harness, code: str) -> list:
    """The stay's PINs the locks hold (to be sent, on the lock, or to be deleted)."""
    return [p for d in snapshot(h)["devices"] for p in h.tuya.pins(d) if p.name.startswith(f"LP {code} ") and p.phase in (1, 2, 3)]


def make_later_due(h: Harness) -> None:
    h.move_to(local(D0 + timedelta(days=3), 12))  # the first two guests have left: their PINs are revoked
    h.settle()
    h.move_to(local(D0 + timedelta(days=3), 13, 30))  # LATER's PIN falls due (48 h before access opens)
    h.sync()


def code_row(h: Harness, code: str):
    with h.engine.connect() as conn:
        return conn.execute(text("""
            SELECT c.state, c.last_error, c.attempts FROM pipeline.access_codes c
            JOIN pipeline.reservations r USING (reservation_id) WHERE r.code = :c
        """), {"c": code}).all()


TUYA_ANSWERS = [
    ("malformed JSON", "POST", "/door-lock/temp-password", _Reply(200, b'{"success": tru'), "answer is not JSON (HTTP 200"),
    ("HTML error page", "POST", "/door-lock/temp-password",
     _Reply(502, b"<html><body><h1>502 Bad Gateway</h1></body></html>", "text/html"), "HTTP 502, text/html, not JSON"),
    ("unknown code", "POST", "/door-lock/temp-password", _fail(424242, "a brand new kind of error"),
     "Tuya 424242 a brand new kind of error"),
    ("list entries missing fields", "GET", "/door-lock/temp-passwords", _ok([{"id": 7, "name": "LP X"}]),
     "temp password without effective_time / invalid_time"),
    ("ticket without its key", "POST", "/door-lock/password-ticket", _ok({"ticket_id": "t1"}),
     "ticket answer lacks ticket_id / ticket_key"),
]


@pytest.mark.parametrize("name, method, path, reply, error", TUYA_ANSWERS, ids=[c[0] for c in TUYA_ANSWERS])
def test_a_bad_tuya_answer_leaves_the_code_failed_with_its_reason_and_nothing_else_changed(
        h, monkeypatch, fast_retries, name, method, path, reply, error):
    make_later_due(h)
    others = snapshot(h)
    answer(h, monkeypatch, method, path, reply)
    if path == "/door-lock/temp-passwords":
        # The lock's list is read only once an attempt may have created the PIN: the first create
        # fails ambiguously (HTTP 500), so every retry reads the (broken) list before creating.
        h.tuya.inject("server_error", count=1, path_contains="/door-lock/temp-password")
    [run] = h.tick()
    assert not run.success
    [(state, last_error, attempts)] = code_row(h, "LATER")
    assert state == "failed" and error in last_error, last_error
    assert lp_pins(h, "LATER") == []  # nothing half-made on the lock
    after = snapshot(h)
    assert after["reservations"] == others["reservations"] and after["mappings"] == others["mappings"]
    assert [c for c in after["codes"] if c.reservation_id != hex_id("harness", "LATER")] == \
        [c for c in others["codes"] if c.reservation_id != hex_id("harness", "LATER")]
    assert ("pin_failed", "LATER") in attention(h)


def test_a_create_whose_answer_lacks_the_id_is_adopted_not_doubled(h, monkeypatch, fast_retries):
    """The cloud made the PIN but its answer has no id: the retry finds it by name and adopts it."""
    make_later_due(h)
    answer(h, monkeypatch, "POST", "/door-lock/temp-password", _ok({}), after_real=True)
    [run] = h.tick()
    assert run.success
    [(state, _error, _attempts)] = code_row(h, "LATER")
    assert state == "active"
    assert len(lp_pins(h, "LATER")) == 1


def test_a_malformed_fault_on_every_lock_call_fails_the_code_and_no_duplicate(h, fast_retries):
    make_later_due(h)
    before = snapshot(h)
    h.tuya.inject("malformed", count=100, path_contains="/door-lock/")
    [run] = h.tick()
    assert not run.success
    [(state, last_error, _attempts)] = code_row(h, "LATER")
    assert state == "failed" and "no boolean 'success' field" in last_error
    h.tuya.clear_faults()
    assert snapshot(h)["pins"] == before["pins"]
    h.move_to(h.now + timedelta(minutes=16))  # the bounded retry schedule takes it again: exactly one PIN
    h.settle()
    assert h.state_of("LATER") == "active" and len(lp_pins(h, "LATER")) == 1


def failed_runs_of_later_on_a_full_lock(h: Harness, rounds: int) -> tuple[str, list]:
    """LATER falls due on a lock that refuses PINs (storage full, Tuya 2304); follow its failed
    code from retry to retry. Returns the lock and each round's code row."""
    make_later_due(h)
    device = next(d for d in snapshot(h)["devices"] if h.tuya.pins(d) == [])  # LATER's lock, empty so far
    h.tuya.set_storage_limit(device, 0)
    rows = []
    for _ in range(rounds):
        h.settle()
        with h.engine.connect() as conn:
            row = conn.execute(text("SELECT c.state, c.last_error, c.next_attempt_at, c.updated_at FROM pipeline.access_codes c "
                                    "JOIN pipeline.reservations r USING (reservation_id) WHERE r.code = 'LATER'")).one()
        assert row.state == "failed" and "2304" in row.last_error
        assert row.next_attempt_at is not None  # never given up while the guest's window is ahead
        rows.append(row)
        h.move_to(row.next_attempt_at)
    return device, rows


def test_a_lock_refusing_pins_is_retried_on_the_documented_schedule_then_programmed(h, fast_retries):
    """Storage full (Tuya 2304): each failed run is retried after 15 min, 1 h, 3 h, ... (README, Retries)."""
    device, rows = failed_runs_of_later_on_a_full_lock(h, 3)
    assert [r.next_attempt_at - r.updated_at for r in rows] == [timedelta(minutes=15), timedelta(hours=1), timedelta(hours=3)]
    assert ("pin_failed", "LATER") in attention(h)
    h.tuya.set_storage_limit(device, 20)  # someone cleared the lock's memory
    h.settle()
    assert h.state_of("LATER") == "active" and len(lp_pins(h, "LATER")) == 1


def test_a_lock_still_refusing_pins_near_arrival_is_retried_every_15_minutes(h, fast_retries):
    """The backing-off schedule must not leave a guest at the door: once it is spent (or would
    land later), the PIN is tried again 2 h before access opens, then every 15 min."""
    device, rows = failed_runs_of_later_on_a_full_lock(h, 8)
    urgent_from = local(D0 + timedelta(days=5), 11)  # LATER's access opens at 13:00
    near = [r.next_attempt_at for r in rows if r.next_attempt_at >= urgent_from]
    assert near[0] == urgent_from and len(near) >= 3, [r.next_attempt_at for r in rows]
    assert {b - a for a, b in zip(near, near[1:])} == {timedelta(minutes=15)}
    h.tuya.set_storage_limit(device, 20)
    h.settle()
    assert h.state_of("LATER") == "active" and len(lp_pins(h, "LATER")) == 1
    assert h.now < local(D0 + timedelta(days=5), 13)  # programmed before access opens


# ----------------------------------------------------------------- settings

def test_refused_stays_credentials_give_a_clear_failed_sync_row_and_change_nothing(h):
    from lock_pipeline.orchestration.resources import StaysResource

    before = snapshot(h)
    h.move_to(h.now + timedelta(minutes=30))  # the next scheduled sync (the views order syncs by time)
    for client_id, secret in ((STAYS_CLIENT_ID, "wrong-secret"), ("", "")):
        defs = simulation_definitions(h.database_url, stays=h.stays, tuya=h.tuya, clock=h.defs.resources["clock"],
                                      pin_key=h.pin_key, settings=make_settings(),
                                      extra={"stays": StaysResource(base_url=h.stays.base_url, client_id=client_id,
                                                                    client_secret=secret, backoff_seconds=0.01)})
        result = run_sync(defs, now=h.now, instance=DagsterInstance.ephemeral())
        assert not result.success
        log = last_log(h)
        assert log["status"] == "failed"
        assert "HTTP 401" in log["message"] and "STAYS_CLIENT_ID" in log["message"] and "STAYS_CLIENT_SECRET" in log["message"]
        assert "wrong-secret" not in log["message"]
        assert snapshot(h) == before
    assert ("sync_failing", None) in attention(h)
    assert h.sync().success  # the right credentials still work afterwards


def test_refused_tuya_credentials_fail_the_lock_refresh_and_change_nothing(h):
    from lock_pipeline.orchestration.resources import TuyaResource

    before = snapshot(h)
    defs = simulation_definitions(h.database_url, stays=h.stays, tuya=h.tuya, clock=h.defs.resources["clock"],
                                  pin_key=h.pin_key, settings=make_settings(),
                                  extra={"tuya": TuyaResource(base_url=h.tuya.base_url, access_id="someone-else",
                                                              access_secret="x" * 32, ca_bundle=h.tuya.ca_cert_path,
                                                              backoff_seconds=0.01)})
    result = run_sync(defs, now=h.now, instance=DagsterInstance.ephemeral())
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE" and e.step_key == "tuya_locks")
    assert "listing devices from Tuya failed, nothing changed" in str(failure.event_specific_data.error)
    assert "1005 clientId invalid" in str(failure.event_specific_data.error)
    assert snapshot(h) == before


@pytest.mark.parametrize("env, variable", [
    ({"STAYS_BASE_URL": "https://", "STAYS_CLIENT_ID": "i", "STAYS_CLIENT_SECRET": "s"}, "STAYS_BASE_URL='https://' has no host"),
    ({"STAYS_BASE_URL": "acme.stays.net/external/v1", "STAYS_CLIENT_ID": "i", "STAYS_CLIENT_SECRET": "s"},
     "STAYS_BASE_URL='acme.stays.net/external/v1' is not an http(s) URL"),
    ({"STAYS_CLIENT_ID": "i", "STAYS_CLIENT_SECRET": "s"}, "STAYS_BASE_URL is not"),
    ({"TUYA_ACCESS_ID": "x", "TUYA_ACCESS_SECRET": "s" * 32, "TUYA_BASE_URL": "https://"}, "TUYA_BASE_URL='https://' must be"),
    ({"TUYA_ACCESS_ID": "x", "TUYA_REGION": "us"}, "TUYA_ACCESS_SECRET is missing"),
    ({"TUYA_ACCESS_SECRET": "s" * 32, "TUYA_REGION": "us"}, "TUYA_ACCESS_ID is missing"),
    ({"LOCK_PIPELINE_PIN_KEY": "c2hvcnQta2V5LTE2Ynl0ZQ=="}, "LOCK_PIPELINE_PIN_KEY is not a Fernet key"),  # 16 bytes
    ({"LOCK_PIPELINE_PIN_KEY": Fernet.generate_key().decode()[:-2] + "!!"}, "LOCK_PIPELINE_PIN_KEY is not a Fernet key"),
    ({"LOCK_PIPELINE_TIMEZONE": "UTC+3"}, "LOCK_PIPELINE_TIMEZONE='UTC+3' is not an IANA time zone"),
    ({"LOCK_PIPELINE_TIMEZONE": "../../etc/passwd"}, "LOCK_PIPELINE_TIMEZONE"),
    ({"LOCK_PIPELINE_DATABASE_URL": "sqlite:///x.db"}, "LOCK_PIPELINE_DATABASE_URL must be a postgresql:// URL"),
])
def test_a_bad_setting_stops_the_start_naming_the_variable(monkeypatch, capsys, env, variable):
    with pytest.raises(SettingsError) as error:
        load_settings(env)
    assert variable in str(error.value)
    for name in ("STAYS_BASE_URL", "STAYS_CLIENT_ID", "STAYS_CLIENT_SECRET", "TUYA_ACCESS_ID", "TUYA_ACCESS_SECRET",
                 "TUYA_REGION", "TUYA_BASE_URL", "LOCK_PIPELINE_PIN_KEY", "LOCK_PIPELINE_TIMEZONE",
                 "LOCK_PIPELINE_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    import lock_pipeline.runtime as runtime

    monkeypatch.setattr(runtime, "prepare", lambda *a, **k: pytest.fail("`up` started something with a bad setting"))
    assert main(["up"]) == 2
    assert variable in capsys.readouterr().err


def test_a_pin_key_that_cannot_read_the_stored_pins_stops_the_start(h, tmp_path):
    from lock_pipeline.runtime import prepare

    url = h.engine.url.render_as_string(hide_password=False)
    base = {"LOCK_PIPELINE_HOME": str(tmp_path / "home"), "LOCK_PIPELINE_DATABASE_URL": url}
    with pytest.raises(SettingsError, match="LOCK_PIPELINE_PIN_KEY does not decrypt the PINs already stored"):
        prepare(load_settings({**base, "LOCK_PIPELINE_PIN_KEY": Fernet.generate_key().decode()}), with_sandboxes=False)
    prepare(load_settings({**base, "LOCK_PIPELINE_PIN_KEY": h.pin_key}), with_sandboxes=False).close()


# ----------------------------------------------------------------- CLI arguments and job configs

def test_reprocess_of_an_unknown_stay_fails_clearly_and_changes_nothing(h, monkeypatch, capsys):
    before = snapshot(h)
    job = h.defs.resolve_job_def("reprocess_stay_job")
    result = job.execute_in_process(run_config={"ops": {"reprocess_stay": {"config": {"reservation_code": "NOPE1"}}}},
                                    instance=h.instance, raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert "no stay with code 'NOPE1': see admin.reservations" in str(failure.event_specific_data.error)
    refused = job.execute_in_process(run_config={"ops": {"reprocess_stay": {"config": {
        "reservation_code": "X'; DROP TABLE pipeline.reservations; --"}}}}, instance=h.instance, raise_on_error=False)
    assert not refused.success
    failure = next(e for e in refused.all_events if e.event_type_value == "STEP_FAILURE")
    assert "is not a stay code: use the code shown in admin.reservations" in str(failure.event_specific_data.error)
    monkeypatch.setenv("LOCK_PIPELINE_DATABASE_URL", h.engine.url.render_as_string(hide_password=False))
    monkeypatch.setenv("LOCK_PIPELINE_PIN_KEY", h.pin_key)
    for code in ("NOPE1", "x'); DROP TABLE pipeline.reservations; --", ""):
        assert main(["reprocess", code]) == 1
        assert "no stay with code" in capsys.readouterr().err
    assert snapshot(h) == before


MAPPING_DECISIONS = [
    ({"action": "confirm", "listing": "NOPE1"}, "no listing with code or id 'NOPE1'"),
    ({"action": "reject", "listing": "NOPE1"}, "no listing with code or id 'NOPE1'"),
    ({"action": "unmap", "listing": "x'; DELETE FROM pipeline.lock_mappings; --"}, "no listing with code or id"),
    ({"action": "set", "listing": "LISTING", "lock_id": "no-such-lock"}, "no lock with device id 'no-such-lock'"),
    ({"action": "set", "listing": "LISTING"}, "`set` needs lock_id"),
]


def test_a_mapping_decision_for_an_unknown_listing_or_lock_fails_clearly_and_changes_nothing(h, monkeypatch, capsys):
    with h.engine.connect() as conn:
        listing_code = conn.execute(text("SELECT short_code FROM pipeline.listings ORDER BY listing_id LIMIT 1")).scalar()
        events_before = conn.execute(text("SELECT count(*) FROM pipeline.lock_mapping_events")).scalar()
    monkeypatch.setenv("LOCK_PIPELINE_DATABASE_URL", h.engine.url.render_as_string(hide_password=False))
    before = snapshot(h)
    job = h.defs.resolve_job_def("mapping_decision_job")
    for config, message in MAPPING_DECISIONS:
        config = {k: (listing_code if v == "LISTING" else v) for k, v in config.items()}
        result = job.execute_in_process(run_config={"ops": {"decide_mapping": {"config": config}}}, instance=h.instance,
                                        raise_on_error=False)
        assert not result.success
        failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
        assert message in str(failure.event_specific_data.error), config
        argv = ["mapping", config["action"], config["listing"]] + ([config["lock_id"]] if config.get("lock_id") else [])
        assert main(argv) == 1
        assert message in capsys.readouterr().err, config
    assert snapshot(h) == before
    with h.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM pipeline.lock_mapping_events")).scalar() == events_before


# ----------------------------------------------------------------- the database goes away and comes back

def test_postgres_gone_during_a_sync_fails_it_cleanly_and_the_next_one_loses_nothing(h, monkeypatch):
    from lock_pipeline.stays.sync import StaysSync

    h.stays.put_reservation(reservation_record(
        reservation_id=hex_id("db", 1), code="DBNEW", listing_id=raw_of(h, "LATER")["_idlisting"],
        check_in=D0 + timedelta(days=9), check_out=D0 + timedelta(days=11)))
    h.stays.cancel_reservation(hex_id("harness", "LATER"))
    before = snapshot(h)
    backends = PostgresFault(h.database_url, "terminate")
    real = StaysSync._apply

    def terminate_then_write(self, *args, **kwargs):
        assert backends.terminate() >= 1  # every pipeline connection, the sync's own included, is cut
        return real(self, *args, **kwargs)

    monkeypatch.setattr(StaysSync, "_apply", terminate_then_write)
    result = h.sync()
    assert not result.success
    log = last_log(h, "arrival")
    assert log["status"] == "failed" and "writing the sync to Postgres failed, nothing changed" in log["message"]
    assert snapshot(h) == before
    monkeypatch.setattr(StaysSync, "_apply", real)
    h.settle()
    backends.dispose()
    assert last_log(h, "arrival")["status"] == "success"
    with h.engine.connect() as conn:
        stored = dict(conn.execute(text("SELECT code, status FROM pipeline.reservations")).all())
    assert stored == {"INHSE": "confirmed", "TMRRW": "confirmed", "LATER": "cancelled", "DBNEW": "confirmed"}
    assert h.state_of("INHSE") == "active" and h.state_of("TMRRW") == "active"
