"""Pure rules: PIN strength, masking, encryption, and the life-cycle planner."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from cryptography.fernet import Fernet

from lock_pipeline.access.pins import lock_label
from lock_pipeline.access.pins import PinKeyError, PinVault, generate_pin, is_weak_pin, mask_pin
from lock_pipeline.access.planning import (
    AccessCode,
    AccessPolicy,
    StayAccess,
    Window,
    access_window,
    next_retry_at,
    plan_actions,
)

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=timezone.utc)
POLICY = AccessPolicy()


@pytest.mark.parametrize("pin", ["1111111", "1234567", "7654321", "1212121", "1234321", "0001234", "9012345", "12a4567"])
def test_weak_pins_are_refused(pin):
    assert is_weak_pin(pin)


def test_generated_pins_are_strong_distinct_and_the_right_length():
    avoid = {generate_pin(7) for _ in range(50)}
    pins = [generate_pin(7, avoid=avoid) for _ in range(300)]
    assert all(len(p) == 7 and p.isdigit() and not is_weak_pin(p) and p not in avoid for p in pins)
    assert len(set(pins)) > 290
    assert all(len(generate_pin(6)) == 6 for _ in range(20))


def test_mask_and_vault():
    assert mask_pin("4820731") == "•••••31"
    vault = PinVault(Fernet.generate_key().decode())
    token = vault.encrypt("4820731")
    assert b"4820731" not in token and vault.decrypt(token) == "4820731"
    assert "key" in repr(vault) and Fernet.generate_key().decode() not in repr(vault)
    with pytest.raises(PinKeyError, match="key changed"):
        PinVault(Fernet.generate_key().decode()).decrypt(token)


def test_lock_label_is_readable_ascii_and_short():
    assert lock_label("EV23J", "Luíza") == "LP EV23J Luiza"
    assert len(lock_label("EV23J", "Maximiliano-Gonçalves")) == 20


def _stay(**changes) -> StayAccess:
    base = dict(reservation_id="r1", code="EV23J", listing_id="l1", kind="guest", status="confirmed",
                check_in_at=NOW + timedelta(hours=30), check_out_at=NOW + timedelta(days=3), device_id="d1")
    base.update(changes)
    return StayAccess(**base)


def _code(stay: StayAccess, state: str, **changes) -> AccessCode:
    window = access_window(stay, POLICY)
    base = dict(code_id=1, reservation_id=stay.reservation_id, device_id="d1", valid_from=window.start,
                valid_until=window.end, state=state, attempts=1, updated_at=NOW - timedelta(minutes=1))
    base.update(changes)
    return AccessCode(**base)


def test_access_window_uses_lead_grace_and_listing_overrides():
    stay = _stay()
    assert access_window(stay, POLICY) == Window(stay.check_in_at - timedelta(hours=2), stay.check_out_at)
    custom = _stay(lead_minutes=30, grace_minutes=15)
    assert access_window(custom, POLICY) == Window(custom.check_in_at - timedelta(minutes=30),
                                                   custom.check_out_at + timedelta(minutes=15))


def test_generate_only_inside_the_programming_horizon():
    assert [a.kind for a in plan_actions({"r1": _stay()}, [], NOW, POLICY).actions] == ["generate"]
    far = _stay(check_in_at=NOW + timedelta(days=5), check_out_at=NOW + timedelta(days=7))
    assert plan_actions({"r1": far}, [], NOW, POLICY).actions == []


def test_nothing_for_blocks_unmapped_or_cancelled_stays():
    for stay in (_stay(kind="block", status="blocked"), _stay(device_id=None), _stay(status="cancelled")):
        assert plan_actions({"r1": stay}, [], NOW, POLICY).actions == []


def test_cancellation_revokes_and_missing_waits_out_the_tolerance():
    stay = _stay()
    active = _code(stay, "active")
    cancelled = _stay(status="cancelled")
    [revoke] = plan_actions({"r1": cancelled}, [active], NOW, POLICY).actions
    assert (revoke.kind, revoke.reason) == ("revoke", "stay cancelled")
    briefly_missing = _stay(missing_since=NOW - timedelta(hours=2))
    assert plan_actions({"r1": briefly_missing}, [active], NOW, POLICY).actions == []
    long_missing = _stay(missing_since=NOW - timedelta(hours=25))
    assert [a.kind for a in plan_actions({"r1": long_missing}, [active], NOW, POLICY).actions] == ["revoke"]


def test_a_moved_stay_mid_stay_keeps_the_old_pin_until_the_new_one_is_active():
    in_house = _stay(check_in_at=NOW - timedelta(days=1), check_out_at=NOW + timedelta(days=1))
    old = _code(in_house, "active")
    extended = _stay(check_in_at=in_house.check_in_at, check_out_at=NOW + timedelta(days=3))
    plan = plan_actions({"r1": extended}, [old], NOW, POLICY)
    assert [a.kind for a in plan.actions] == ["generate"] and plan.waiting
    new = _code(extended, "active", code_id=2)
    assert [a.kind for a in plan_actions({"r1": extended}, [old, new], NOW, POLICY).actions] == ["revoke"]


def test_remap_revokes_at_once_and_ended_windows_are_revoked():
    in_house = _stay(check_in_at=NOW - timedelta(days=1), check_out_at=NOW + timedelta(days=1))
    old = _code(in_house, "active")
    remapped = _stay(check_in_at=in_house.check_in_at, check_out_at=in_house.check_out_at, device_id="d2")
    kinds = sorted((a.kind, a.device_id) for a in plan_actions({"r1": remapped}, [old], NOW, POLICY).actions)
    assert kinds == [("generate", "d2"), ("revoke", "d1")]
    ended = _stay(check_in_at=NOW - timedelta(days=3), check_out_at=NOW - timedelta(minutes=1))
    assert [a.reason for a in plan_actions({"r1": ended}, [_code(ended, "active")], NOW, POLICY).actions] == ["access window ended"]


def test_stale_programming_and_due_failures_are_retried_with_new_keys():
    stay = _stay()
    fresh = _code(stay, "programming")
    assert plan_actions({"r1": stay}, [fresh], NOW, POLICY).actions == []
    stale = _code(stay, "programming", updated_at=NOW - timedelta(minutes=11))
    [again] = plan_actions({"r1": stay}, [stale], NOW, POLICY).actions
    failed = _code(stay, "failed", next_attempt_at=NOW - timedelta(seconds=1), updated_at=NOW - timedelta(minutes=20))
    [retry] = plan_actions({"r1": stay}, [failed], NOW, POLICY).actions
    assert again.kind == retry.kind == "generate" and again.key != retry.key
    spent = _code(stay, "failed", next_attempt_at=None)
    assert plan_actions({"r1": stay}, [spent], NOW, POLICY).actions == []


def test_retry_schedule_is_bounded():
    assert next_retry_at(1, NOW) == NOW + timedelta(minutes=15)
    assert next_retry_at(5, NOW) == NOW + timedelta(hours=12)
    assert next_retry_at(6, NOW) is None


def test_a_failed_pin_near_or_inside_its_window_is_retried_every_15_minutes():
    far = Window(NOW + timedelta(days=2), NOW + timedelta(days=4))
    assert next_retry_at(3, NOW, far) == NOW + timedelta(hours=3)  # far from arrival: the backing-off schedule
    assert next_retry_at(6, NOW, far) == far.start - timedelta(hours=2)  # schedule spent: tried again before arrival
    soon = Window(NOW + timedelta(hours=5), NOW + timedelta(days=2))
    assert next_retry_at(4, NOW, soon) == soon.start - timedelta(hours=2)  # 6 h would land after the guest arrives
    open_now = Window(NOW - timedelta(hours=1), NOW + timedelta(days=2))
    for attempts in (1, 4, 5, 6, 40):
        assert next_retry_at(attempts, NOW, open_now) == NOW + timedelta(minutes=15)  # a guest may be at the door
    ended = Window(NOW - timedelta(days=2), NOW - timedelta(hours=1))
    assert next_retry_at(6, NOW, ended) is None


def test_pending_codes_are_polled_and_run_keys_name_action_stay_lock_and_window():
    stay = _stay()
    pending = _code(stay, "pending_on_lock", updated_at=NOW - timedelta(minutes=6))
    [confirm] = plan_actions({"r1": stay}, [pending], NOW, POLICY).actions
    assert confirm.kind == "confirm"
    assert confirm.key.startswith("confirm:EV23J:d1:20261124T1600-20261126T1200:")


def test_a_just_created_pin_is_confirmed_at_the_next_tick_then_polled():
    """A create's answer does not say whether the lock has the PIN (phase never read): confirm at
    once. Once read and still pending (phase 1: lock asleep), poll every ``confirm_every``."""
    stay = _stay()
    created = _code(stay, "pending_on_lock", updated_at=NOW - timedelta(seconds=30), tuya_phase=None)
    [confirm] = plan_actions({"r1": stay}, [created], NOW, POLICY).actions
    assert confirm.kind == "confirm"
    asleep = _code(stay, "pending_on_lock", updated_at=NOW - timedelta(minutes=1), tuya_phase=1)
    assert plan_actions({"r1": stay}, [asleep], NOW, POLICY).actions == []
    asleep_long = _code(stay, "pending_on_lock", updated_at=NOW - timedelta(minutes=5), tuya_phase=1)
    assert [a.kind for a in plan_actions({"r1": stay}, [asleep_long], NOW, POLICY).actions] == ["confirm"]


def test_a_burst_of_1000_actions_is_10_runs_by_default():
    from lock_pipeline.orchestration.access import batch_actions
    from lock_pipeline.settings import Settings, load_settings

    assert load_settings({"LOCK_PIPELINE_HOME": "/tmp/lock-pipeline-tests-unused"}).max_actions_per_run == 100
    assert Settings().max_actions_per_run == 100
    stays = {f"r{i}": _stay(reservation_id=f"r{i}", code=f"C{i:04d}", device_id=f"d{i}") for i in range(1000)}
    actions = plan_actions(stays, [], NOW, POLICY).actions
    assert len(actions) == 1000
    batches = batch_actions(actions, Settings().max_actions_per_run)
    assert [len(b) for b in batches] == [100] * 10
    assert [len(b) for b in batch_actions(actions[:10], 100)] == [1] * 10  # a handful: one run each
