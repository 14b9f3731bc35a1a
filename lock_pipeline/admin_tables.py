"""What an admin reads in the Dagster UI, as Markdown tables: the day, and one stay's history.

- The day: today's and tomorrow's arrivals and departures per listing, from admin.day_board
  (storage/admin_views.py), in the ``day_board`` asset's metadata.
- A stay's history: its PIN actions, Stays changes and deliveries with their runs, from
  pipeline.access_code_events, in each entry of the ``stay_history`` asset's partition.

Plain Markdown written here, no table library: the rows are few and the format is fixed. Never a
PIN: only the masked one.

Names come from Stays (listing, guest, stay code) and may look like Markdown or HTML: every ASCII
punctuation character in them is backslash-escaped (CommonMark), so they show as the text they are
and never become a link, emphasis, a tag or a table cell boundary.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import date, datetime
from zoneinfo import ZoneInfo

HISTORY_ROWS = 100  # the newest entries of a stay's history; admin.access_history has them all
HISTORY_COLUMNS = ("When", "What", "Outcome", "Detail", "Run")

COLUMNS = ("Listing", "Stay", "Guest", "Movement", "Check-in", "Check-out", "Code", "PIN", "Delivered",
           "Needs a person")
NOTHING_NEEDED = "—"
_PUNCTUATION = re.compile(r"([!-/:-@\[-`{-~])")  # every ASCII punctuation character
_RUN_ID = re.compile(r"^[0-9a-f-]{36}$")  # a Dagster run id: safe to put in a link


def render_day_board(rows: Sequence[dict], now: datetime, zone: str) -> str:
    """A heading, a one-line summary and a table per day (today, tomorrow), rows as admin.day_board orders them."""
    tz = ZoneInfo(zone)
    today = now.astimezone(tz).date()
    lines = [f"**As of {now.astimezone(tz):%a %d %b %Y %H:%M}** ({zone}): "
             f"{summary(rows)}", ""]
    for label, day in (("Today", today), ("Tomorrow", date.fromordinal(today.toordinal() + 1))):
        day_rows = [row for row in rows if row["day"] == day]
        lines += [f"### {label}, {day:%A %d %B}", ""]
        if not day_rows:
            lines += ["No arrivals or departures.", ""]
            continue
        lines.append("| " + " | ".join(COLUMNS) + " |")
        lines.append("|" + "|".join(" --- " for _ in COLUMNS) + "|")
        lines += ["| " + " | ".join(_cell(value) for value in _cells(row)) + " |" for row in day_rows]
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def summary(rows: Sequence[dict]) -> str:
    """e.g. 'today 3 arrivals, 2 departures; tomorrow 1 arrival, 0 departures; 1 stay needs a person'."""
    parts = []
    for label in ("today", "tomorrow"):
        arrivals = sum(1 for r in rows if r["day_label"] == label and r["movement"] == "arrival")
        departures = sum(1 for r in rows if r["day_label"] == label and r["movement"] == "departure")
        parts.append(f"{label} {_count(arrivals, 'arrival')}, {_count(departures, 'departure')}")
    needing = len({r["reservation_code"] for r in rows if r.get("needs_a_person")})
    return "; ".join(parts) + f"; {_count(needing, 'stay')} {'needs' if needing == 1 else 'need'} a person"


def render_stay_history(rows: Sequence[dict], zone: str) -> str:
    """A stay's history, oldest first, each entry with a link to its run (``rows``: at, action, outcome,
    detail, run_id, as access/store.py stay_history gives them)."""
    tz = ZoneInfo(zone)
    shown = list(rows)[-HISTORY_ROWS:]
    lines = []
    if len(shown) == HISTORY_ROWS:
        lines += [f"The newest {HISTORY_ROWS} entries (every one: admin.access_history).", ""]
    lines.append("| " + " | ".join(HISTORY_COLUMNS) + " |")
    lines.append("|" + "|".join(" --- " for _ in HISTORY_COLUMNS) + "|")
    for row in shown:
        run_id = row.get("run_id")
        run = f"[{run_id[:8]}](/runs/{run_id})" if run_id and _RUN_ID.match(run_id) else literal(run_id or "")
        cells = [f"{row['at'].astimezone(tz):%d/%m %H:%M:%S}", literal(str(row["action"])), literal(str(row["outcome"])),
                 literal(str(row.get("detail") or "")), run]
        lines.append("| " + " | ".join(_cell(value) for value in cells) + " |")
    return "\n".join(lines) + "\n"


def _cells(row: dict) -> list[object]:
    moving = "arrives" if row["movement"] == "arrival" else "leaves"
    return [
        literal(row.get("listing_name") or row.get("listing_code") or ""),
        literal(row["reservation_code"]),
        literal(row.get("guest_first_name") or ""),
        f"{moving} {row['at_local']:%H:%M}",
        f"{row['check_in_local']:%d/%m %H:%M}",
        f"{row['check_out_local']:%d/%m %H:%M}",
        row.get("access_state") or "",
        row.get("pin_masked") or "",
        _delivery(row),
        row.get("needs_a_person") or NOTHING_NEEDED,
    ]


def _delivery(row: dict) -> str:
    state = row.get("delivery_state") or ""
    return state.replace("_", " ")


def literal(text: str) -> str:
    """Text from outside (Stays) as Markdown that shows exactly that text."""
    return _PUNCTUATION.sub(r"\\\1", text)


def _cell(value: object) -> str:
    return re.sub(r"(?<!\\)\|", r"\\|", " ".join(str(value).split()))  # a pipe never ends the cell


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"
