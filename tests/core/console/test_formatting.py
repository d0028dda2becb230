import html

import pytest

from core.console import formatting
from tests.support.markdown import markup, plain_text, unescaped_punctuation


def test_counts_are_separated_in_thousands_and_plural_unless_one():
    assert [formatting.count(n, "page") for n in (0, 1, 2, 12_345)] == ["0 pages", "1 page", "2 pages", "12,345 pages"]


PAYLOADS = [
    "![t](http://evil.test/t.png)", "[click](http://evil.test)", "[r][1]\n\n[1]: http://evil.test",
    "<img src=http://evil.test/x>", '<a href="http://evil.test">x</a>', "<http://evil.test/auto>",
    "<x@evil.test>", "http://evil.test/bare", "HTTPS://evil.test", "www.evil.test", "x@evil.test",
    ":red[x]", ":blue-background[x]", ":material/home:", ":streamlit:", "$x$", "$$x$$", "# heading", "> quote",
    "- item", "1. item", "| a | b |", "**bold** _it_ ~~del~~ `code`", "&lt;b&gt; &#60;img&#62;", "a\\", "\\[x](y)",
]


@pytest.mark.parametrize("payload", PAYLOADS)
def test_escaped_outside_text_draws_no_markup_and_reads_the_same(payload):
    escaped = formatting.escape_markdown(payload)
    assert markup(escaped) == [] and unescaped_punctuation(escaped) == ""  # no emphasis, heading, list, table…
    assert plain_text(escaped) == " ".join(payload.split())  # the same words; line breaks become spaces


def test_the_payloads_are_markup_unescaped():
    """The checker itself: every payload above but plain punctuation draws something when not escaped."""
    drawn = [payload for payload in PAYLOADS if markup(payload)]
    assert len(drawn) >= 17


@pytest.mark.parametrize("text", ["Acme MSP", "Contoso Managed Services", "INV-0042", "2,500.00 USD"])
def test_ordinary_text_reads_unchanged(text):
    assert plain_text(formatting.escape_markdown(text)) == text


def test_chart_text_holds_no_tag_and_no_template():
    """Plotly draws <a href>, <b> and friends in titles and hovers, and fills %{…} in hover templates."""
    escaped = formatting.escape_plotly('<a href="http://evil.test">x</a> %{x} & co')
    assert "<" not in escaped and ">" not in escaped and "%{" not in escaped
    assert html.unescape(escaped) == '<a href="http://evil.test">x</a> %{x} & co'


def test_numbers_and_amounts_for_people_are_separated_in_thousands_and_exact():
    assert [formatting.number(n) for n in (0, 999, 1_000, 12_345_678)] == ["0", "999", "1,000", "12,345,678"]
    assert [formatting.money_text(c) for c in (0, 5, 123_456, 83_955_677, -1_000_001, None)] == [
        "0.00", "0.05", "1,234.56", "839,556.77", "-10,000.01", None]
    assert formatting.money(83_955_677) == "839556.77"  # files and the command line keep the plain form


def test_an_amount_always_carries_its_currency_and_none_is_its_own_group():
    assert formatting.money_in(123_456, "USD") == "1,234.56 USD"
    assert formatting.money_in(1_200, None) == "12.00 (no currency)"
    assert [formatting.currency_label(code) for code in ("GBP", None, "")] == ["GBP", "no currency", "no currency"]


@pytest.mark.parametrize(("current", "previous", "said"), [
    (112, 100, "+12 (+12%)"), (1, 2, "-1 (-50%)"), (5, 5, "no change"), (4, 0, "+4 (none before)"),
    (12_000, 1_000, "+11,000 (+1,100%)"), (0, 0, "no change"),
])
def test_a_change_between_periods_is_said_with_its_sign_and_share(current, previous, said):
    assert formatting.change(current, previous) == said


def test_money_of_several_currencies_is_shown_side_by_side_never_added():
    assert formatting.money_per_currency([("CAD", 2_000), ("USD", 123_456_78), (None, 1)]) == (
        "20.00 CAD · 123,456.78 USD · 0.01 (no currency)")
    assert formatting.money_per_currency([]) == "0.00"
