"""A listing's and a lock's own settings without SQL: the schema that holds them, and the sync reading each
listing's effective zone and default times (its own, else the account's)."""

from __future__ import annotations

from datetime import datetime, time, timezone

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from lock_pipeline.stays import store as stays_store
from lock_pipeline.stays.records import ListingRecord
from lock_pipeline.storage.database import sqlalchemy_url
from lock_pipeline.storage.migrations import apply_migrations, available_migrations
from lock_pipeline.vocabulary import OverrideSetting


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


def test_migration_009_keeps_what_differs_from_the_account_setting_and_lets_the_rest_follow_it(postgres_server_url):
    admin = create_engine(sqlalchemy_url(postgres_server_url), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text('DROP DATABASE IF EXISTS "lp_m009"'))
        conn.execute(text('CREATE DATABASE "lp_m009"'))
    engine = create_engine(sqlalchemy_url(str(make_url(postgres_server_url).set(database="lp_m009"))))
    try:
        with engine.begin() as conn:  # a database as schema 8 left it, started with the default settings
            conn.execute(text("CREATE SCHEMA pipeline; CREATE TABLE pipeline.schema_migrations (version integer "
                              "PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"))
            for migration in available_migrations():
                if migration.version <= 8:
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
        assert apply_migrations(engine) == [9]
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
            conn.execute(text('DROP DATABASE "lp_m009" WITH (FORCE)'))
        admin.dispose()
    assert listings == {"COPY": (None, None, None, None),  # the account's copy: follows the account now
                        "EDIT": ("America/Manaus", time(14, 0), None, 60)}  # what differed: the listing's own
    assert lengths == {"wifi": None, "zigbee": 6}
    assert [tuple(k) for k in kept] == [
        ("EDIT", "check_in_time", "14:00", "migration 009", "migration"),
        ("EDIT", "lead_minutes", "60", "migration 009", "migration"),
        ("EDIT", "time_zone", "America/Manaus", "migration 009", "migration"),
        ("zigbee", "pin_length", "6", "migration 009", "migration"),
    ]
    assert sources == {"COPY": None, "EDIT": "time_zone=America/Manaus, check_in_time=14:00, lead_minutes=60"}


def test_the_schema_holds_the_override_names_of_the_vocabulary():
    migration = next(m for m in available_migrations() if m.version == 9).path.read_text()
    allowed = migration.split("setting    text NOT NULL CHECK (setting IN (")[1].split("))")[0]
    assert {name.strip(" '\n") for name in allowed.split(",")} == {s.value for s in OverrideSetting}
