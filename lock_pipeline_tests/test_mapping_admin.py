"""Admin decisions on the listing -> lock map, the 1:1 checks, and the operator commands."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import text

from lock_pipeline.cli import main
from lock_pipeline.mapping import store
from lock_pipeline_tests.harness import Harness, World, local
from lock_pipeline_tests.test_access_lifecycle import D0


@pytest.fixture
def setup(database_url, tmp_path):
    world = World()
    la, ka = world.listing(1, "Higienópolis 101")
    lb, kb = world.listing(2, "Higienópolis 102")
    world.stay("ADM01", la, D0, D0 + timedelta(days=2))
    h = Harness(database_url, world, tmp_path, local(D0, 9))
    h.sync()
    yield h, (la, ka), (lb, kb)
    h.close()


def _code(h, listing_id):
    with h.engine.connect() as conn:
        return conn.execute(text("SELECT short_code FROM pipeline.listings WHERE listing_id = :l"), {"l": listing_id}).scalar()


def _mapping(h, listing_id):
    with h.engine.connect() as conn:
        return conn.execute(text("SELECT device_id, status, source FROM pipeline.lock_mappings WHERE listing_id = :l"),
                            {"l": listing_id}).one()


def test_an_admin_choice_survives_re_materialization(setup):
    h, (la, ka), (lb, kb) = setup
    assert _mapping(h, la) == (ka, "confirmed", "matcher")
    with h.engine.begin() as conn:
        store.unmap(conn, _code(h, lb), "ana", h.now)
        store.set_mapping(conn, _code(h, la), kb, "ana", h.now)  # a deliberate swap: listing A to lock B
    h.sync()
    h.sync()
    assert _mapping(h, la) == (kb, "confirmed", "admin")
    assert _mapping(h, lb) == (None, "unmatched", "admin")
    with h.engine.connect() as conn:
        actions = conn.execute(text("SELECT action, actor FROM pipeline.lock_mapping_events ORDER BY event_id")).all()
    assert ("remap", "ana") in [tuple(a) for a in actions] and ("unmap", "ana") in [tuple(a) for a in actions]


def test_the_database_refuses_a_second_listing_on_a_confirmed_lock(setup):
    h, (la, ka), (lb, _kb) = setup
    with pytest.raises(store.MappingError, match="already confirmed for listing"):
        with h.engine.begin() as conn:
            store.set_mapping(conn, _code(h, lb), ka, "ana", h.now)
    with pytest.raises(Exception, match="lock_mappings_one_listing_per_lock"):
        with h.engine.begin() as conn:
            conn.execute(text("UPDATE pipeline.lock_mappings SET device_id = :k WHERE listing_id = :l"), {"k": ka, "l": lb})


def test_breaking_the_1_to_1_rule_by_hand_turns_the_check_red_naming_the_rows(setup):
    h, (la, ka), (lb, _kb) = setup
    with h.engine.begin() as conn:  # what a careless hand-edit with the constraint dropped would do
        conn.execute(text("DROP INDEX pipeline.lock_mappings_one_listing_per_lock"))
        conn.execute(text("UPDATE pipeline.lock_mappings SET device_id = :k WHERE listing_id = :l"), {"k": ka, "l": lb})
    result = h.sync()
    check = next(e for e in result.get_asset_check_evaluations() if e.check_name == "one_lock_per_listing_and_listing_per_lock")
    assert not check.passed
    assert check.metadata["offending_rows"].value == [{"device_id": ka, "listing_codes": sorted([_code(h, la), _code(h, lb)])}]


def test_mapping_decision_job_validates_its_config(setup):
    h, (la, _ka), _b = setup
    job = h.defs.resolve_job_def("mapping_decision_job")
    from dagster import DagsterInvalidConfigError

    with pytest.raises((DagsterInvalidConfigError, Exception), match="confirm, reject, set or unmap"):
        job.execute_in_process(run_config={"ops": {"decide_mapping": {"config": {"action": "delete", "listing": "X"}}}},
                               instance=h.instance)
    failed = job.execute_in_process(run_config={"ops": {"decide_mapping": {"config": {"action": "set", "listing": "NOPE1", "lock_id": "x"}}}},
                                    instance=h.instance, raise_on_error=False)
    assert not failed.success
    ok = job.execute_in_process(run_config={"ops": {"decide_mapping": {"config": {"action": "unmap", "listing": _code(h, la)}}}},
                                instance=h.instance)
    assert ok.success and _mapping(h, la)[1] == "unmatched"


def test_cli_mapping_pin_show_and_reprocess(setup, monkeypatch, capsys):
    h, (la, ka), (lb, kb) = setup
    h.settle()
    url = h.engine.url.render_as_string(hide_password=False)
    monkeypatch.setenv("LOCK_PIPELINE_DATABASE_URL", url)
    from lock_pipeline_tests.helpers import TEST_PIN_KEY

    monkeypatch.setenv("LOCK_PIPELINE_PIN_KEY", TEST_PIN_KEY)
    monkeypatch.setenv("LOCK_PIPELINE_CLOCK_FILE", str(h.clock.path))

    assert main(["pin", "show", "ADM01", "--by", "ana", "--reason", "guest at the door"]) == 0
    shown = capsys.readouterr().out
    [(_device, pin)] = h.pins_of("ADM01")
    assert pin in shown
    with h.engine.connect() as conn:
        assert conn.execute(text("SELECT revealed_by, reason FROM pipeline.pin_reveals")).one() == ("ana", "guest at the door")

    assert main(["reprocess", "NOPE9"]) == 1
    assert "no stay with code" in capsys.readouterr().err
    assert main(["reprocess", "adm01"]) == 0

    assert main(["mapping", "set", _code(h, lb), ka]) == 1
    assert "already confirmed" in capsys.readouterr().err
    assert main(["mapping", "unmap", _code(h, la)]) == 0
    assert _mapping(h, la)[1] == "unmatched"
