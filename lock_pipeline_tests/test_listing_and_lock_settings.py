"""A listing's and a lock's own settings without SQL: the commands and the Dagster jobs, their validation,
the change log, and each change reaching the doors by itself (a lead or grace change moves the PIN
already on the lock, same digits; a zone change re-derives the stays at the next sync; a PIN length
applies to the next PIN on the lock); a lock that refuses a PIN for its length is listed for a person."""

from __future__ import annotations

import dataclasses
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from lock_pipeline import overrides
from lock_pipeline.cli import main
from lock_pipeline.settings import setting_specs
from lock_pipeline.stays import store as stays_store
from lock_pipeline.stays.records import ListingRecord
from lock_pipeline.storage.database import sqlalchemy_url
from lock_pipeline.storage.migrations import SQL_DIR, apply_migrations, available_migrations
from lock_pipeline.vocabulary import AttentionIssue, ChangeVia, OverrideSetting
from lock_pipeline_tests.harness import Harness, World, local
from lock_pipeline_tests.helpers import TEST_PIN_KEY

D0 = date(2026, 11, 24)  # Tuesday
README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.fixture
def cli_env(monkeypatch):
    """The command line pointed at a harness's database and clock."""

    def point_at(h: Harness) -> None:
        monkeypatch.setenv("LOCK_PIPELINE_DATABASE_URL", h.engine.url.render_as_string(hide_password=False))
        monkeypatch.setenv("LOCK_PIPELINE_PIN_KEY", TEST_PIN_KEY)
        monkeypatch.setenv("LOCK_PIPELINE_CLOCK_FILE", str(h.clock.path))

    return point_at


def short_code(h: Harness, listing_id: str) -> str:
    with h.engine.connect() as conn:
        return conn.execute(text("SELECT short_code FROM pipeline.listings WHERE listing_id = :l"),
                            {"l": listing_id}).scalar()


def listing_row(h: Harness, listing_id: str) -> dict:
    with h.engine.connect() as conn:
        return dict(conn.execute(text("SELECT * FROM admin.listings WHERE listing_id = :l"),
                                 {"l": listing_id}).mappings().one())


def changes(h: Harness) -> list[tuple]:
    with h.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(
            "SELECT setting, old_value, new_value, actor, via, run_id IS NOT NULL FROM pipeline.setting_changes "
            "ORDER BY change_id"))]


def codes(h: Harness, stay: str) -> list:
    with h.engine.connect() as conn:
        return conn.execute(text("""
            SELECT c.code_id, c.state, c.valid_from, c.valid_until, c.next_attempt_at, c.digits_changed_at
            FROM pipeline.access_codes c JOIN pipeline.reservations r USING (reservation_id)
            WHERE r.code = :s ORDER BY c.code_id"""), {"s": stay}).all()


def actions(h: Harness, stay: str) -> list[tuple[str, str]]:
    with h.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(
            "SELECT action, outcome FROM admin.access_history WHERE reservation_code = :s ORDER BY at"), {"s": stay})]


def set_listing(h: Harness, listing_id: str, **values) -> str:
    with h.engine.begin() as conn:
        return overrides.set_listing(conn, short_code(h, listing_id), values, actor="ana", now=h.now,
                                     via=ChangeVia.CLI)


# ====================================================================== validation

@pytest.mark.parametrize("parse, raw, named, fix", [
    (overrides.parse_time_zone, "Mars/Olympus", "'Mars/Olympus'", "IANA time zone"),
    (overrides.parse_time_zone, "america/sao_paulo", "'america/sao_paulo'", "did you mean America/Sao_Paulo?"),
    (overrides.parse_time_zone, "", "''", "IANA time zone"),
    (lambda raw: overrides.parse_minutes(raw, "lead minutes"), "-5", "lead minutes -5", "use 0..1440"),
    (lambda raw: overrides.parse_minutes(raw, "lead minutes"), 1441, "lead minutes 1441", "use 0..1440"),
    (lambda raw: overrides.parse_minutes(raw, "grace minutes"), "1h", "grace minutes '1h'", "whole number"),
    (lambda raw: overrides.parse_clock_time(raw, "check-in time"), "25:00", "check-in time '25:00'", "HH:MM"),
    (lambda raw: overrides.parse_clock_time(raw, "check-out time"), "9:30", "check-out time '9:30'", "e.g. 15:00"),
    (lambda raw: overrides.parse_clock_time(raw, "check-out time"), "13h", "check-out time '13h'", "HH:MM"),
    (overrides.parse_pin_length, 9, "PIN length '9'", "6 (Zigbee and Bluetooth locks), 7 (Wi-Fi locks) or 8"),
    (overrides.parse_pin_length, "six", "PIN length 'six'", "use 6"),
])
def test_each_bad_value_is_named_with_its_fix(parse, raw, named, fix):
    with pytest.raises(ValueError) as refused:
        parse(raw)
    assert named in str(refused.value) and fix in str(refused.value)


def test_good_values_parse():
    assert overrides.parse_time_zone(" America/Manaus ") == "America/Manaus"
    assert overrides.parse_clock_time("09:30", "x") == time(9, 30)
    assert (overrides.parse_minutes("0", "x"), overrides.parse_minutes(1440, "x")) == (0, 1440)
    assert [overrides.parse_pin_length(n) for n in (6, "7", 8)] == [6, 7, 8]
    assert [overrides.setting_name(n) for n in ("--time-zone", "check-in-time", "lead_minutes")] == \
        ["time_zone", "check_in_time", "lead_minutes"]


# ====================================================================== the commands

def test_listing_show_set_reset_and_lock_show_set_from_the_command_line(made, cli_env, capsys):
    world = World()
    listing, lock = world.listing(1, "Consolação 81")
    world.stay("CLI01", listing, D0 + timedelta(days=1), D0 + timedelta(days=3))
    h = made(world, local(D0, 9))
    h.sync()
    cli_env(h)
    code = short_code(h, listing)

    assert main(["listing", "show", code]) == 0
    shown = capsys.readouterr().out
    assert "lead_minutes" in shown and "the built-in default (LOCK_PIPELINE_ACCESS_LEAD_MINUTES not changed)" in shown
    assert "America/Sao_Paulo" in shown and f"lock {lock}" in shown

    assert main(["listing", "set", code, "--lead-minutes", "60", "--time-zone", "America/Manaus",
                 "--check-out-time", "13:00", "--by", "ana"]) == 0
    said = capsys.readouterr().out
    assert "lead_minutes: 60 (was the account setting)" in said and "re-derived at the next sync" in said
    row = listing_row(h, listing)
    assert (row["access_lead_minutes"], row["access_lead_source"]) == (60, "listing")
    assert (row["time_zone"], row["time_zone_source"]) == ("America/Manaus", "listing")
    assert (row["check_out_time"], row["check_out_time_source"]) == (time(13, 0), "listing")
    assert (row["check_in_time"], row["check_in_time_source"]) == (time(15, 0), "default")
    assert row["overrides"] == "time_zone=America/Manaus, check_out_time=13:00, lead_minutes=60"
    assert (row["last_change_by"], row["last_change_via"]) == ("ana", "cli")
    assert main(["listing", "show", code]) == 0
    shown = capsys.readouterr().out
    assert "this listing's own" in shown and "lead_minutes: (account) -> 60 by ana (cli)" in shown

    # Every bad value is named at once, and nothing is changed.
    before = changes(h)
    assert main(["listing", "set", code, "--lead-minutes", "-5", "--time-zone", "Mars/Olympus",
                 "--check-in-time", "25:00"]) == 1
    err = capsys.readouterr().err
    assert "lead minutes -5" in err and "'Mars/Olympus'" in err and "check-in time '25:00'" in err
    assert main(["listing", "set", "NOPE1", "--lead-minutes", "30"]) == 1
    assert "no listing with code or id 'NOPE1'" in capsys.readouterr().err
    assert main(["listing", "set", code]) == 1
    assert "nothing to set" in capsys.readouterr().err
    assert main(["listing", "reset", code, "--setting", "colour"]) == 1
    assert "'colour' is not a listing setting" in capsys.readouterr().err
    assert changes(h) == before and listing_row(h, listing)["access_lead_minutes"] == 60

    assert main(["listing", "set", code, "--lead-minutes", "60", "--by", "ana"]) == 0  # the same value: no record
    assert "lead_minutes: unchanged (60)" in capsys.readouterr().out and changes(h) == before
    assert main(["listing", "reset", code, "--setting", "time-zone", "--by", "bia"]) == 0
    assert listing_row(h, listing)["time_zone_source"] == "default"
    assert main(["listing", "reset", code, "--by", "bia"]) == 0
    row = listing_row(h, listing)
    assert {row[c] for c in ("time_zone_source", "check_out_time_source", "access_lead_source")} == {"default"}
    assert row["overrides"] is None

    assert main(["lock", "show", lock]) == 0
    assert "the built-in default (LOCK_PIPELINE_PIN_LENGTH not changed)" in capsys.readouterr().out
    assert main(["lock", "set", lock, "--pin-length", "9"]) == 1
    assert "PIN length '9' is not one a lock takes" in capsys.readouterr().err
    assert main(["lock", "set", "eb-no-such-lock", "--pin-length", "6"]) == 1
    assert "no lock with device id 'eb-no-such-lock'" in capsys.readouterr().err
    assert main(["lock", "set", lock, "--pin-length", "6", "--by", "ana"]) == 0
    said = capsys.readouterr().out
    assert "pin_length: 6 (was the account setting)" in said
    assert "product name (Wi-Fi Smart Lock) suggests a Wi-Fi lock, which takes 7-digit PINs" in said
    assert main(["lock", "show", lock]) == 0
    assert "this lock's own" in capsys.readouterr().out
    with h.engine.connect() as conn:
        assert conn.execute(text("SELECT pin_length, pin_length_source FROM admin.locks WHERE lock_id = :d"),
                            {"d": lock}).one() == (6, "lock")
        assert conn.execute(text("SELECT lock_pin_length FROM admin.lock_mappings WHERE lock_id = :d"),
                            {"d": lock}).scalar() == 6

    with h.engine.begin() as conn:  # the reporting role reads the settings views, and nothing under them
        conn.execute(text("SET LOCAL ROLE lock_pipeline_reader"))
        for view in ("admin.listings", "admin.locks", "admin.lock_mappings", "admin.attention"):
            conn.execute(text(f"SELECT * FROM {view}")).all()
    with h.engine.connect() as conn, pytest.raises(Exception, match="permission denied"):
        conn.execute(text("SET ROLE lock_pipeline_reader"))
        conn.execute(text("SELECT * FROM pipeline.setting_changes")).all()

    assert changes(h) == [
        ("lead_minutes", None, "60", "ana", "cli", False),
        ("time_zone", None, "America/Manaus", "ana", "cli", False),
        ("check_out_time", None, "13:00", "ana", "cli", False),
        ("time_zone", "America/Manaus", None, "bia", "cli", False),
        ("check_out_time", "13:00", None, "bia", "cli", False),
        ("lead_minutes", "60", None, "bia", "cli", False),
        ("pin_length", None, "6", "ana", "cli", False),
    ]


def test_the_dagster_jobs_validate_their_config_and_apply_through_the_same_functions(made):
    from dagster import DagsterInvalidConfigError

    world = World()
    listing, lock = world.listing(1, "Bela Vista 82")
    h = made(world, local(D0, 9))
    h.sync()
    code = short_code(h, listing)
    listing_job = h.defs.resolve_job_def("listing_settings_job")
    lock_job = h.defs.resolve_job_def("lock_settings_job")

    def run(job, op, config, **kwargs):
        return job.execute_in_process(run_config={"ops": {op: {"config": config}}}, instance=h.instance, **kwargs)

    for config, named in (({"listing": code, "lead_minutes": 2000}, "lead minutes 2000"),
                          ({"listing": code, "time_zone": "Mars/Olympus"}, "'Mars/Olympus'"),
                          ({"listing": code, "check_in_time": "3pm"}, "check-in-time '3pm'"),
                          ({"listing": code, "reset": ["colour"]}, "'colour' is not a listing setting"),
                          ({"listing": " "}, "is empty")):
        with pytest.raises((DagsterInvalidConfigError, Exception), match=named):
            run(listing_job, "decide_listing_settings", config)
    with pytest.raises((DagsterInvalidConfigError, Exception), match="PIN length '5'"):
        run(lock_job, "decide_lock_settings", {"lock_id": lock, "pin_length": 5})
    assert not run(listing_job, "decide_listing_settings", {"listing": "NOPE1", "lead_minutes": 30},
                   raise_on_error=False).success
    assert not run(listing_job, "decide_listing_settings", {"listing": code}, raise_on_error=False).success
    assert changes(h) == []

    done = run(listing_job, "decide_listing_settings",
               {"listing": code, "grace_minutes": 30, "check_in_time": "14:00", "decided_by": "carla"})
    assert done.success
    row = listing_row(h, listing)
    assert (row["access_grace_minutes"], row["check_in_time"], row["last_change_via"]) == (30, time(14), "dagster")
    assert run(listing_job, "decide_listing_settings", {"listing": code, "reset": ["grace_minutes"]}).success
    assert listing_row(h, listing)["access_grace_source"] == "default"
    assert run(lock_job, "decide_lock_settings", {"lock_id": lock, "pin_length": 8, "decided_by": "carla"}).success
    assert changes(h) == [
        ("check_in_time", None, "14:00", "carla", "dagster", True),
        ("grace_minutes", None, "30", "carla", "dagster", True),
        ("grace_minutes", "30", None, "dagster-ui", "dagster", True),
        ("pin_length", None, "8", "carla", "dagster", True),
    ]
    with h.engine.connect() as conn:
        run_ids = conn.execute(text("SELECT DISTINCT run_id FROM pipeline.setting_changes")).scalars().all()
    assert done.run_id in run_ids


# ====================================================================== reaching the doors

def test_a_lead_or_grace_change_moves_the_pin_already_on_the_lock_with_the_same_digits(made):
    world = World()
    listing, lock = world.listing(1, "Higienópolis 83")
    world.stay("LEAD1", listing, D0 + timedelta(days=1), D0 + timedelta(days=3))  # 15:00 .. 11:00
    h = made(world, local(D0, 14))
    h.step(local(D0, 14))
    [(device, pin)] = h.pins_of("LEAD1")
    [code] = codes(h, "LEAD1")
    assert code.state == "active" and code.valid_from == local(D0 + timedelta(days=1), 13)  # the account's 2 h

    set_listing(h, listing, lead_minutes=60)
    h.step(local(D0, 14, 30))
    assert h.pins_of("LEAD1") == [(device, pin)]  # one code, the same digits
    [code] = codes(h, "LEAD1")
    assert code.state == "active" and code.valid_from == local(D0 + timedelta(days=1), 14)
    assert ("modify", "pending_on_lock") in actions(h, "LEAD1") and ("confirm", "active") in actions(h, "LEAD1")
    assert not h.tuya.would_open(lock, pin, local(D0 + timedelta(days=1), 13, 30))
    assert h.tuya.would_open(lock, pin, local(D0 + timedelta(days=1), 14))

    h.step(local(D0 + timedelta(days=1), 20))  # the guest is in the house: the cleaners need the door later
    set_listing(h, listing, grace_minutes=90)
    h.step(local(D0 + timedelta(days=1), 20, 30))
    assert h.pins_of("LEAD1") == [(device, pin)]
    [code] = codes(h, "LEAD1")
    assert code.valid_until == local(D0 + timedelta(days=3), 12, 30)
    assert h.tuya.would_open(lock, pin, local(D0 + timedelta(days=3), 12)) and h.opens("LEAD1", lock)
    assert not h.tuya.would_open(lock, pin, local(D0 + timedelta(days=3), 12, 30))
    assert AttentionIssue.PIN_CHANGED not in {row["issue"] for row in h.attention()}


def test_a_time_zone_change_re_derives_the_stays_at_the_next_sync_and_moves_the_pin(made):
    world = World()
    listing, lock = world.listing(1, "Perdizes 84")
    world.stay("ZONE1", listing, D0 + timedelta(days=1), D0 + timedelta(days=3))
    h = made(world, local(D0, 9))
    h.step(local(D0, 9))
    [(device, pin)] = h.pins_of("ZONE1")

    def check_in_at():
        with h.engine.connect() as conn:
            return conn.execute(text("SELECT check_in_at, time_zone FROM pipeline.reservations WHERE code = 'ZONE1'")).one()

    assert check_in_at() == (datetime(2026, 11, 25, 18, 0, tzinfo=timezone.utc), "America/Sao_Paulo")
    set_listing(h, listing, time_zone="America/Manaus")
    assert check_in_at()[0] == datetime(2026, 11, 25, 18, 0, tzinfo=timezone.utc)  # until the next sync
    h.step(local(D0, 9, 30))
    assert check_in_at() == (datetime(2026, 11, 25, 19, 0, tzinfo=timezone.utc), "America/Manaus")  # 15:00 at UTC-4
    assert h.pins_of("ZONE1") == [(device, pin)]
    [code] = codes(h, "ZONE1")
    assert code.valid_from == datetime(2026, 11, 25, 17, 0, tzinfo=timezone.utc) and code.state == "active"
    assert ("modify", "pending_on_lock") in actions(h, "ZONE1")

    with h.engine.begin() as conn:  # back to the account's zone: the next sync derives the stays with it again
        overrides.reset_listing(conn, short_code(h, listing), ["time-zone"], actor="ana", now=h.now, via=ChangeVia.CLI)
    h.step(local(D0, 10))
    assert check_in_at() == (datetime(2026, 11, 25, 18, 0, tzinfo=timezone.utc), "America/Sao_Paulo")


def test_the_sync_reads_each_listings_effective_zone_and_times_so_account_changes_apply(engine):
    now = datetime(2026, 11, 23, 12, 0, tzinfo=timezone.utc)
    with engine.begin() as conn:
        stays_store.upsert_listings(conn, [ListingRecord("L1", "AAA01", "One", "", "", "", "active"),
                                           ListingRecord("L2", "AAA02", "Two", "", "", "", "active")], now)
        stays_store.set_listing_overrides(conn, "L2", {"time_zone": "America/Recife", "check_in_time": time(16, 0)})
        account = stays_store.ListingDefaults("America/Manaus", time(14, 0), time(10, 0))
        effective = stays_store.listing_defaults(conn, account)
    assert effective["L1"] == account  # follows the account setting, whatever it is now
    assert effective["L2"] == stays_store.ListingDefaults("America/Recife", time(16, 0), time(10, 0))


def test_a_lock_that_refuses_the_pin_length_is_listed_once_and_its_new_length_reaches_the_next_pin(made):
    world = World()
    refusing, six = world.listing(1, "Liberdade 85")
    told_first, six_too = world.listing(2, "Aclimação 86")
    for index, lock in enumerate(world.seed.locks):  # Zigbee locks: 6-digit PINs
        world.seed.locks[index] = dataclasses.replace(lock, pin_length=6, product_name="Zigbee Smart Lock")
    world.stay("SIXPN", refusing, D0 + timedelta(days=1), D0 + timedelta(days=3))
    world.stay("SIXOK", told_first, D0 + timedelta(days=1), D0 + timedelta(days=3))
    h = made(world, local(D0, 9))
    h.sync()
    assert h.defs.resolve_job_def("lock_settings_job").execute_in_process(
        run_config={"ops": {"decide_lock_settings": {"config": {"lock_id": six_too, "pin_length": 6}}}},
        instance=h.instance).success
    h.step(local(D0, 9))

    [(_, ok_pin)] = h.pins_of("SIXOK")  # told before its first PIN: 6 digits at once
    assert len(ok_pin) == 6 and h.state_of("SIXOK") == "active"
    [code] = codes(h, "SIXPN")  # the lock refused a 7-digit PIN, naming 6: failed at once, no retry planned
    assert code.state == "failed" and code.next_attempt_at is None
    assert actions(h, "SIXPN") == [("generate", "failed")]  # no step retries: the same length is refused every time
    assert h.tuya.pins(six) == []
    [item] = [row for row in h.attention() if row["issue"] == AttentionIssue.PIN_LENGTH_MISMATCH]
    assert item["reservation_code"] == "SIXPN" and item["listing_code"] == short_code(h, refusing)
    assert "refused a 7-digit PIN and asked for 6 digits" in item["what_to_do"]
    assert f"lock-pipeline lock set {six} --pin-length 6" in item["what_to_do"]
    with h.engine.connect() as conn:
        assert conn.execute(text("SELECT pin_length, pin_length_asked FROM admin.locks WHERE lock_id = :d"),
                            {"d": six}).one() == (7, 6)

    h.step(local(D0, 12))  # hours later: still not retried (it would be refused the same way)
    assert actions(h, "SIXPN") == [("generate", "failed")]
    with h.engine.begin() as conn, pytest.raises(overrides.OverrideError, match="asked for 6 digits: 8 would be refused"):
        overrides.set_lock(conn, six, 8, actor="ana", now=h.now, via=ChangeVia.CLI)
    with h.engine.begin() as conn:
        said = overrides.set_lock(conn, six, 6, actor="ana", now=h.now, via=ChangeVia.CLI)
    assert "1 failed PIN(s) on it are retried" in said and "suggests" not in said

    h.step(local(D0, 12, 30))  # the next PIN on the lock has the new length, at once
    [(_, pin)] = h.pins_of("SIXPN")
    assert len(pin) == 6 and h.state_of("SIXPN") == "active"
    assert h.tuya.would_open(six, pin, local(D0 + timedelta(days=1), 14))
    [code] = codes(h, "SIXPN")
    assert code.digits_changed_at is None  # the guest never had the refused digits
    assert not {AttentionIssue.PIN_LENGTH_MISMATCH, AttentionIssue.PIN_FAILED} & {row["issue"] for row in h.attention()}
    with h.engine.connect() as conn:
        assert conn.execute(text("SELECT pin_length, pin_length_source, pin_length_asked FROM admin.locks "
                                 "WHERE lock_id = :d"), {"d": six}).one() == (6, "lock", None)


# ====================================================================== the migration and the README

def test_migration_010_keeps_what_differs_from_the_account_setting_and_lets_the_rest_follow_it(postgres_server_url):
    admin = create_engine(sqlalchemy_url(postgres_server_url), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text('DROP DATABASE IF EXISTS "lp_m010"'))
        conn.execute(text('CREATE DATABASE "lp_m010"'))
    engine = create_engine(sqlalchemy_url(str(make_url(postgres_server_url).set(database="lp_m010"))))
    try:
        with engine.begin() as conn:  # a database as schema 9 left it, started with the default settings
            conn.execute(text("CREATE SCHEMA pipeline; CREATE TABLE pipeline.schema_migrations (version integer "
                              "PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"))
            for migration in available_migrations():
                if migration.version <= 9:
                    conn.exec_driver_sql(migration.path.read_text())
                    conn.execute(text("INSERT INTO pipeline.schema_migrations (version, name) VALUES (:v, :n)"),
                                 {"v": migration.version, "n": migration.name})
            conn.execute(text("""
                INSERT INTO pipeline.settings (name, value) VALUES ('LOCK_PIPELINE_TIMEZONE', 'America/Sao_Paulo'),
                    ('LOCK_PIPELINE_DEFAULT_CHECK_IN_TIME', '15:00'), ('LOCK_PIPELINE_DEFAULT_CHECK_OUT_TIME', '11:00');
                INSERT INTO pipeline.listings (listing_id, short_code, status, time_zone, default_check_in_time,
                    default_check_out_time, access_lead_minutes, content_hash, first_seen_at, last_seen_at, updated_at)
                VALUES ('COPY', 'AAA01', 'active', 'America/Sao_Paulo', '15:00', '11:00', NULL, '', now(), now(), now()),
                       ('EDIT', 'AAA02', 'active', 'America/Manaus', '14:00', '11:00', 60, '', now(), now(), now());
                INSERT INTO pipeline.locks (device_id, first_seen_at, last_seen_at) VALUES ('wifi', now(), now());
                INSERT INTO pipeline.locks (device_id, pin_length, first_seen_at, last_seen_at)
                VALUES ('zigbee', 6, now(), now());
            """))
        assert apply_migrations(engine)[0] == 10  # and any later ones
        with engine.connect() as conn:
            listings = {r.listing_id: tuple(r)[1:] for r in conn.execute(text(
                "SELECT listing_id, time_zone, default_check_in_time, default_check_out_time, access_lead_minutes "
                "FROM pipeline.listings"))}
            lengths = dict(conn.execute(text("SELECT device_id, pin_length FROM pipeline.locks")).all())
            kept = conn.execute(text("SELECT coalesce(listing_id, device_id), setting, new_value, actor, via "
                                     "FROM pipeline.setting_changes ORDER BY 1, 2")).all()
            sources = dict(conn.execute(text("SELECT listing_id, overrides FROM admin.listings")).all())
    finally:
        engine.dispose()
        with admin.connect() as conn:
            conn.execute(text('DROP DATABASE "lp_m010" WITH (FORCE)'))
        admin.dispose()
    assert listings == {"COPY": (None, None, None, None),  # the account's copy: follows the account now
                        "EDIT": ("America/Manaus", time(14, 0), None, 60)}  # what differed: the listing's own
    assert lengths == {"wifi": None, "zigbee": 6}
    assert [tuple(k) for k in kept] == [
        ("EDIT", "check_in_time", "14:00", "migration 010", "migration"),
        ("EDIT", "lead_minutes", "60", "migration 010", "migration"),
        ("EDIT", "time_zone", "America/Manaus", "migration 010", "migration"),
        ("zigbee", "pin_length", "6", "migration 010", "migration"),
    ]
    assert sources == {"COPY": None, "EDIT": "time_zone=America/Manaus, check_in_time=14:00, lead_minutes=60"}


def test_the_readme_names_the_command_of_every_override_and_no_operator_decision_needs_sql():
    readme = README.read_text()
    overridable = [spec for spec in setting_specs() if spec.override]
    assert {s.env for s in overridable} == {
        "LOCK_PIPELINE_TIMEZONE", "LOCK_PIPELINE_DEFAULT_CHECK_IN_TIME", "LOCK_PIPELINE_DEFAULT_CHECK_OUT_TIME",
        "LOCK_PIPELINE_ACCESS_LEAD_MINUTES", "LOCK_PIPELINE_ACCESS_GRACE_MINUTES", "LOCK_PIPELINE_PIN_LENGTH"}
    for spec in overridable:
        row = next((line for line in readme.splitlines() if line.startswith(f"| `{spec.env}` |")), "")
        assert f"`{spec.override}`" in row, f"README's settings table: {spec.env} does not name {spec.override}"
    for needs_sql in ("pipeline.listings", "pipeline.locks", "by SQL", "set by SQL"):
        assert needs_sql not in readme


def test_the_schema_holds_the_override_names_of_the_vocabulary():
    migration = next(m for m in available_migrations() if m.version == 10).path.read_text()
    allowed = migration.split("setting    text NOT NULL CHECK (setting IN (")[1].split("))")[0]
    assert {name.strip(" '\n") for name in allowed.split(",")} == {s.value for s in OverrideSetting}
    assert set(overrides.LISTING_SETTINGS) == {s.value for s in OverrideSetting} - {OverrideSetting.PIN_LENGTH}
    attention = (SQL_DIR / "views" / "90_admin.attention.sql").read_text()
    assert f"'{AttentionIssue.PIN_LENGTH_MISMATCH}'" in attention
