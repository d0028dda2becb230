"""The sign-in page and the session gate over HTTP (httpx's ASGI transport), on the AppTest console database."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import parse_qs, urlsplit

import anyio
import httpx
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from core.actions.sign_in import SessionKeys, sign_out
from core.store.sessions import COOKIE_NAME
from tests.support.clock import NOW
from tests.support.console_db import PASSWORD
from ui import session_routes


class Browser:
    """A browser without JavaScript: keeps cookies, follows no redirect."""

    def __init__(self, app: Starlette) -> None:
        self.app = app
        self.cookies = httpx.Cookies()

    def _send(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        async def send() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app, client=("198.51.100.7", 50000))
            async with httpx.AsyncClient(transport=transport, base_url="http://console.test",
                                         cookies=self.cookies) as http:
                response = await http.request(method, url, **kwargs)
                self.cookies = http.cookies
                return response

        with ThreadPoolExecutor(max_workers=1) as thread:  # an event loop of its own, whatever runs on this thread
            return thread.submit(anyio.run, send).result()

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self._send("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self._send("POST", url, **kwargs)


@pytest.fixture
def client(console) -> Iterator[Browser]:
    for cached in (session_routes._settings, session_routes._engine, session_routes._keys):
        cached.cache_clear()

    async def streamlit_page(request: Request) -> PlainTextResponse:
        return PlainTextResponse("streamlit page")

    yield Browser(Starlette(routes=[*session_routes.routes(), Route("/{path:path}", streamlit_page)],
                               middleware=[Middleware(session_routes.SessionGate)]))
    session_routes._engine().dispose()
    for cached in (session_routes._settings, session_routes._engine, session_routes._keys):
        cached.cache_clear()


def _sign_in(client: Browser, email: str, password: str, next_path: str = "/syncs?partner=2"):
    client.get(session_routes.SIGN_IN_PATH, params={"next": next_path})
    csrf = client.cookies.get("halo_console_csrf")
    return client.post(session_routes.SIGN_IN_PATH, data={"email": email, "password": password, "csrf": csrf,
                                                          "next": next_path})


def test_a_deep_link_without_a_session_goes_to_sign_in_and_back_to_the_page_and_partner_asked(client):
    asked = client.get("/syncs?partner=2", headers={"accept": "text/html"})
    assert asked.status_code == 303
    target = urlsplit(asked.headers["location"])
    assert target.path == session_routes.SIGN_IN_PATH
    assert parse_qs(target.query)["next"] == ["/syncs?partner=2"]
    signed = _sign_in(client, "cs@example.com", PASSWORD)
    assert signed.status_code == 303 and signed.headers["location"] == "/syncs?partner=2"
    cookie = signed.headers["set-cookie"]
    assert f"{COOKIE_NAME}=" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie and "Max-Age=" in cookie
    assert client.get("/syncs?partner=2").text == "streamlit page"  # the cookie now opens pages
    assert client.get("/_stcore/health").status_code == 200  # Streamlit's own paths are never gated


def test_a_wrong_password_shows_the_form_again_with_the_email_escaped_and_nothing_set(client):
    typed = '"><img src=http://evil.test/x>@example.com'
    answer = _sign_in(client, typed, "wrong")
    assert answer.status_code == 401
    assert "do not match an account" in answer.text
    assert "<img src=http://evil.test" not in answer.text and "&lt;img" in answer.text
    assert COOKIE_NAME not in answer.headers.get("set-cookie", "")
    assert "default-src 'none'" in answer.headers["content-security-policy"]


def test_a_paused_account_gets_the_time_the_pause_lifts(client):
    answers = [_sign_in(client, "cs@example.com", "wrong") for _ in range(7)]
    assert [a.status_code for a in answers] == [401] * 6 + [429]
    assert "Sign-in is paused until" in answers[-1].text


@pytest.mark.parametrize("next_path", ["//evil.test/x", "https://evil.test/", "/\\evil.test", "/session/sign-in",
                                       "javascript:alert(1)", "/ok\r\nSet-Cookie: x=1"])
def test_next_never_leaves_the_site(client, next_path):
    answer = _sign_in(client, "cs@example.com", PASSWORD, next_path=next_path)
    assert answer.status_code == 303 and answer.headers["location"] == "/"


def test_a_post_without_the_forms_token_is_refused(client):
    answer = client.post(session_routes.SIGN_IN_PATH, data={"email": "cs@example.com", "password": PASSWORD,
                                                            "csrf": "made-up", "next": "/"})
    assert answer.status_code == 403 and "expired" in answer.text
    assert COOKIE_NAME not in answer.headers.get("set-cookie", "")


def test_after_sign_out_the_cookie_opens_nothing_and_the_sign_in_page_says_why(client, engine, settings):
    signed = _sign_in(client, "cs@example.com", PASSWORD)
    cookie = signed.cookies[COOKIE_NAME]
    sign_out(engine, cookie, now=NOW, keys=SessionKeys.load(engine, settings))
    answer = client.get("/overview")
    assert answer.status_code == 303
    query = parse_qs(urlsplit(answer.headers["location"]).query)
    assert query["ended"] == ["signed_out"] and query["next"] == ["/overview"]
    page = client.get(answer.headers["location"])
    assert "You signed out" in page.text
