"""The bench's reconciliation section on a small tenant: it finds the injected drift, the resync clears it, and the
reconciliation's requests stay within one whole listing's."""

from bench import reconciliation


def test_the_reconciliation_bench_reads_no_more_than_one_listing_and_clears_its_drift():
    found = reconciliation.measure(600)
    assert found["status"] == "succeeded" and found["ratio"] <= 1.0
    assert found["drift"] >= 3 and found["drift_after_resync"] == 0
    assert abs(found["estimated"] - found["requests"]) <= 1
