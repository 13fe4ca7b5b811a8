"""The labeling web app: ``create_app(db_url, ...)`` -> a FastAPI app (served by ``rlhf label serve``).

Pages are rendered on the server (Jinja2, autoescape on); one small script (static/label.js)
does drag and keyboard ranking. Every response carries a strict Content-Security-Policy (scripts
only from /static, no inline script), so even a rendering bug could not run a payload from model
output; escaping is what keeps it text in the first place (render.py).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from sqlalchemy import text
from starlette.exceptions import HTTPException as StarletteHTTPException

from rlhf.data.readers import DataError
from rlhf.feedback.assign import Contention
from rlhf.feedback.auth import AuthError
from rlhf.feedback.db import Database
from rlhf.feedback.members import NotAMember
from rlhf.feedback.projects import ProjectError
from rlhf.feedback.render import STATIC, environment
from rlhf.feedback.submit import SubmitError
from rlhf.feedback.web import LoginRequired, error_response

MAX_BODY = 1 << 20
"""bytes: a ranking is a few hundred; anything near this is a mistake or an attack"""
MAX_IMPORT = 64 << 20
"""bytes: an uploaded candidate file"""
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; "
    "base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)
HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
]


class BodyTooLarge(StarletteHTTPException):
    """Raised from inside ``receive``: an HTTPException, so that FastAPI's body parsing passes it
    on (as a 413) instead of turning it into "error parsing the body"."""

    def __init__(self, limit: int):
        super().__init__(413, f"request body too large: the limit is {limit} bytes")


class LimitsAndHeaders:
    """ASGI middleware: refuse oversize request bodies (413) and add the security headers.

    The Content-Length header is checked first; a chunked body is counted as it arrives, so a
    client cannot get round the limit by leaving the header out.
    """

    def __init__(self, app: Any, max_body: int, max_import: int):
        self.app, self.max_body, self.max_import = app, max_body, max_import

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit = self.max_import if scope["path"].endswith("/import") else self.max_body
        headers = dict(scope.get("headers") or [])
        started = False

        async def send_with_headers(message: dict) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                extra = list(HEADERS)
                if not scope["path"].startswith("/static/"):
                    extra.append((b"cache-control", b"no-store"))
                message["headers"] = list(message.get("headers", [])) + extra
            await send(message)

        async def too_large() -> None:
            response = JSONResponse(
                {"error": f"request body too large: the limit is {limit} bytes", "status": 413},
                status_code=413,
            )
            await response(scope, receive, send_with_headers)

        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > limit):
            return await too_large()
        seen = 0

        async def counting_receive() -> dict:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge(limit)
            return message

        try:
            await self.app(scope, counting_receive, send_with_headers)
        except BodyTooLarge:
            if not started:
                await too_large()


def _validation_message(err: RequestValidationError) -> tuple[int, str, list]:
    errors = err.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        e = next(e for e in errors if e.get("type") == "json_invalid")
        reason = (e.get("ctx") or {}).get("error", "malformed")
        return 400, f"request body is not valid JSON ({reason})", []
    parts = []
    for e in errors:
        loc = ".".join(str(x) for x in e.get("loc", ()) if x != "body")
        parts.append(f"{loc or 'body'}: {e.get('msg')}")
    return (
        422,
        "invalid request: " + "; ".join(parts),
        [{"field": p.split(":")[0], "problem": p} for p in parts],
    )


def create_app(
    db_url: str | Database,
    *,
    max_body: int = MAX_BODY,
    max_import: int = MAX_IMPORT,
    secure_cookies: bool = False,
    public_url: str | None = None,
) -> FastAPI:
    """The app over the database at ``db_url`` (a URL, a SQLite file path, or a Database).

    ``secure_cookies`` marks the session cookie Secure (serve over https, or behind a proxy that
    does); ``public_url`` is the address put into invite links (default: the request's own).
    """
    from rlhf.feedback import routes_admin, routes_rater

    db = db_url if isinstance(db_url, Database) else Database(db_url)
    app = FastAPI(title="rlhf label", docs_url=None, redoc_url=None, openapi_url="/api/openapi.json")
    app.state.db = db
    app.state.templates = Jinja2Templates(env=environment())
    app.state.secure_cookies = secure_cookies
    app.state.public_url = public_url

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        message = exc.detail if isinstance(exc.detail, str) else "error"
        if exc.status_code == 404 and message == "Not Found":
            message = f"no such page: {request.url.path}"
        if exc.status_code == 405:
            message = f"{request.method} is not allowed on {request.url.path}"
        return error_response(request, exc.status_code, message)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError):
        status, message, detail = _validation_message(exc)
        return error_response(request, status, message, detail or None)

    @app.exception_handler(LoginRequired)
    async def to_login(request: Request, exc: LoginRequired):
        return RedirectResponse("/login", status_code=303)

    @app.exception_handler(ProjectError)
    async def project_error(request: Request, exc: ProjectError):
        return error_response(request, 404 if str(exc).startswith("no project") else 400, str(exc))

    @app.exception_handler(DataError)
    async def data_error(request: Request, exc: DataError):
        return error_response(request, 400, str(exc))

    @app.exception_handler(AuthError)
    async def auth_error(request: Request, exc: AuthError):
        return error_response(request, 404 if str(exc).startswith("no rater") else 400, str(exc))

    @app.exception_handler(NotAMember)
    async def not_a_member(request: Request, exc: NotAMember):
        return error_response(request, 403, str(exc))

    @app.exception_handler(Contention)
    async def contention(request: Request, exc: Contention):
        response = error_response(request, 503, str(exc))
        response.headers["retry-after"] = "1"
        return response

    @app.exception_handler(SubmitError)
    async def submit_error(request: Request, exc: SubmitError):
        return error_response(request, exc.status, str(exc))

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict:
        with db.read() as s:
            s.execute(text("SELECT 1"))
        return {"ok": True}

    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")
    app.include_router(routes_rater.router)
    app.include_router(routes_admin.router)
    app.add_middleware(LimitsAndHeaders, max_body=max_body, max_import=max_import)
    return app
