import csv
import io
import json

import pytest

from core.console import exports
from core.console.formatting import money


@pytest.mark.parametrize("value", ["=HYPERLINK(\"x\")", "+1+1", "-2+3", "@SUM(A1)", "\tx", "\rx", "|calc", "%0A"])
def test_formula_like_text_is_neutralised(value):
    assert exports.safe_cell(value) == "'" + value


@pytest.mark.parametrize("value", ["Acme Ltd", "INV-0042", 12, None, "2026-01-01"])
def test_ordinary_values_are_kept(value):
    assert exports.safe_cell(value) == value


def test_csv_round_trips_rows_and_neutralises_cells():
    rows = [{"number": "=cmd|' /C calc'!A0", "customer": "Acme, Inc.", "total": "12.50"}]
    text = exports.csv_text(rows)
    parsed = list(csv.DictReader(io.StringIO(text)))
    assert parsed == [{"number": "'=cmd|' /C calc'!A0", "customer": "Acme, Inc.", "total": "12.50"}]


def test_json_streams_a_valid_array_even_when_empty():
    out = io.StringIO()
    assert exports.write_json(iter([]), out) == 0
    assert json.loads(out.getvalue()) == []
    out = io.StringIO()
    assert exports.write_json(iter([{"a": 1}, {"a": 2}]), out) == 2
    assert json.loads(out.getvalue()) == [{"a": 1}, {"a": 2}]


@pytest.mark.parametrize(("cents", "text"),
                         [(0, "0.00"), (5, "0.05"), (123456, "1234.56"), (-250, "-2.50"), (None, None)])
def test_money_is_exact_two_decimal_text(cents, text):
    assert money(cents) == text
