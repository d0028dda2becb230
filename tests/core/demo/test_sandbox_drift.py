"""Contoso's sandbox books drift where no sync looks (for the demo's reconciliation): at their drift time a voided
invoice's total is corrected and a draft added, both stamped a month back, and a paid invoice deleted; the same
changes whether the books are caught up hour by hour or at once (a restarted console sees the same HaloPSA)."""

from datetime import UTC, datetime, timedelta

from core.demo import sandbox

EPOCH = datetime(2026, 9, 1, tzinfo=UTC)
HOST = "contoso.sandbox"


def _tenant():
    return sandbox._Tenant(HOST, EPOCH)


def test_contosos_books_drift_three_ways_stamped_before_every_sync_window():
    drift_at = EPOCH + sandbox.PRESETS["contoso"].drift_after
    before, after = _tenant(), _tenant()
    before.catch_up(drift_at - timedelta(hours=1))
    after.catch_up(drift_at + timedelta(hours=1))
    assert not before.drifted and after.drifted
    kept = after.emulator.invoices
    gone = [halo_id for halo_id, row in before.emulator.invoices.items() if halo_id not in kept
            and float(row["amountdue"]) == 0 and not row["voided"]]
    assert len(gone) == 1  # the paid invoice deleted (the books' own deletions take unpaid ones)
    back = (drift_at - sandbox.DRIFT_BACKDATE).strftime("%Y-%m-%dT%H:%M")
    stamped_back = {halo_id: row for halo_id, row in kept.items() if row["last_modified"].startswith(back)}
    voided = [row for row in stamped_back.values() if row["voided"]]
    new = stamped_back.keys() - before.emulator.invoices.keys()
    draft = [stamped_back[halo_id] for halo_id in new if not stamped_back[halo_id]["posted"]]
    was = float(before.emulator.invoices[voided[0]["id"]]["total"])
    assert len(voided) == 1 and float(voided[0]["total"]) == was + 125
    assert len(draft) == 1 and float(draft[0]["total"]) == 480.0


def test_the_drift_is_the_same_however_the_books_are_caught_up():
    drift_at = EPOCH + sandbox.PRESETS["contoso"].drift_after
    hourly, at_once = _tenant(), _tenant()
    moment = drift_at - timedelta(hours=6)
    while moment <= drift_at + timedelta(hours=6):
        hourly.catch_up(moment)
        moment += timedelta(hours=1)
    at_once.catch_up(drift_at + timedelta(hours=6))
    assert dict(hourly.emulator.invoices) == dict(at_once.emulator.invoices)
