"""Who may open the dashboard, and which POSTs it accepts.

- ``Guard`` is the outermost ASGI layer of the dashboard: it adds the security headers to
  every answer (a Content-Security-Policy that allows only the dashboard's own script
  and styles, no framing, no sniffing, no referrer to other sites; a browser then sends its Origin with every POST) and, when a token or a basic-auth
  user is set, lets a request through only with valid credentials: ``Authorization:
  Bearer <token>``, the session cookie the login page sets for the token, or
  ``Authorization: Basic`` for the user and password.
- ``Csrf`` signs and checks the token every action form carries (a signed double
  submit: a random cookie, and an HMAC of it under the dashboard's key in the form). A
  POST without a valid token, or sent from another origin, is refused with 403 before
  anything is read from the database.

Credentials are compared in constant time and never written to a page, a log line or
an error. This module sits at the dashboard's edge; it knows nothing about jobs.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from collections.abc import Mapping, MutableMapping
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import urlsplit

from djmw.web.settings import WebSettings

Scope = MutableMapping[str, Any]
Receive = Any
Send = Any
AsgiApp = Any

#: The cookie that carries a token login (an HMAC of the token, never the token).
AUTH_COOKIE = "djmw_auth"
#: The cookie the CSRF form tokens are derived from.
CSRF_COOKIE = "djmw_csrf"
#: The form field that carries the CSRF token.
CSRF_FIELD = "csrf"

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
    (b"cache-control", b"no-store"),
)


def cookies(scope: Scope) -> dict[str, str]:
    """The request's cookies by name (a malformed header yields none)."""
    header = headers(scope).get("cookie", "")
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(header)
    except Exception:  # a bad Cookie header is only ignored
        return {}
    return {name: morsel.value for name, morsel in jar.items()}


def headers(scope: Scope) -> dict[str, str]:
    """The request's headers, lower-case names, latin-1 values (the last one wins)."""
    return {
        name.decode("latin-1").lower(): value.decode("latin-1")
        for name, value in scope.get("headers", [])
    }


def cookie_path(scope: Scope) -> str:
    """The path cookies are scoped to: where the dashboard is mounted."""
    root = str(scope.get("root_path", "")).rstrip("/")
    return root or "/"


def session_value(token: str) -> str:
    """The login cookie's value for ``token``: an HMAC that does not reveal it."""
    return hmac.new(token.encode(), b"djmw web session", hashlib.sha256).hexdigest()


class Guard:
    """ASGI middleware: security headers on every answer; credentials when set.

    Requests without valid credentials get 401: with ``WWW-Authenticate: Basic`` when
    basic auth is set (the browser asks for the user and password), and a login form
    for a token. The login form's POST (``/login``) and the static files are the only
    paths open without credentials.
    """

    def __init__(self, app: AsgiApp, settings: WebSettings, login_page: Any) -> None:
        self.app = app
        self.settings = settings
        self.login_page = login_page

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Mapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *SECURITY_HEADERS]}
            await send(message)

        if self.settings.authenticated and not self.allowed(scope) and not _open_path(scope):
            await self.login_page(scope, receive, send_with_headers)
            return
        await self.app(scope, receive, send_with_headers)

    def allowed(self, scope: Scope) -> bool:
        """True when the request carries valid credentials."""
        settings = self.settings
        authorization = headers(scope).get("authorization", "")
        scheme, _, value = authorization.partition(" ")
        scheme = scheme.lower()
        if settings.token is not None:
            if scheme == "bearer" and _same(value.strip(), settings.token):
                return True
            session = cookies(scope).get(AUTH_COOKIE)
            if session is not None and _same(session, session_value(settings.token)):
                return True
        if settings.user is not None and settings.password is not None and scheme == "basic":
            try:
                decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                return False
            user, colon, password = decoded.partition(":")
            # Both comparisons always run, so timing says nothing about which one failed.
            good_user = _same(user, settings.user)
            good_password = _same(password, settings.password)
            return bool(colon) and good_user and good_password
        return False


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode("utf-8", "replace"), expected.encode("utf-8"))


def _open_path(scope: Scope) -> bool:
    path = _route_path(scope)
    return path.startswith("/static/") or (path == "/login" and scope.get("method") == "POST")


def _route_path(scope: Scope) -> str:
    path = str(scope.get("path", ""))
    root = str(scope.get("root_path", ""))
    if root and path.startswith(root):
        return path[len(root) :] or "/"
    return path


class Csrf:
    """Signed double-submit CSRF tokens.

    The browser holds a random cookie (``djmw_csrf``, HttpOnly, SameSite=Strict); each
    action form carries HMAC(key, cookie). A POST passes when its form token matches
    the cookie it came with and, when the browser says where it comes from (``Origin``,
    ``Sec-Fetch-Site``), it comes from the dashboard's own origin.
    """

    def __init__(self, secret: str | None) -> None:
        self.key = secret.encode() if secret is not None else secrets.token_bytes(32)

    @staticmethod
    def new_cookie() -> str:
        """A fresh random cookie value."""
        return secrets.token_urlsafe(32)

    def token(self, cookie: str) -> str:
        """The form token that goes with ``cookie``."""
        return hmac.new(self.key, cookie.encode(), hashlib.sha256).hexdigest()

    def valid(self, scope: Scope, form_token: str | None) -> bool:
        """True when the POST's form token matches its cookie and its origin is ours."""
        cookie = cookies(scope).get(CSRF_COOKIE)
        if not cookie or not form_token:
            return False
        if not hmac.compare_digest(form_token.encode(), self.token(cookie).encode()):
            return False
        return same_origin(scope)


def same_origin(scope: Scope) -> bool:
    """False when the browser says the request comes from another site or origin."""
    request_headers = headers(scope)
    if request_headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
        return False
    origin = request_headers.get("origin")
    if origin is None:
        return True
    host = request_headers.get("host", "")
    return origin != "null" and urlsplit(origin).netloc == host
