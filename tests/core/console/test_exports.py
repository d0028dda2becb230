import csv
import io
import itertools
import json
import re
import threading
import unicodedata
from datetime import date, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from core.access import Principal
from core.console import exports
from core.console import invoices as invoices_screen
from core.console.formatting import money
from core.errors import Refused
from core.store import database as db
from core.store.tables import AUDIT_TABLE, Role
from tests.support.clock import NOW
from tests.support.factories import add_partner
from tests.support.invoice_book import add_book, invoice


def csv_text(rows):
    return exports.csv_file(rows)[0].decode()

# Every payload of issue 13 finding 5, and the neighbours of each: a spreadsheet reads all of these as formulas
# (or splits them into a cell that is one) unless they are neutralised.
PAYLOADS = [
    "=HYPERLINK(\"x\")", "+1+1", "-2+3", "@SUM(A1)", "\tx", "\rx", "|calc", "%0A",
    " =1+1", "\n=2+3", "＝HYPERLINK(\"http://evil.example\")", ";=1+1", "\t=1+1", "\r=1+1",
    "   @SUM(A1)", "\u3000=1+1", "\u00a0=1+1", "\u200b=1+1", "\ufeff=1+1", "\x00=1+1", "\x0b+1", ", =1+1",
    " ;\t-2+3", "＋1+1", "－2+3", "＠SUM(A1)", "﹦1+1", "⁼1+1", "｜calc",
]


@pytest.mark.parametrize("value", PAYLOADS)
def test_formula_like_text_is_neutralised_by_one_leading_quote(value):
    assert exports.safe_cell(value) == "'" + value


@pytest.mark.parametrize("value", ["Acme Ltd", "INV-0042", 12, -3, None, "2026-01-01", "-12.50", "-2", "-0.05",
                                   "'quoted", " Acme", "Ａcme", "a=b", "Acme; Inc."])
def test_ordinary_values_and_negative_amounts_are_kept(value):
    assert exports.safe_cell(value) == value


def test_quotes_already_in_front_of_a_formula_get_one_more_so_removing_one_restores_the_text():
    assert exports.safe_cell("'=1+1") == "''=1+1"
    assert exports.safe_cell("''@x") == "'''@x"


def test_csv_round_trips_rows_and_neutralises_cells():
    rows = [{"number": "=cmd|' /C calc'!A0", "customer": "Acme, Inc.", "total": "12.50", "due": "-2.50"}]
    text = csv_text(rows)
    parsed = list(csv.DictReader(io.StringIO(text)))
    assert parsed == [{"number": "'=cmd|' /C calc'!A0", "customer": "Acme, Inc.", "total": "12.50", "due": "-2.50"}]


def test_every_cell_is_quoted_so_a_semicolon_never_starts_a_cell():
    """Spreadsheets set to `;` as the separator split an unquoted `Acme;=1+1` into a formula cell (OWASP)."""
    text = csv_text([{"customer": "Acme;=1+1", "days": 3}])
    assert text.splitlines() == ['"customer","days"', '"Acme;=1+1","3"']


# ---- property: whatever text HaloPSA sends, no cell read back starts a formula ----------------------------------

TRIGGERS = "=+-@|%"
_PLAIN_NEGATIVE = re.compile(r"-[0-9]+(\.[0-9]+)?")


def _significant(cell: str) -> str:
    """The cell as a spreadsheet sees its start: NFKC (full-width ＝ is =), then without leading white space, control
    and format characters and `,` `;` (a separator in some locales)."""
    text = unicodedata.normalize("NFKC", cell)
    while text and (text[0].isspace() or text[0] in ",;" or unicodedata.category(text[0]) in ("Cc", "Cf")):
        text = text[1:]
    return text


def _formula_like(cell: str) -> bool:
    if _PLAIN_NEGATIVE.fullmatch(cell):
        return False
    return bool(cell) and (unicodedata.category(cell[0]) == "Cc" or _significant(cell)[:1] in tuple(TRIGGERS))


JUNK = " \t\r\n\x00\x0b\x0c\u00a0\u3000\u200b\u2028\ufeff,;'"
outside_text = st.one_of(
    st.text(),
    st.builds(lambda junk, trigger, rest: junk + trigger + rest, st.text(alphabet=JUNK, max_size=4),
              st.sampled_from("=+-@|%＝＋－＠﹦﹢﹣⁼⁺₌₊｜％﹫﹪"), st.text(max_size=12)),
    st.from_regex(r"-?[0-9]{1,6}(\.[0-9]{1,2})?", fullmatch=True),
)


@settings(max_examples=500, deadline=None)
@given(cells=st.lists(outside_text, min_size=1, max_size=4))
def test_no_cell_read_back_starts_a_formula_and_only_risky_text_is_changed(cells):
    rows = [{f"c{i}": cell for i, cell in enumerate(cells)}]
    [read] = list(csv.reader(io.StringIO(csv_text(rows), newline="")))[1:]
    for original, cell in zip(cells, read, strict=True):
        assert cell in (original, "'" + original)  # the original text, with at most one quote in front
        assert not _formula_like(cell)  # (a quote in front is not formula-like)
        assert cell == original or _formula_like(original.lstrip("'"))  # only text that needs a quote gets one


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


# ---- finding 9: streamed, bounded exports -----------------------------------------------------------------------

def test_csv_is_made_lazily_in_chunks_of_bounded_size():
    """Memory stays bounded: an endless source still yields chunks, each of at most CHUNK_ROWS rows, and the source
    is read only as far as the chunks taken."""
    source = ({"n": n, "customer": "=1+1"} for n in itertools.count())
    chunks = exports.CsvChunks(source)
    taken = list(itertools.islice(chunks, 3))
    rows_per_chunk = [len(list(csv.reader(io.StringIO(chunk, newline="")))) for chunk in taken]
    assert rows_per_chunk == [exports.CHUNK_ROWS + 1, exports.CHUNK_ROWS, exports.CHUNK_ROWS]  # the header first
    assert chunks.rows == 3 * exports.CHUNK_ROWS
    assert next(source)["n"] == 3 * exports.CHUNK_ROWS  # nothing was read ahead
    assert all(len(chunk) < 40 * (exports.CHUNK_ROWS + 1) for chunk in taken)


def test_write_csv_writes_chunk_by_chunk_and_counts_rows():
    writes = []

    class Recorder:
        def write(self, text):
            writes.append(text)
            return len(text)

    count = exports.write_csv(({"n": n} for n in range(2 * exports.CHUNK_ROWS + 5)), Recorder())
    assert count == 2 * exports.CHUNK_ROWS + 5
    assert len(writes) == 3 and max(map(len, writes)) < 10 * (exports.CHUNK_ROWS + 1)
    assert len(list(csv.reader(io.StringIO("".join(writes), newline="")))) == count + 1


@pytest.fixture
def partner(engine, settings):
    partner_id = add_partner(engine, settings, now=NOW)
    add_book(engine, partner_id, [invoice(i, due=date(2026, 10, i), total=1_000 * i) for i in range(1, 11)])
    return partner_id


def _exports(engine):
    with engine.connect() as conn:
        return conn.execute(select(AUDIT_TABLE.c.actor, AUDIT_TABLE.c.at).where(AUDIT_TABLE.c.action == "export")
                            .order_by(AUDIT_TABLE.c.id)).all()


def test_a_download_over_the_row_limit_is_refused_with_what_to_do_and_nothing_recorded(engine, partner, monkeypatch):
    monkeypatch.setattr(exports, "MAX_DOWNLOAD_ROWS", 6)
    who = Principal(Role.PARTNER, "ap@acme.example", partner)

    with pytest.raises(Refused) as refused:
        invoices_screen.export_csv(engine, who, partner, invoices_screen.Filters(), now=NOW, throttled=True)

    assert "10 rows" in refused.value.message and "at most 6" in refused.value.message
    assert "Narrow the filters" in refused.value.message and "python -m core invoices" in refused.value.message
    assert exports.download_refusal(engine, who.user, rows=10, now=NOW) == refused.value.message
    assert _exports(engine) == []
    narrowed = invoices_screen.export_csv(engine, who, partner, invoices_screen.Filters(aging="31-60"), now=NOW,
                                          throttled=True)
    assert 0 < narrowed.rows <= 6 and len(_exports(engine)) == 1


def test_downloads_past_the_rate_are_refused_with_when_to_retry_for_that_person_only(engine, settings, partner):
    who = Principal(Role.PARTNER, "ap@acme.example", partner)
    export = invoices_screen.export_csv
    for second in range(exports.DOWNLOADS_PER_WINDOW):
        assert export(engine, who, partner, invoices_screen.Filters(), now=NOW + timedelta(seconds=10 * second),
                      throttled=True).rows == 10
    late = NOW + timedelta(seconds=45)

    with pytest.raises(Refused) as refused:
        export(engine, who, partner, invoices_screen.Filters(), now=late, throttled=True)

    retry = NOW + exports.DOWNLOAD_WINDOW
    assert refused.value.message == exports.download_refusal(engine, who.user, rows=10, now=late)
    assert "15 s" in refused.value.message and retry.strftime("%Y-%m-%d %H:%M:%S UTC") in refused.value.message
    assert len(_exports(engine)) == exports.DOWNLOADS_PER_WINDOW  # one audit event per export; none for the refusal
    # the limit is in the database: another process (engine) on it refuses too
    other = db.engine_for(settings)
    with pytest.raises(Refused):
        export(other, who, partner, invoices_screen.Filters(), now=late, throttled=True)
    other.dispose()
    # another person, and the command line (not throttled), are not held back; the first person is again once the
    # oldest download leaves the window
    assert export(engine, Principal(Role.CS, "cs@example.com"), partner, invoices_screen.Filters(), now=late,
                  throttled=True).rows == 10
    assert export(engine, who, partner, invoices_screen.Filters(), now=late).rows == 10
    assert exports.download_refusal(engine, who.user, rows=10, now=retry) is not None  # the unthrottled one counts
    assert export(engine, who, partner, invoices_screen.Filters(), now=retry + timedelta(seconds=10),
                  throttled=True).rows == 10


def test_simultaneous_downloads_never_pass_the_rate(engine, partner):
    who = Principal(Role.PARTNER, "ap@acme.example", partner)
    outcomes: list[str] = []
    start = threading.Barrier(8)

    def press() -> None:
        start.wait()
        try:
            invoices_screen.export_csv(engine, who, partner, invoices_screen.Filters(), now=NOW, throttled=True)
            outcomes.append("exported")
        except Refused:
            outcomes.append("refused")

    threads = [threading.Thread(target=press) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["exported"] * exports.DOWNLOADS_PER_WINDOW + ["refused"] * (
        8 - exports.DOWNLOADS_PER_WINDOW)
    assert len(_exports(engine)) == exports.DOWNLOADS_PER_WINDOW
