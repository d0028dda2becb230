from decimal import Decimal

import pandas as pd

from core.console.charts import invoices
from core.console.invoices import AGING_BUCKETS

AMOUNTS = [Decimal("140.00"), Decimal("570.00"), Decimal("95.00"), Decimal("150.00"), Decimal("3000.01")]
AGING = pd.DataFrame({"currency": "USD", "bucket": list(AGING_BUCKETS), "invoices": [2, 2, 2, 1, 1_200],
                      "amount_due": AMOUNTS})


def _in(currency, scale=1):
    return AGING.assign(currency=currency, amount_due=[value * scale for value in AMOUNTS])


def test_aging_figure_has_one_bar_per_bucket_in_order_with_exact_separated_labels():
    fig = invoices.aging_figure(_in("USD", 1000))

    [bar] = fig.data
    assert list(bar.x) == list(AGING_BUCKETS)
    assert list(bar.y) == [140_000.0, 570_000.0, 95_000.0, 150_000.0, 3_000_010.0]
    assert list(bar.text) == ["140,000.00", "570,000.00", "95,000.00", "150,000.00", "3,000,010.00"]
    assert list(bar.marker.color) == [invoices.BUCKET_COLOURS[b] for b in AGING_BUCKETS]
    assert "%{customdata:,} invoices" in bar.hovertemplate and "USD" in bar.hovertemplate
    assert fig.layout.yaxis.tickformat.startswith(",")
    assert not fig.layout.annotations


def test_aging_figure_names_its_axes_with_units_and_the_currency():
    fig = invoices.aging_figure(_in("EUR"))

    assert fig.layout.title.text == "Unpaid amount by days overdue"
    assert fig.layout.xaxis.title.text == "Days overdue (aging bucket)"
    assert fig.layout.yaxis.title.text == "Amount due (EUR)"


def test_currencies_are_drawn_apart_one_panel_each_never_added_up():
    """Issue 14: the chart added USD, CAD and GBP into one bar per bucket."""
    mixed = pd.concat([_in("USD", 100), _in("CAD"), _in("GBP"), _in("no currency")], ignore_index=True)

    fig = invoices.aging_figure(mixed)

    assert [bar.name for bar in fig.data] == ["USD", "CAD", "GBP", "no currency"]
    assert [list(bar.y) for bar in fig.data[1:3]] == [[float(v) for v in AMOUNTS]] * 2
    axes = [fig.layout[f"yaxis{n if n > 1 else ''}"].title.text for n in range(1, 5)]
    assert axes == ["Amount due (USD)", "Amount due (CAD)", "Amount due (GBP)", "Amount due (no currency)"]
    assert [note.text for note in fig.layout.annotations] == ["USD", "CAD", "GBP", "no currency"]
    assert fig.layout.height > invoices.PANEL_HEIGHT  # four panels wrap onto a second row


def test_a_currency_code_from_halopsa_is_drawn_as_text():
    fig = invoices.aging_figure(pd.concat([_in("<b>X</b>"), _in("%{y}")], ignore_index=True))

    assert [note.text for note in fig.layout.annotations] == ["&lt;b&gt;X&lt;/b&gt;", "&#37;{y}"]
    assert "<b>" not in fig.data[0].hovertemplate and "%{y}" not in fig.data[1].hovertemplate.replace("%{y:", "")


def test_an_empty_aging_says_nothing_is_unpaid():
    for empty in (_in("USD", 0).assign(invoices=0), AGING.iloc[0:0]):
        fig = invoices.aging_figure(empty)

        assert fig.layout.annotations[-1].text == "Nothing unpaid matches the filters."


def test_an_empty_aging_has_named_axes_and_no_negative_axis():
    fig = invoices.aging_figure(AGING.iloc[0:0])

    assert (fig.layout.xaxis.title.text, fig.layout.yaxis.title.text) == ("Days overdue (aging bucket)", "Amount due")
    assert fig.layout.yaxis.rangemode == "nonnegative"
