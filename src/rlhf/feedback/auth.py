"""Who may do what: the admin token, raters' invite tokens, and browser sessions.

Every credential is a 256-bit random token (``secrets.token_urlsafe(32)``) and the database keeps
only its SHA-256. A slow password hash (bcrypt, scrypt) defends guessable passwords; a random
256-bit token cannot be guessed, so a fast hash loses nothing and lets a token be looked up by its
hash. A token is shown once, when it is made, and cannot be read back.

- The **admin token** authenticates ``Authorization: Bearer <token>`` API calls, or signs an admin
  into the web UI. It is given with ``--admin-token`` / ``RLHF_LABEL_ADMIN_TOKEN`` or generated
  and printed once at the first ``serve``; ``rlhf label admin-token`` replaces it.
- A rater's **invite token** signs that rater in (``/login#<token>``: the token travels in the URL
  fragment, which browsers never send to a server or put in a Referer, and the login page's
  script moves it into a POST).
- A **session** is an HttpOnly cookie naming a server-side row, with its own CSRF token that every
  state-changing request made with the cookie must repeat (header ``X-CSRF-Token`` or form field
  ``csrf_token``). Disabling a rater or replacing a token ends its sessions.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

from sqlalchemy import delete, select

from rlhf.feedback.db import Database, LoginSession, Rater, Setting, now

ADMIN_KEY = "admin_token_sha256"
SESSION_SECONDS = 14 * 24 * 3600
MIN_ADMIN_TOKEN = 16
NAME_RE = re.compile(r"^[A-Za-z0-9_.@+-]{1,64}$")


class AuthError(ValueError):
    """A token, rater or name a user gave is wrong; the message says which."""


@dataclass(frozen=True)
class Principal:
    """The caller of a request: a rater, or the admin."""

    is_admin: bool
    rater_id: int | None = None
    rater_name: str | None = None
    csrf_token: str | None = None
    """None when authenticated by a bearer header, which a cross-site page cannot send"""


def new_token() -> str:
    return secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def check_name(name: str, what: str) -> str:
    """``name`` if it is 1-64 letters, digits or ``_.@+-`` (it goes into URLs and exported data)."""
    if not NAME_RE.match(name or ""):
        raise AuthError(f"{what} name {name!r} must be 1-64 characters of letters, digits and _.@+-")
    return name


# ---------------------------------------------------------------- admin token


def set_admin_token(db: Database, token: str) -> None:
    """Store the hash of ``token`` as the admin token (replacing any earlier one)."""
    if len(token) < MIN_ADMIN_TOKEN:
        raise AuthError(f"the admin token must be at least {MIN_ADMIN_TOKEN} characters")
    with db.write() as s:
        row = s.get(Setting, ADMIN_KEY)
        if row is not None and hmac.compare_digest(row.value, hash_token(token)):
            return
        if row is None:
            s.add(Setting(key=ADMIN_KEY, value=hash_token(token)))
        else:
            row.value = hash_token(token)
        s.execute(delete(LoginSession).where(LoginSession.is_admin.is_(True)))


def ensure_admin_token(db: Database, given: str | None) -> str | None:
    """Set ``given`` as the admin token, or, with none given and none stored, make one.

    Returns the newly made token (to print once), else None.
    """
    if given:
        set_admin_token(db, given)
        return None
    with db.read() as s:
        if s.get(Setting, ADMIN_KEY) is not None:
            return None
    token = new_token()
    set_admin_token(db, token)
    return token


def is_admin_token(db: Database, token: str) -> bool:
    with db.read() as s:
        row = s.get(Setting, ADMIN_KEY)
    return row is not None and hmac.compare_digest(row.value, hash_token(token))


# ---------------------------------------------------------------- raters


def create_rater(db: Database, name: str) -> str:
    """Add an active rater; returns their invite token (shown once)."""
    check_name(name, "rater")
    token = new_token()
    with db.write() as s:
        if s.scalar(select(Rater.id).where(Rater.name == name)) is not None:
            raise AuthError(f"rater {name!r} already exists (new token: `rlhf label raters token {name}`)")
        s.add(Rater(name=name, token_hash=hash_token(token)))
    return token


def get_rater(s, name: str) -> Rater:
    rater = s.scalar(select(Rater).where(Rater.name == name))
    if rater is None:
        raise AuthError(f"no rater named {name!r} (see `rlhf label raters list`)")
    return rater


def new_rater_token(db: Database, name: str) -> str:
    """Replace a rater's invite token (the old one and its sessions stop working)."""
    token = new_token()
    with db.write() as s:
        rater = get_rater(s, name)
        rater.token_hash = hash_token(token)
        s.execute(delete(LoginSession).where(LoginSession.rater_id == rater.id))
    return token


def set_rater_active(db: Database, name: str, active: bool) -> None:
    """Enable or disable a rater. Disabling ends their sessions and gives their open tasks back."""
    from rlhf.feedback.assign import release_rater

    with db.write() as s:
        rater = get_rater(s, name)
        rater.active = active
        if not active:
            s.execute(delete(LoginSession).where(LoginSession.rater_id == rater.id))
            release_rater(s, rater.id)


def list_raters(db: Database) -> list[dict]:
    with db.read() as s:
        rows = s.scalars(select(Rater).order_by(Rater.name)).all()
    return [{"name": r.name, "active": r.active, "created_at": r.created_at} for r in rows]


# ---------------------------------------------------------------- sessions


def login(db: Database, token: str) -> tuple[str, Principal] | None:
    """A new session for an invite or admin token; returns (session cookie value, principal) or None."""
    token = token.strip()
    if not token:
        return None
    is_admin = is_admin_token(db, token)
    session_token = new_token()
    with db.write() as s:
        rater = None
        if not is_admin:
            rater = s.scalar(select(Rater).where(Rater.token_hash == hash_token(token)))
            if rater is None or not rater.active:
                return None
        # expired rows are swept here, at the only place that adds rows
        s.execute(delete(LoginSession).where(LoginSession.expires_at < now()))
        row = LoginSession(
            token_hash=hash_token(session_token),
            rater_id=None if rater is None else rater.id,
            is_admin=is_admin,
            csrf_token=new_token(),
            expires_at=now() + SESSION_SECONDS,
        )
        s.add(row)
    principal = Principal(is_admin, row.rater_id, None if rater is None else rater.name, row.csrf_token)
    return session_token, principal


def session_principal(db: Database, session_token: str) -> Principal | None:
    """The principal of a live session cookie, or None."""
    # one query per request: this runs on every call a browser makes
    query = (
        select(
            LoginSession.is_admin,
            LoginSession.csrf_token,
            LoginSession.expires_at,
            Rater.id,
            Rater.name,
            Rater.active,
        )
        .outerjoin(Rater, Rater.id == LoginSession.rater_id)
        .where(LoginSession.token_hash == hash_token(session_token))
    )
    with db.read() as s:
        row = s.execute(query).first()
    if row is None or row.expires_at < now():
        return None
    if row.is_admin:
        return Principal(True, csrf_token=row.csrf_token)
    if row.id is None or not row.active:
        return None
    return Principal(False, row.id, row.name, row.csrf_token)


def logout(db: Database, session_token: str) -> None:
    with db.write() as s:
        s.execute(delete(LoginSession).where(LoginSession.token_hash == hash_token(session_token)))
