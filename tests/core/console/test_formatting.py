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


@pytest.mark.parametrize(("cents", "text"), [(0, "0.00"), (5, "0.05"), (-5, "-0.05"), (123_456, "1,234.56"),
                                             (-100_000_000_01, "-100,000,000.01")])
def test_money_for_people_is_separated_in_thousands_and_exact(cents, text):
    assert formatting.grouped_money(cents) == text


def test_money_of_several_currencies_is_shown_side_by_side_never_added():
    assert formatting.money_per_currency([("CAD", 2_000), ("USD", 123_456_78), (None, 1)]) == (
        "20.00 CAD · 123,456.78 USD · 0.01 (unknown currency)")
    assert formatting.money_per_currency([]) == "0.00"
    assert [formatting.currency_shown(code) for code in ("GBP", None, "")] == ["GBP", "unknown", "unknown"]
