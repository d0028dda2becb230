
import pytest

PAGE = "pages/overview.py"


def _frame_with(at, column):
    return next(frame.value for frame in at.dataframe if column in frame.value.columns)


def test_overview_lists_every_partner_and_the_worklist_for_customer_success(app_as):
    at = app_as("cs").switch_page(PAGE).run()
    assert not at.exception
    assert at.title[0].value == "Partner overview"
    table = _frame_with(at, "freshness").set_index("partner")
    assert list(table.index) == ["Acme MSP", "Globex Partners"]
    assert table["freshness"].to_dict() == {"Acme MSP": "on time", "Globex Partners": "not syncing"}
    assert table.loc["Acme MSP", "fetch_unpaid"] == "available now"
    worklist = _frame_with(at, "next_step")
    assert set(worklist["partner"]) == {"Acme MSP", "Globex Partners"}
    assert set(worklist["reason"]) == {"No subtype mapped"}
    assert {metric.label: metric.value for metric in at.metric}["Need a person"] == "2"


def test_overview_filters_by_text_and_freshness(app_as):
    at = app_as("cs").switch_page(PAGE).run()
    at.text_input(key="overview.search").input("globex").run()
    assert list(_frame_with(at, "freshness")["partner"]) == ["Globex Partners"]
    at.text_input(key="overview.search").input("").run()
    at.multiselect(key="overview.freshness").select("on time").run()
    assert list(_frame_with(at, "freshness")["partner"]) == ["Acme MSP"]
    assert not at.exception


@pytest.mark.parametrize("account", ["acme", "pm"])
def test_partner_and_pm_accounts_cannot_open_the_overview(app_as, page_as, account):
    with pytest.raises(ValueError, match="Could not find a navigation page"):  # not in their navigation
        app_as(account).switch_page(PAGE)
    guarded = page_as(account, PAGE)
    assert [error.value for error in guarded.error] == ["Your account cannot open this page."]
    assert not guarded.dataframe and not guarded.title
