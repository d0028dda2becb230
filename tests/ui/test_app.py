from streamlit.testing.v1 import AppTest

from core.access import PAGES
from tests.support.console_db import APP, PASSWORD


def test_signed_out_visitors_see_only_the_sign_in_form(console):
    at = AppTest.from_file(str(APP), default_timeout=30).run()
    assert not at.exception
    assert at.title[0].value == "HaloPSA Sync Console"
    assert [b.label for b in at.button] == [] or all("Sign" in b.label for b in at.button)
    assert "Acme" not in str(at)


def test_local_login_with_a_wrong_password_says_so_and_a_right_one_signs_in(console):
    at = AppTest.from_file(str(APP), default_timeout=30).run()
    at.text_input(key="login.email").input("cs@example.com")
    at.text_input(key="login.password").input("wrong-password")
    at.button[0].click().run()
    assert "do not match" in at.error[0].value
    at.text_input(key="login.password").input(PASSWORD)
    at.button[0].click().run()
    assert not at.exception
    assert at.session_state["auth.principal"].user == "cs@example.com"


def test_every_page_file_is_in_the_page_registry_exactly_once():
    slugs = [spec.slug for spec in PAGES]
    assert len(set(slugs)) == len(slugs)
    assert sorted(slugs) == sorted(path.stem for path in (APP.parent / "pages").glob("*.py"))
