from decimal import Decimal

import pandas as pd

from core.console.charts import invoices
from core.console.invoices import AGING_BUCKETS

AGING = pd.DataFrame({"bucket": list(AGING_BUCKETS), "invoices": [2, 2, 2, 1, 1],
                      "amount_due": [Decimal("140.00"), Decimal("570.00"), Decimal("95.00"), Decimal("150.00"),
                                     Decimal("3000.01")]})


def test_aging_figure_has_one_bar_per_bucket_in_order_with_exact_labels():
    fig = invoices.aging_figure(AGING, currency="USD")

    [bar] = fig.data
    assert list(bar.x) == list(AGING_BUCKETS)
    assert list(bar.y) == [140.0, 570.0, 95.0, 150.0, 3000.01]
    assert list(bar.text) == ["140.00", "570.00", "95.00", "150.00", "3000.01"]
    assert list(bar.marker.color) == [invoices.BUCKET_COLOURS[b] for b in AGING_BUCKETS]
    assert not fig.layout.annotations


def test_aging_figure_names_its_axes_with_units_and_the_currency():
    fig = invoices.aging_figure(AGING, currency="EUR")

    assert fig.layout.title.text == "Unpaid amount by days overdue"
    assert fig.layout.xaxis.title.text == "Days overdue (aging bucket)"
    assert fig.layout.yaxis.title.text == "Amount due (EUR)"
    assert invoices.aging_figure(AGING, currency=None).layout.yaxis.title.text == "Amount due (mixed currencies)"


def test_an_empty_aging_says_nothing_is_unpaid():
    empty = AGING.assign(invoices=0, amount_due=Decimal("0.00"))

    fig = invoices.aging_figure(empty, currency="USD")

    assert fig.layout.annotations[0].text == "Nothing unpaid matches the filters."
