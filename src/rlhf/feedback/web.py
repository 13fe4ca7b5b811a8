"""Request plumbing shared by the rater and admin routes: who is calling, CSRF, pages, errors."""

from __future__ import annotations

import hmac
from typing import Any
from urllib.parse import urlsplit

from fastapi import HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from rlhf.feedback.auth import Principal, is_admin_token, session_principal
from rlhf.feedback.db import Database

COOKIE = "rlhf_session"


class LoginRequired(Exception):
    """A page needs a signed-in user: answered with a redirect to /login."""


def db_of(request: Request) -> Database:
    return request.app.state.db


def wants_json(request: Request) -> bool:
    """API paths and non-browser clients get JSON errors; pages get a readable HTML page."""
    return request.url.path.startswith("/api/") or "text/html" not in request.headers.get("accept", "")


def principal(request: Request) -> Principal | None:
    """The caller: admin by bearer token, or the owner of the session cookie, or None."""
    if hasattr(request.state, "principal"):
        return request.state.principal
    db = db_of(request)
    who = None
    auth = request.headers.get("authorization")
    if auth:
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "bearer" or not is_admin_token(db, token.strip()):
            raise HTTPException(
                401, "the Authorization header must be 'Bearer <admin token>' with a valid token"
            )
        who = Principal(is_admin=True)
    elif request.cookies.get(COOKIE):
        who = session_principal(db, request.cookies[COOKIE])
    request.state.principal = who
    return who


def _require(request: Request) -> Principal:
    who = principal(request)
    if who is None:
        if wants_json(request):
            raise HTTPException(
                401, "not signed in: open your invite link, or send 'Authorization: Bearer <admin token>'"
            )
        raise LoginRequired()
    return who


def require_rater(request: Request) -> Principal:
    who = _require(request)
    if who.is_admin or who.rater_id is None:
        raise HTTPException(403, "this page is for raters; the admin pages are under /admin")
    return who


def require_admin(request: Request) -> Principal:
    who = _require(request)
    if not who.is_admin:
        raise HTTPException(403, "only the admin may do this")
    return who


def check_csrf(request: Request, who: Principal, form_token: str | None = None) -> None:
    """A cookie-authenticated state change must repeat the session's CSRF token (header or form)."""
    if who.csrf_token is None:  # bearer-authenticated: a cross-site page cannot send the header
        return
    sent = request.headers.get("x-csrf-token") or form_token or ""
    if not hmac.compare_digest(sent, who.csrf_token):
        raise HTTPException(403, "missing or wrong CSRF token: reload the page and try again")


def check_same_origin(request: Request) -> None:
    """Refuse a POST that a browser says came from another site (login CSRF)."""
    origin = request.headers.get("origin")
    if origin and origin != "null" and urlsplit(origin).netloc != request.headers.get("host", ""):
        raise HTTPException(403, f"cross-site request from {origin} refused")
    if request.headers.get("sec-fetch-site") == "cross-site":
        raise HTTPException(403, "cross-site request refused")


def page(request: Request, name: str, context: dict[str, Any], status: int = 200) -> HTMLResponse:
    who = principal(request) if hasattr(request.state, "principal") else None
    ctx = {"who": who, "csrf": who.csrf_token if who else "", **context}
    return request.app.state.templates.TemplateResponse(request, name, ctx, status_code=status)


def error_response(request: Request, status: int, message: str, detail: Any = None) -> Response:
    if wants_json(request):
        body: dict[str, Any] = {"error": message, "status": status}
        if detail is not None:
            body["detail"] = detail
        return JSONResponse(body, status_code=status)
    return page(request, "error.html", {"status": status, "message": message}, status)


def public_base(request: Request) -> str:
    """The URL raters reach the server at (``--public-url``, else what this request used)."""
    configured = request.app.state.public_url
    return (configured or str(request.base_url)).rstrip("/") + "/"
