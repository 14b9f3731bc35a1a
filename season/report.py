"""The season's report: one table row per seeded run (and a total), the faults scheduled and fired,
what admin.attention showed and how early, then each run's incidents and notes in words."""

from __future__ import annotations

import statistics
from collections import Counter

from season.config import ZONE
from season.faults import FAULT_KINDS
from season.faults.base import stamp
from season.measure import CAUSES
from season.result import SeasonResult


def format_report(results: list[SeasonResult]) -> str:
    lines = (_runs_table(results) + [""] + _causes_table(results) + [""] + _last_mile_table(results) + [""]
             + _faults_table(results) + [""] + _attention_table(results))
    for result in results:
        lines += [""] + _run_in_words(result)
    return "\n".join(lines)


def _runs_table(results: list[SeasonResult]) -> list[str]:
    head = ("| run (seed) | bookings | guest stays arrived | cancelled | modified | last-minute "
            "| same-day turnovers | PINs issued | lockouts avoidable (min) | lockouts unavoidable (min) "
            "| unavoidable surfaced 1 h before arrival | stranger-min avoidable | stranger-min unavoidable "
            "| duplicate PINs | lost | wrongly cancelled | faults injected |")
    lines = [head, "|" + "|".join([" --- "] * (head.count("|") - 1)) + "|"]
    totals = Counter()

    def row(label: str, r: dict) -> str:
        return (f"| {label} | {r['bookings']} | {r['arrived']} | {r['cancelled']} | {r['modified']} "
                f"| {r['last_minute']} | {r['turnovers']} | {r['pins']} | {r['lock_av']} ({r['lock_av_min']}) "
                f"| {r['lock_un']} ({r['lock_un_min']}) | {r['surfaced']}/{r['lock_un']} | {r['str_av']} "
                f"| {r['str_un']} | {r['dups']} | {r['lost']} | {r['wrong']} | {r['faults']} |")

    for result in results:
        figures = _figures(result)
        totals.update(figures)
        lines.append(row(f"{result.seed}", figures))
    if len(results) > 1:
        lines.append(row("**total**", totals))
    return lines


def _figures(result: SeasonResult) -> dict[str, int]:
    av_min, un_min = result.lockout_minutes
    str_av, str_un = result.stranger_minutes
    return {
        "bookings": result.bookings, "arrived": result.stays_arrived, "cancelled": result.cancelled,
        "modified": result.modified, "last_minute": result.last_minute, "turnovers": result.same_day_turnovers,
        "pins": result.pins_issued, "lock_av": len(result.avoidable_lockouts), "lock_av_min": av_min,
        "lock_un": len(result.unavoidable_lockouts), "lock_un_min": un_min,
        "surfaced": len(result.unavoidable_lockouts) - len(result.unsurfaced_unavoidable),
        "str_av": str_av, "str_un": str_un, "dups": len(result.duplicates), "lost": len(result.lost),
        "wrong": len(result.wrongly_cancelled), "faults": sum(result.faults.values()),
    }


def _causes_table(results: list[SeasonResult]) -> list[str]:
    """Lockout minutes by why the guest stood at a locked door (the first cause of each minute)."""
    head = "| run (seed) | " + " | ".join(CAUSES) + " |"
    lines = [head, "|" + "|".join([" --- "] * (len(CAUSES) + 1)) + "|"]
    totals: Counter = Counter()
    for result in results:
        by_cause = result.lockout_minutes_by_cause
        totals.update(by_cause)
        lines.append(f"| {result.seed} | " + " | ".join(str(by_cause[c]) for c in CAUSES) + " |")
    if len(results) > 1:
        lines.append("| **total** | " + " | ".join(str(totals[c]) for c in CAUSES) + " |")
    return lines


def _last_mile_table(results: list[SeasonResult]) -> list[str]:
    """What reached the door and how: webhooks, same digits across date changes, offline backup codes."""
    head = ("| run (seed) | webhook events sent | delivered | dropped | webhook runs | date changes on the same lock "
            "| kept their digits | backup codes issued | guests who opened with one "
            "| offline-code stranger-min avoidable | offline-code stranger-min all |")
    lines = [head, "|" + "|".join([" --- "] * (head.count("|") - 1)) + "|"]
    for r in results:
        avoidable, every = r.offline_code_stranger_minutes
        lines.append(f"| {r.seed} | {r.webhooks_sent} | {r.webhooks_delivered} | {r.webhooks_dropped} | {r.webhook_runs} "
                     f"| {r.date_changes_same_lock} | {r.date_changes_kept_digits} | {r.backup_codes_issued} "
                     f"| {len(r.backup_codes_used)} | {avoidable} | {every} |")
    return lines


def _faults_table(results: list[SeasonResult]) -> list[str]:
    scheduled, fired = Counter(), Counter()
    for result in results:
        scheduled.update(result.faults)
        fired.update(result.faults_fired)
    return (["| fault | scheduled | fired |", "| --- | --- | --- |"]
            + [f"| {kind} | {scheduled[kind]} | {fired[kind]} |" for kind in FAULT_KINDS])


def _attention_table(results: list[SeasonResult]) -> list[str]:
    head = ("| admin.attention issue | stays or listings flagged | named stays flagged before check-in "
            "| median lead (h) | min lead (h) |")
    lines = [head, "| --- | --- | --- | --- | --- |"]
    for issue in sorted({issue for r in results for issue in r.attention}):
        flagged = sum(len(r.attention.get(issue, {})) for r in results)
        leads = [lead for r in results for lead in r.attention_leads.get(issue, [])]
        before = sum(1 for lead in leads if lead >= 0)
        median = f"{statistics.median(leads):.1f}" if leads else "-"
        low = f"{min(leads):.1f}" if leads else "-"
        lines.append(f"| {issue} | {flagged} | {before}/{len(leads)} | {median} | {low} |")
    return lines


def _run_in_words(result: SeasonResult) -> list[str]:
    summary = (f"Run {result.seed}: {result.days} days, {result.listings} listings, {result.step_minutes}-minute "
               f"steps; {result.syncs} syncs ({result.syncs_failed} failed runs), {result.runs} runs from the sensors "
               f"({result.webhook_runs} of them webhook runs, {result.delivery_runs} delivery runs), "
               f"{result.spent_keys_skipped} requests skipped for a spent run key, {result.quarantined} records "
               f"quarantined, {result.pin_codes_in_db} codes in the database; "
               f"{result.wall_seconds / 60:.1f} min wall clock.")
    lines = [summary]
    for incident in result.lockouts.values():
        if incident.surfaced_at is None:
            lead = "not surfaced"
        else:
            hours = (incident.check_in_at - incident.surfaced_at).total_seconds() / 3600
            lead = f"surfaced as {incident.surfaced_as} {hours:.1f} h before check-in"
        lines.append(f"- lockout {incident.code} from {stamp(incident.first_at.astimezone(ZONE))}: "
                     f"{incident.minutes} min ({incident.avoidable_minutes} avoidable; {incident.reason}); {lead}")
    for (code, device), incident in result.strangers.items():
        lines.append(f"- PIN of {code} opened lock {device} outside its stay from "
                     f"{stamp(incident.first_at.astimezone(ZONE))}: {incident.minutes} min "
                     f"({incident.avoidable_minutes} avoidable; {incident.reason})")
    lines += [f"- {note}" for note in sorted(result.fault_notes)]
    lines += [f"- TARGET MISSED: {problem}" for problem in result.problems()]
    return lines
