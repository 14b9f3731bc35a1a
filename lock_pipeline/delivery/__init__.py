"""The door code reaches the guest: a transactional outbox of code events and the channels that carry them.

- ``outbox.py``: pipeline.delivery_outbox and pipeline.delivery_channels, and the only module that
  writes them; events are enqueued in the same transaction as the state change they announce.
- ``rules.py``: pure rules (back-off, give-up, what the Stays field says).
- ``stays_field.py``: write-back to a custom field of the Stays reservation.
- ``notify.py``: signed notifications (Standard Webhooks) to the operator's automation.
- ``sender.py``: one attempt at each due row, at least once; no Dagster here (orchestration/delivery.py).
"""
