"""The pipeline's named states and keys, in one place.

Code states, PIN action kinds, the issues ``admin.attention`` lists and the Dagster run tag keys
are spelled here once; the planner, the executor, the sensors, the simulator and the tests
use these names, and a test holds the SQL (CHECK constraints and views) to the same lists.
States and kinds are ``StrEnum``s, so each member is also the plain string stored in Postgres;
what Dagster serializes (run tags) is plain string constants.
"""

from __future__ import annotations

from enum import StrEnum


class StayStatus(StrEnum):
    """pipeline.reservations.status: what Stays says of a reservation (``type`` folded)."""

    CONFIRMED = "confirmed"
    CANCELLED = "cancelled"
    BLOCKED = "blocked"


class StayKind(StrEnum):
    """pipeline.reservations.kind: a guest gets a PIN, an owner or maintenance block never does."""

    GUEST = "guest"
    BLOCK = "block"


class CodeState(StrEnum):
    """Life cycle of one access code (per stay, lock and window), as pipeline.access_codes.state.

    programming -> pending_on_lock (in the cloud, the lock has not confirmed it) -> active (the lock
    has it) -> revoking -> revoked; failed (step retries spent; retried on a bounded schedule);
    cancelled (nothing reached the lock before the stay stopped needing it).
    """

    PROGRAMMING = "programming"
    PENDING_ON_LOCK = "pending_on_lock"
    ACTIVE = "active"
    REVOKING = "revoking"
    REVOKED = "revoked"
    FAILED = "failed"
    CANCELLED = "cancelled"


LIVE_STATES = frozenset({CodeState.PROGRAMMING, CodeState.PENDING_ON_LOCK, CodeState.ACTIVE, CodeState.REVOKING,
                         CodeState.FAILED})
ENDED_STATES = frozenset({CodeState.REVOKED, CodeState.CANCELLED})


class ActionKind(StrEnum):
    """What a PIN action does on a lock."""

    GENERATE = "generate"
    MODIFY = "modify"    # move a PIN's window, same digits (a date change on the same lock)
    BACKUP = "backup"    # an offline code for a stay whose PIN is not on its lock near arrival
    CONFIRM = "confirm"
    REVOKE = "revoke"


# Generate (and move) before confirm before revoke: a guest mid-stay gets the new PIN before losing the old one.
ACTION_ORDER = {ActionKind.GENERATE: 0, ActionKind.MODIFY: 0, ActionKind.CONFIRM: 1, ActionKind.BACKUP: 1,
                ActionKind.REVOKE: 2}


class BackupState(StrEnum):
    """pipeline.backup_codes.state."""

    REQUESTING = "requesting"   # asked of the cloud; the answer is not stored yet
    ISSUED = "issued"           # the cloud answered: the code works at the lock in its window
    LOST = "lost"               # refused by the cloud, or its answer never stored (a run died): given to nobody


class OfflineCodes(StrEnum):
    """pipeline.locks.offline_codes: whether the lock's model supports offline passwords."""

    UNKNOWN = "unknown"
    SUPPORTED = "supported"
    UNSUPPORTED = "unsupported"


class EventAction(StrEnum):
    """What pipeline.access_code_events records besides the action kinds themselves."""

    REPROCESS = "reprocess"
    STAYS_WEBHOOK = "stays_webhook"   # a change Stays announced, applied (the stay's history)
    DELIVERY = "delivery"             # a code event delivered (or not) to a channel (the stay's history)


class WebhookState(StrEnum):
    """pipeline.stays_webhooks.state: what became of a webhook Stays sent."""

    PENDING = "pending"     # accepted, stored, not applied yet
    APPLIED = "applied"     # its stay was re-fetched and applied
    FAILED = "failed"       # applying it failed (the 30-minute sync catches up)
    IGNORED = "ignored"     # an action the pipeline does not act on
    REJECTED = "rejected"   # refused: wrong token or client id, too big, not a Stays webhook


class AttentionIssue(StrEnum):
    """The ``issue`` column of admin.attention: what a person must act on."""

    UNMAPPED_LISTING_WITH_ARRIVAL = "unmapped_listing_with_arrival"
    PIN_FAILED = "pin_failed"
    PIN_NOT_ON_LOCK_YET = "pin_not_on_lock_yet"
    PIN_LENGTH_MISMATCH = "pin_length_mismatch"  # the lock's cloud refused a PIN for its length, naming the one it takes
    LOCK_OFFLINE_ARRIVAL_SOON = "lock_offline_arrival_soon"
    PIN_CHANGED = "pin_changed"
    BACKUP_CODE_ISSUED = "backup_code_issued"
    BACKUP_CODE_OUTSTANDING = "backup_code_outstanding"
    LOCK_BATTERY_LOW = "lock_battery_low"
    RUN_FAILED = "run_failed"
    WEBHOOK_FAILED = "webhook_failed"
    WEBHOOKS_SILENT = "webhooks_silent"
    SYNC_FAILING = "sync_failing"
    SYNC_STALE = "sync_stale"
    DELIVERY_FAILED = "delivery_failed"                                  # a channel refused or keeps failing
    CODE_NOT_DELIVERED_ARRIVAL_SOON = "code_not_delivered_arrival_soon"  # a code exists, no channel took it


# ---------------------------------------------------------------- delivery of the code to the guest

class DeliveryChannel(StrEnum):
    """Where a code event goes (pipeline.delivery_outbox.channel); each is switched on by a setting."""

    STAYS_FIELD = "stays_field"   # the reservation's custom field in Stays (LOCK_PIPELINE_STAYS_WRITE_BACK=pin)
    NOTIFY = "notify"             # a signed POST to the operator's automation (LOCK_PIPELINE_NOTIFY_URL)


class CodeEvent(StrEnum):
    """The ``type`` of a code event (Standard Webhooks body), one outbox row per configured channel."""

    ACTIVE = "code.active"                  # the lock has the code (again, with a new window after a move)
    CHANGED = "code.changed"                # the lock has new digits for a stay that had others
    BACKUP_ISSUED = "code.backup_issued"    # an offline backup code covers the stay
    FAILED = "code.failed"                  # the code could not be programmed (retries go on; a person is told)
    REVOKED = "code.revoked"                # the guest's code no longer opens the door


# Events that give the guest digits (what "delivered" means for a stay), and what each channel carries.
ANNOUNCING_EVENTS = frozenset({CodeEvent.ACTIVE, CodeEvent.CHANGED, CodeEvent.BACKUP_ISSUED})
CHANNEL_EVENTS = {
    DeliveryChannel.STAYS_FIELD: frozenset({*ANNOUNCING_EVENTS, CodeEvent.REVOKED}),
    DeliveryChannel.NOTIFY: frozenset(CodeEvent),
}


class OutboxState(StrEnum):
    """pipeline.delivery_outbox.state: one event on one channel."""

    PENDING = "pending"       # not tried yet (or its channel is stopped: tried again when it resumes)
    DELIVERED = "delivered"   # the channel took it
    FAILED = "failed"         # the last attempt failed; tried again at next_attempt_at
    DEAD = "dead"             # retries spent (admin.attention delivery_failed)
    SKIPPED = "skipped"       # nothing to send: superseded by a newer event, the stay is gone, channel off


class DeliveryState(StrEnum):
    """admin.reservations.delivery_state: did the guest's channel get the current code?"""

    NOT_CONFIGURED = "not_configured"
    PENDING = "pending"
    DELIVERED = "delivered"   # at least one configured channel took the current code
    FAILED = "failed"         # every configured channel gave up on it (or is stopped)


class OverrideSetting(StrEnum):
    """pipeline.setting_changes.setting: what a listing (or a lock) can set for itself instead of
    following the account setting (lock-pipeline listing / lock, listing_settings_job, lock_settings_job)."""

    TIME_ZONE = "time_zone"
    CHECK_IN_TIME = "check_in_time"      # when Stays sends none
    CHECK_OUT_TIME = "check_out_time"    # when Stays sends none
    LEAD_MINUTES = "lead_minutes"        # access opens this long before check-in
    GRACE_MINUTES = "grace_minutes"      # access ends this long after check-out
    PIN_LENGTH = "pin_length"            # a lock's


class SettingSource(StrEnum):
    """Where a listing's or lock's effective setting comes from (admin.listings, admin.locks)."""

    DEFAULT = "default"    # the built-in default (the account setting is not changed)
    ACCOUNT = "account"    # the account setting (environment) changed it
    LISTING = "listing"    # the listing's own
    LOCK = "lock"          # the lock's own


class ChangeVia(StrEnum):
    """pipeline.setting_changes.via: how a listing's or lock's setting was changed."""

    CLI = "cli"
    DAGSTER = "dagster"        # a Launchpad run; its run id is recorded
    MIGRATION = "migration"    # a value schema 010 kept as the listing's or lock's own


class RunTag:
    """Dagster run tag keys; the run list filtered by a tag is an audit trail.

    Plain strings, not an enum: Dagster serializes run tags and refuses enum members.
    """

    KIND = "lock_pipeline/kind"            # sync | pin | reprocess | admin
    TRIGGER = "lock_pipeline/trigger"      # schedule | start | cli
    TUYA = "lock_pipeline/tuya"            # "1" on runs that call Tuya (the run queue caps them)
    STAY = "lock_pipeline/stay"            # the stay's code on a single-action run
    LISTING = "lock_pipeline/listing"
    LOCK = "lock_pipeline/lock"
    ACTION = "lock_pipeline/action"        # generate | confirm | revoke | batch
    ACTIONS = "lock_pipeline/actions"      # how many actions a batch carries
    STAY_PREFIX = "lock_pipeline/stay."    # + code, on a batched run: lock_pipeline/stay.EV23J=generate
    WEBHOOKS = "lock_pipeline/webhooks"    # the stored webhooks a run applies (first-last id)
    OUTBOX = "lock_pipeline/outbox"        # the outbox rows a delivery run sends (first-last id)


class RunKind:
    """Values of the ``lock_pipeline/kind`` tag (dagster.yaml caps concurrent sync runs by it)."""

    SYNC = "sync"
    PIN = "pin"
    REPROCESS = "reprocess"
    WEBHOOK = "webhook"
    DELIVERY = "delivery"
    ADMIN = "admin"
