"""Security checks: what the reporting role can read, where the servers listen, and hostile names.

- The reader role (``lock_pipeline_reader``) reads the ``admin`` views and nothing else: not one
  ``pipeline.*`` table and not one of Dagster's tables in ``public`` (its runs and event logs live
  in the same database). test_secrets.py covers the PIN ciphertexts alone.
- The sandboxes and the embedded Postgres listen on loopback / a Unix socket by default, and
  ``lock-pipeline up`` serves the Dagster UI on 127.0.0.1 unless told otherwise.
- Names from Stays and Tuya that look like SQL, HTML or Markdown are data: stored verbatim, never
  executed, and in Dagster metadata only as JSON or plain text, never as Markdown, except in the day
  board's table, where every name is escaped and renders as the text it is.
"""

from __future__ import annotations

import re
from datetime import timedelta

import psutil
import pytest
from dagster import AssetKey, JsonMetadataValue, MarkdownMetadataValue, TextMetadataValue
from markdown_it import MarkdownIt
from sqlalchemy import text

from lock_pipeline.cli import main
from lock_pipeline.sandbox.seed import Seed, SeedLock, hex_id, reservation_record
from lock_pipeline.sandbox.stays_server import StaysSandbox
from lock_pipeline.sandbox.tuya_cloud import TuyaSandbox
from lock_pipeline.storage.database import sqlalchemy_url
from lock_pipeline_tests.harness import Harness, World, local
from lock_pipeline_tests.test_access_lifecycle import D0

SQL = "'); DROP TABLE x; --"
SCRIPT = "<script>alert(1)</script>"
MARKDOWN = "**md** [click](javascript:alert(1))"
LOCK_HTML = "<img src=x onerror=alert(1)>"


# ----------------------------------------------------------------- the reader role

@pytest.fixture
def dagster_instance(database_url, tmp_path):
    """A Dagster instance whose runs and event logs live in the pipeline's database (as in production)."""
    from dagster import instance_for_test

    (tmp_path / "dagster_home").mkdir()
    with instance_for_test(temp_dir=str(tmp_path / "dagster_home"),
                           overrides={"storage": {"postgres": {"postgres_url": sqlalchemy_url(database_url)}}}) as instance:
        yield instance


def test_the_reader_role_reads_the_admin_views_and_no_table_at_all(engine, dagster_instance):
    with engine.connect() as conn:
        tables = conn.execute(text("""
            SELECT table_schema, table_name, table_type FROM information_schema.tables
            WHERE table_schema IN ('pipeline', 'public', 'admin') ORDER BY 1, 2
        """)).all()
    pipeline = [t for t in tables if t.table_schema == "pipeline"]
    public = [t for t in tables if t.table_schema == "public"]
    views = [t for t in tables if t.table_schema == "admin"]
    assert {"reservations", "access_codes", "pin_reveals", "run_failures", "schema_migrations"} <= {t.table_name for t in pipeline}
    assert {"runs", "event_logs", "kvs"} <= {t.table_name for t in public}, "Dagster's storage is in this database"
    assert {t.table_type for t in views} == {"VIEW"}

    refused, read = [], []
    with engine.connect() as conn:
        conn.execute(text("SET ROLE lock_pipeline_reader"))
        for table in pipeline + public:
            try:
                with conn.begin_nested():
                    conn.execute(text(f'SELECT * FROM "{table.table_schema}"."{table.table_name}" LIMIT 1')).all()
                read.append(f"{table.table_schema}.{table.table_name}")
            except Exception as error:  # noqa: BLE001 - only "permission denied" is acceptable here
                assert "permission denied" in str(error), error
                refused.append(table)
        for view in views:
            conn.execute(text(f'SELECT * FROM admin."{view.table_name}" LIMIT 5')).all()
        # and it cannot write anywhere, not even through a view
        for statement in ("DELETE FROM admin.quarantine", "CREATE TABLE public.reader_was_here (x int)",
                          "UPDATE pipeline.access_codes SET state = 'revoked'"):
            with pytest.raises(Exception, match="permission denied"):
                with conn.begin_nested():
                    conn.execute(text(statement))
        conn.execute(text("RESET ROLE"))
        conn.rollback()
    assert read == [], f"the reader role read {read}"
    assert len(refused) == len(pipeline) + len(public)


# ----------------------------------------------------------------- where things listen

def _listening(port: int) -> set[str]:
    return {c.laddr.ip for c in psutil.Process().net_connections(kind="inet")
            if c.status == psutil.CONN_LISTEN and c.laddr.port == port}


def test_the_sandboxes_listen_on_loopback_only_by_default():
    with StaysSandbox(Seed()) as stays, TuyaSandbox([SeedLock("ebsecurity000000000001", "Porta")]) as tuya:
        stays_port = stays._server.server_address[1]
        tuya_port = tuya._server.server_address[1]
        assert stays._server.server_address[0] == "127.0.0.1" and _listening(stays_port) == {"127.0.0.1"}
        assert tuya._server.server_address[0] == "127.0.0.1" and _listening(tuya_port) == {"127.0.0.1"}
        assert stays.base_url.startswith("http://127.0.0.1:") and tuya.base_url.startswith("https://127.0.0.1:")
    with pytest.raises(ValueError, match="loopback only"):
        TuyaSandbox([], host="0.0.0.0")


def test_the_embedded_postgres_listens_on_a_unix_socket_only(engine):
    with engine.connect() as conn:
        assert conn.execute(text("SHOW listen_addresses")).scalar() == ""
        assert conn.execute(text("SELECT inet_server_addr()")).scalar() is None  # this very session: a Unix socket


def test_lock_pipeline_up_serves_the_ui_on_loopback_by_default(monkeypatch, tmp_path):
    import lock_pipeline.cli as cli
    import lock_pipeline.runtime as runtime

    for name in list(__import__("os").environ):
        if name.startswith(("LOCK_PIPELINE_", "STAYS_", "TUYA_")):
            monkeypatch.delenv(name)
    assert cli._parser().parse_args(["up"]).host == "127.0.0.1"
    launched = []

    class FakeDagster:
        pid = 0

        def __init__(self, command, **kwargs):
            launched.append(command)

        def wait(self):
            return 0

        def poll(self):
            return 0

    class FakeRuntime:
        env, notes = {}, []

        def close(self):
            pass

    monkeypatch.setattr(runtime, "prepare", lambda settings: FakeRuntime())
    monkeypatch.setattr(runtime, "dagster_home", lambda settings: tmp_path)
    monkeypatch.setattr(cli.subprocess, "Popen", FakeDagster)
    monkeypatch.setattr(cli, "_forward_stop_signals", lambda child: None)
    monkeypatch.setattr(cli, "_first_sync", lambda *args: None)
    monkeypatch.setenv("LOCK_PIPELINE_HOME", str(tmp_path / "home"))
    assert main(["up"]) == 0
    [command] = launched
    assert command[command.index("-h") + 1] == "127.0.0.1"
    monkeypatch.setenv("LOCK_PIPELINE_UI_HOST", "0.0.0.0")  # only when asked for
    assert cli._parser().parse_args(["up"]).host == "0.0.0.0"


# ----------------------------------------------------------------- hostile names are data

def test_names_that_look_like_sql_html_or_markdown_are_stored_verbatim_and_never_markdown(
        database_url, tmp_path, dagster_instance, monkeypatch, capsys):
    world = World()
    hostile, lock_id = world.listing(1, SQL)
    title_listing, _ = world.listing(2, MARKDOWN, lock=False)  # no lock: it shows in the checks' offending rows
    world.seed.listings[0]["_mstitle"] = {"pt_BR": MARKDOWN}
    world.stay("HOST1", hostile, D0, D0 + timedelta(days=2), guest=f"{SCRIPT} Silva")
    world.stay("HOST2", title_listing, D0 + timedelta(days=1), D0 + timedelta(days=3), guest=MARKDOWN)
    bad = reservation_record(reservation_id=hex_id("hostile"), code="HOST3", listing_id=hostile,
                             check_in=D0 + timedelta(days=2), check_out=D0 + timedelta(days=4))
    world.seed.reservations.append({**bad, "type": SQL})  # quarantined, its reason quotes the value
    h = Harness(database_url, world, tmp_path, local(D0, 9), instance=dagster_instance)
    try:
        with h.engine.begin() as conn:
            conn.execute(text("CREATE TABLE public.x (id int)"))
        h.tuya.add_foreign_pin(lock_id, "5820731", f"LP ZZZZZ {LOCK_HTML}"[:20], local(D0, 0), local(D0 + timedelta(days=3), 0))
        h.settle()
        h.settle()
        with h.engine.connect() as conn:
            listing = conn.execute(text("SELECT internal_name, title FROM pipeline.listings WHERE listing_id = :l"),
                                   {"l": hostile}).one()
            guests = dict(conn.execute(text("SELECT reservation_code, guest_first_name FROM admin.reservations")).all())
            mapping_names = conn.execute(text("SELECT listing_name FROM admin.lock_mappings")).scalars().all()
            lock_name = conn.execute(text("SELECT lock_name FROM admin.locks WHERE lock_id = :d"), {"d": lock_id}).scalar()
            reason = conn.execute(text("SELECT reason FROM admin.quarantine WHERE record_id = :r"), {"r": bad["_id"]}).scalar()
            payload_type = conn.execute(text("SELECT payload->>'type' FROM pipeline.quarantined_records")).scalar()
            label = conn.execute(text("SELECT lock_label FROM pipeline.access_codes")).scalar()
            assert conn.execute(text("SELECT to_regclass('public.x')")).scalar() is not None  # never executed
        assert tuple(listing) == (SQL, MARKDOWN)
        assert guests == {"HOST1": SCRIPT, "HOST2": MARKDOWN.split()[0]}
        assert SQL in mapping_names and MARKDOWN in mapping_names
        assert lock_name == f"Fechadura {SQL}"
        assert repr(SQL) in reason and payload_type == SQL
        assert label == f"LP HOST1 {SCRIPT}"[:20]
        assert h.state_of("HOST1") == "active"

        # Operator commands with the hostile strings as arguments: refused as unknown, nothing executed.
        monkeypatch.setenv("LOCK_PIPELINE_DATABASE_URL", h.engine.url.render_as_string(hide_password=False))
        monkeypatch.setenv("LOCK_PIPELINE_PIN_KEY", h.pin_key)
        assert main(["reprocess", SQL]) == 1 and main(["mapping", "unmap", SQL]) == 1
        assert main(["pin", "show", SQL, "--by", SCRIPT, "--reason", SQL]) == 1
        capsys.readouterr()
        with h.engine.connect() as conn:
            assert conn.execute(text("SELECT to_regclass('public.x')")).scalar() is not None

        # In Dagster's event log (in Postgres here): metadata carrying a name is JSON or text, never Markdown.
        carrying, markdown, boards = [], [], []
        for run in dagster_instance.get_runs():
            for record in dagster_instance.all_logs(run.run_id):
                event = record.dagster_event
                data = getattr(event, "event_specific_data", None) if event else None
                for holder in (getattr(data, "materialization", None), getattr(data, "asset_check_evaluation", None), data):
                    metadata = getattr(holder, "metadata", None) or {}
                    for key, value in metadata.items():
                        if isinstance(value, MarkdownMetadataValue):
                            if (getattr(holder, "asset_key", None), key) in ((AssetKey("day_board"), "day"),
                                                                               (AssetKey("stay_history"), "history")):
                                boards.append(value.value)
                            elif not (event.step_key == "day_board" and key == "day"):  # the asset's own output
                                markdown.append(key)
                        shown = str(getattr(value, "value", value))
                        if any(s in shown for s in (SQL, SCRIPT, "**md**", "onerror")):
                            carrying.append((key, type(value)))
        assert markdown == []
        # The day board and a stay's history are Markdown tables: rendered as CommonMark, the names are text.
        renderer = MarkdownIt("commonmark").enable("table")
        assert len(boards) > 1, "the runs refreshed the day board and added to stays' histories"
        for board in boards:
            html = renderer.render(board)
            links = re.findall(r'<a href="([^"]*)"', html)
            assert all(re.fullmatch(r"/runs/[0-9a-f-]{36}", link) for link in links), links  # only our run links
            assert "<script" not in html and "<img" not in html and "<em>" not in html
            assert html.count("<strong>") <= 1  # the board's own heading; no name became bold
        html = renderer.render(next(b for b in boards if "HOST1" in b and "Listing" in b))
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html  # the guest, as text
        assert "**md** [click](javascript:alert(1))" in html  # the listing name, as text
        assert carrying, "the hostile names should reach some metadata (offending rows, quarantine reasons)"
        assert {kind for _key, kind in carrying} <= {JsonMetadataValue, TextMetadataValue}, carrying
        assert {key for key, _kind in carrying} >= {"offending_rows", "quarantine_reasons"}
    finally:
        h.close()
