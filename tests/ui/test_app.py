import json
from urllib.parse import parse_qs, urlsplit

import pytest
from streamlit.testing.v1 import AppTest

from core.access import PAGES
from tests.support.console_db import APP
from ui.auth import COOKIE_KEY


def _sign_in_link(at: AppTest) -> str:
    links = at.get("link_button")
    assert [link.proto.label for link in links] == ["Sign in"]
    return str(links[0].proto.url)


def test_signed_out_visitors_see_only_a_way_to_sign_in(console):
    at = AppTest.from_file(str(APP), default_timeout=30).run()
    assert not at.exception
    assert at.title[0].value == "HaloPSA Sync Console"
    assert _sign_in_link(at).startswith("/session/sign-in?next=")
    assert "Acme" not in str(at)


def test_a_session_cookie_signs_in_until_it_is_signed_out_in_any_tab(console, signed_in):
    first, second = (AppTest.from_file(str(APP), default_timeout=30) for _ in range(2))
    signed_in(first, "cs")
    second.session_state[COOKIE_KEY] = first.session_state[COOKIE_KEY]  # a second tab of the same browser
    first.run()
    second.run()
    assert "Signed in as cs@example.com" in [text.value for text in first.text][0]
    first.button(key="sidebar.logout").click().run()
    assert "You signed out" in first.info[0].value
    second.run()  # the other tab's next run
    assert not second.exception and "You signed out" in second.info[0].value
    assert "Acme" not in str(second)
    query = parse_qs(urlsplit(_sign_in_link(second)).query)
    assert query["ended"] == ["signed_out"]


def _redirect(at: AppTest) -> str:
    """The address the page's own script loads: a page load ends the tab's Streamlit session and its timers."""
    scripts = [element.proto.body for element in at.get("html")]
    assert len(scripts) == 1 and scripts[0].startswith("<script>window.location.replace(")
    return str(json.loads(scripts[0].removeprefix("<script>window.location.replace(").removesuffix(")</script>")))


def test_a_tab_whose_session_ended_loads_the_sign_in_page_and_nothing_can_end_its_script(console, signed_in):
    at = AppTest.from_file(str(APP), default_timeout=30)
    signed_in(at, "cs")
    at.query_params["partner"] = "</script><script>alert(1)</script>"
    at.run()
    at.button(key="sidebar.logout").click().run()
    assert "</script><script>" not in at.get("html")[0].proto.body
    target = urlsplit(_redirect(at))
    assert target.path == "/session/sign-in" and parse_qs(target.query)["ended"] == ["signed_out"]
    assert _redirect(at) == _sign_in_link(at)


def test_a_link_names_the_partner_and_picking_one_puts_it_in_the_url(console, signed_in):
    unlinked = AppTest.from_file(str(APP), default_timeout=30)
    signed_in(unlinked, "cs")
    unlinked.run()
    assert unlinked.query_params["partner"] == str(unlinked.session_state["partner_id"])  # a link to share
    at = AppTest.from_file(str(APP), default_timeout=30)
    signed_in(at, "cs")
    at.query_params["partner"] = str(console["globex"].partner_id)
    at.run()
    assert at.selectbox(key="sidebar.partner").value == console["globex"].partner_id
    assert at.session_state["partner_id"] == console["globex"].partner_id
    # (AppTest's reruns skip the sidebar: that a pick made since outlives the link is in the browser test)


@pytest.mark.parametrize("partner", ["999", "abc", "1" * 40])
def test_a_link_to_a_partner_that_cannot_be_opened_says_so_and_shows_another(console, signed_in, partner):
    at = AppTest.from_file(str(APP), default_timeout=30)
    signed_in(at, "cs")
    at.query_params["partner"] = partner
    at.run()
    assert not at.exception
    assert "cannot open" in at.warning[0].value
    assert at.session_state["partner_id"] in {console["acme"].partner_id, console["globex"].partner_id}


def test_a_partner_user_linked_to_another_partner_sees_only_its_own(console, signed_in):
    at = AppTest.from_file(str(APP), default_timeout=30)
    signed_in(at, "acme")
    at.query_params["partner"] = str(console["globex"].partner_id)
    at.run()
    assert not at.exception and "Globex" not in str(at)


def test_every_page_file_is_in_the_page_registry_exactly_once():
    slugs = [spec.slug for spec in PAGES]
    assert len(set(slugs)) == len(slugs)
    assert sorted(slugs) == sorted(path.stem for path in (APP.parent / "pages").glob("*.py"))


@pytest.mark.parametrize(("account", "title"), [("acme", "Invoices"), ("cs", "Partner overview"), ("pm", "Adoption")])
def test_each_role_lands_on_the_page_it_works_in(app_as, account, title):
    """Issue 14: partner users landed on Connection; they come for their invoices."""
    at = app_as(account)
    assert not at.exception
    assert at.title[0].value == title
