"""The sign-in page and the session gate, as plain HTTP beside Streamlit (st.App routes and middleware): a session
cookie can only be HttpOnly when an HTTP response sets it, which Streamlit's websocket cannot do.

- `GET /session/sign-in?next=/syncs?partner=3` shows the form; `POST` checks it through core.actions.sign_in and
  answers with the session cookie and a redirect to `next` (a path on this site only).
- `SessionGate` sends a page load without a live session to the sign-in page, keeping the asked page and partner
  in `next`, so a deep link opens where it pointed once the person has signed in.
"""

from __future__ import annotations

import html
import secrets
from functools import cache
from urllib.parse import parse_qs, urlencode, urlsplit

from sqlalchemy.engine import Engine
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from core.access import PAGES
from core.actions.sign_in import SessionKeys, resume_session, sign_in
from core.errors import BadInput, Refused
from core.limits import max_chars
from core.settings import Settings, load_settings
from core.store import database
from core.store.sessions import COOKIE_NAME, SessionEnd

SIGN_IN_PATH = "/session/sign-in"
_CSRF_COOKIE = "halo_console_csrf"
_MAX_FORM_BYTES = 16_384
_PAGE_PATHS = frozenset({"/", *(f"/{spec.slug}" for spec in PAGES)})
_SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
                               "frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


@cache
def _settings() -> Settings:
    return load_settings()


@cache
def _engine() -> Engine:
    return database.engine_for(_settings())


@cache
def _keys() -> SessionKeys:
    return SessionKeys.load(_engine(), _settings())


def safe_next(value: str | None) -> str:
    """A path on this site to go to after sign-in; anything else (another host, a scheme, a backslash trick, control
    characters, the sign-in page itself) becomes `/`."""
    if not value or not value.startswith("/") or value.startswith(("//", "/\\")) or not value.isprintable():
        return "/"
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or parts.path.startswith("/session/"):
        return "/"
    return value


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _form_page(*, next_path: str, csrf: str, email: str = "", message: str = "", status: int = 200) -> HTMLResponse:
    notice = f'<p class="notice" role="alert">{html.escape(message)}</p>' if message else ""
    body = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sign in · HaloPSA Sync Console</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body {{ font-family: "Source Sans Pro", system-ui, sans-serif; background: #f0f2f6; color: #31333f; margin: 0; }}
main {{ max-width: 22rem; margin: 12vh auto; background: #fff; padding: 2rem; border-radius: .5rem; }}
h1 {{ font-size: 1.5rem; margin-top: 0; }} label {{ display: block; margin-top: 1rem; font-size: .9rem; }}
input {{ width: 100%; box-sizing: border-box; padding: .5rem; margin-top: .25rem; font-size: 1rem; }}
button {{ margin-top: 1.5rem; width: 100%; padding: .6rem; font-size: 1rem; background: #ff4b4b; color: #fff;
         border: 0; border-radius: .4rem; cursor: pointer; }}
.notice {{ background: #fde8e8; padding: .75rem; border-radius: .4rem; }} .hint {{ font-size: .8rem; color: #666; }}
</style></head>
<body><main>
<h1>HaloPSA Sync Console</h1>
{notice}
<form method="post" action="{SIGN_IN_PATH}">
<input type="hidden" name="csrf" value="{html.escape(csrf)}">
<input type="hidden" name="next" value="{html.escape(next_path)}">
<label for="email">E-mail</label>
<input id="email" name="email" type="email" autocomplete="username" required maxlength="{max_chars("email")}"
 value="{html.escape(email)}" autofocus>
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required
 maxlength="{max_chars("password")}">
<button type="submit">Sign in</button>
</form>
<p class="hint">Demo accounts are listed in the README.</p>
</main></body></html>"""
    response = HTMLResponse(body, status_code=status, headers=_SECURITY_HEADERS)
    response.set_cookie(_CSRF_COOKIE, csrf, httponly=True, samesite="strict", path="/session")
    return response


def _ended_message(ended: str | None) -> str:
    try:
        return _keys().policy.end_message(SessionEnd(ended)) if ended else ""
    except ValueError:
        return ""


async def sign_in_form(request: Request) -> Response:
    return _form_page(next_path=safe_next(request.query_params.get("next")), csrf=secrets.token_urlsafe(32),
                      message=_ended_message(request.query_params.get("ended")))


async def sign_in_submit(request: Request) -> Response:
    raw = await request.body()
    if len(raw) > _MAX_FORM_BYTES:
        return Response("The sign-in form was too large.", status_code=413)
    form = {key: values[0] for key, values in parse_qs(raw.decode(errors="replace")).items()}
    next_path, email = safe_next(form.get("next")), form.get("email", "")
    fresh = secrets.token_urlsafe(32)
    expected = request.cookies.get(_CSRF_COOKIE, "")
    if not expected or not secrets.compare_digest(expected, form.get("csrf", "")):
        return _form_page(next_path=next_path, csrf=fresh, email=email, status=403,
                          message="The sign-in form expired. Type your e-mail and password again.")
    settings = _settings()
    try:
        signed = await run_in_threadpool(lambda: sign_in(
            _engine(), email=email, password=form.get("password", ""), client=_client(request),
            now=settings.now(), keys=_keys(), replacing=request.cookies.get(COOKIE_NAME)))
    except (BadInput, Refused) as refused:
        status = 429 if isinstance(refused, Refused) else 401
        return _form_page(next_path=next_path, csrf=fresh, email=email, message=str(refused), status=status)
    response = RedirectResponse(next_path, status_code=303, headers={"Cache-Control": "no-store"})
    response.set_cookie(COOKIE_NAME, signed.cookie, max_age=settings.session_lifetime_s, httponly=True,
                        samesite="lax", secure=request.url.scheme == "https", path="/")
    response.delete_cookie(_CSRF_COOKIE, path="/session")
    return response


def routes() -> list[Route]:
    return [Route(SIGN_IN_PATH, sign_in_form, methods=["GET"]),
            Route(SIGN_IN_PATH, sign_in_submit, methods=["POST"])]


def sign_in_url(next_path: str, ended: SessionEnd | None = None) -> str:
    query = {"next": safe_next(next_path), **({"ended": ended.value} if ended else {})}
    return f"{SIGN_IN_PATH}?{urlencode(query)}"


class SessionGate:
    """ASGI middleware: a page load (not Streamlit's own assets, websocket or health checks) without a live session
    is redirected to the sign-in page with the page it asked for. Access to partners is still checked in core on
    every run; this only decides where a browser lands. Off when OIDC signs people in (`oidc`)."""

    def __init__(self, app: ASGIApp, *, oidc: bool = False) -> None:
        self.app = app
        self.oidc = oidc

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.oidc or scope["type"] != "http" or scope["method"] != "GET" or scope["path"] not in _PAGE_PATHS:
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        cookie = request.cookies.get(COOKIE_NAME)
        ended: SessionEnd | None = None
        if cookie:
            settings = _settings()
            resumed = await run_in_threadpool(
                lambda: resume_session(_engine(), cookie, now=settings.now(), keys=_keys()))
            if resumed.principal is not None:
                await self.app(scope, receive, send)
                return
            ended = resumed.ended
        asked = scope["path"] + (f"?{request.url.query}" if request.url.query else "")
        await RedirectResponse(sign_in_url(asked, ended), status_code=303)(scope, receive, send)
