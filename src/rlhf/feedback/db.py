"""The labeling database: SQLAlchemy 2 models and sessions, SQLite by default, PostgreSQL by URL.

Tables: projects, tasks (a prompt and its K candidate responses, optional gold ranking), raters
(an invite token, stored as its SHA-256), sessions (a browser login), assignments (task x rater,
with the order the rater saw), labels (a submitted ranking or skip), settings (the admin token's
hash).

Invariants the schema itself enforces, so that no race in the code can break them:
- ``assignments (task_id, rater_id)`` is unique: nobody gets a task twice;
- ``labels (task_id, rater_id)`` is unique: a rater's answer to a task is stored once;
- ``labels.submission_id`` is unique: a retried submission (same client id) is stored once.

SQLite runs in WAL mode (readers do not block the writer) with ``synchronous=FULL`` (a commit is
on disk before the server acknowledges it, so neither a killed server nor a power cut loses an
acknowledged ranking) and a busy timeout; write transactions start with ``BEGIN IMMEDIATE``, so
two writers queue on the lock instead of failing when a read turns into a write.
"""

from __future__ import annotations

import contextlib
import random
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import (
    JSON,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    func,
    inspect,
    select,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

RETRYABLE_SQLSTATES = {"40001", "40P01", "55P03"}
"""SQLSTATEs of a transaction the database aborted to resolve a conflict (serialization failure,
deadlock, lock not available): running it again is the documented remedy"""
ATTEMPTS = 8
T = TypeVar("T")
BUSY_TIMEOUT_MS = 30_000
"""how long a SQLite writer waits for the lock before giving up (many raters submit at once)"""


class DbError(ValueError):
    """The database URL or file a user gave is wrong; the message says how."""


def now() -> float:
    """Wall-clock seconds since the epoch: timestamps are stored as floats, the same in every backend."""
    return time.time()


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


class Setting(Base):
    __tablename__ = "settings"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class Project(Base):
    __tablename__ = "projects"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    guidelines: Mapped[str] = mapped_column(Text, default="")
    overlap: Mapped[int] = mapped_column(Integer, default=3)
    """distinct raters each (non-gold) task goes to"""
    gold_fraction: Mapped[float] = mapped_column(Float, default=0.1)
    """chance that a rater's next task is a gold task, while any gold task is left for them"""
    lease_minutes: Mapped[float] = mapped_column(Float, default=60.0)
    """an assignment left open longer than this goes back to the pool for someone else"""
    min_agreement: Mapped[float] = mapped_column(Float, default=0.6)
    """raters whose leave-one-out agreement with the others' majority is below this are flagged"""
    min_gold_accuracy: Mapped[float] = mapped_column(Float, default=0.7)
    """raters whose pairwise accuracy on gold tasks is below this are flagged"""
    created_at: Mapped[float] = mapped_column(Float, default=now)


class Task(Base):
    __tablename__ = "tasks"
    __table_args__ = (UniqueConstraint("project_id", "external_id", name="uq_task_external_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), index=True)
    external_id: Mapped[str] = mapped_column(String(200))
    """the import record's "id", or a hash of its content: importing a file twice adds nothing"""
    prompt: Mapped[Any] = mapped_column(JSON)
    """a string, or a list of chat messages {"role", "content"}"""
    responses: Mapped[list[Any]] = mapped_column(JSON)
    k: Mapped[int] = mapped_column(Integer)
    """number of responses"""
    is_gold: Mapped[bool] = mapped_column(Boolean, default=False)
    gold_ranks: Mapped[list[Any] | None] = mapped_column(JSON(none_as_null=True), nullable=True)
    """the known ranking of a gold task (1 = best); raters are not told which tasks are gold"""
    n_active: Mapped[int] = mapped_column(Integer, default=0)
    """open + submitted assignments: the overlap cap is checked against this in one UPDATE"""
    created_at: Mapped[float] = mapped_column(Float, default=now)


class Rater(Base):
    __tablename__ = "raters"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[float] = mapped_column(Float, default=now)


class Membership(Base):
    """A rater may see and label a project only as its member; the admin adds and removes them."""

    __tablename__ = "memberships"
    __table_args__ = (UniqueConstraint("project_id", "rater_id", name="uq_membership_project_rater"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), index=True)
    rater_id: Mapped[int] = mapped_column(ForeignKey("raters.id"), index=True)
    created_at: Mapped[float] = mapped_column(Float, default=now)


class LoginSession(Base):
    __tablename__ = "sessions"
    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    rater_id: Mapped[int | None] = mapped_column(ForeignKey("raters.id"), nullable=True)
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    csrf_token: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[float] = mapped_column(Float)


class Assignment(Base):
    __tablename__ = "assignments"
    __table_args__ = (
        UniqueConstraint("task_id", "rater_id", name="uq_assignment_task_rater"),
        Index("ix_assignment_project_rater_status", "project_id", "rater_id", "status"),
        Index("ix_assignment_project_status", "project_id", "status"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"))
    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.id"))
    rater_id: Mapped[int] = mapped_column(ForeignKey("raters.id"))
    display_order: Mapped[list[Any]] = mapped_column(JSON)
    """display_order[d] = index of the response shown at position d (shuffled per rater)"""
    status: Mapped[str] = mapped_column(String(16), default="open")
    """open | submitted | skipped | expired (lease ran out) | released (rater disabled)"""
    assigned_at: Mapped[float] = mapped_column(Float, default=now)


class LabelVersion(Base):
    """Every version of a ranking, the first included: a revision or correction adds a row and never
    changes an old one. ``labels`` holds a copy of the latest, which is what exports read."""

    __tablename__ = "label_versions"
    __table_args__ = (UniqueConstraint("label_id", "version", name="uq_label_version"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    label_id: Mapped[int] = mapped_column(ForeignKey("labels.id"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    """1 = as first submitted"""
    kind: Mapped[str] = mapped_column(String(16))
    """submitted | revised (by the rater) | corrected (by the admin)"""
    author: Mapped[str] = mapped_column(String(100))
    """the rater's name, or 'admin' for the admin"""
    ranks: Mapped[list[Any] | None] = mapped_column(JSON(none_as_null=True), nullable=True)
    scores: Mapped[list[Any] | None] = mapped_column(JSON(none_as_null=True), nullable=True)
    flags: Mapped[list[Any] | None] = mapped_column(JSON(none_as_null=True), nullable=True)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[float] = mapped_column(Float, default=now)


class Adjudication(Base):
    """The admin's final ranking of a task, versioned like labels; exports use the latest."""

    __tablename__ = "adjudications"
    __table_args__ = (UniqueConstraint("task_id", "version", name="uq_adjudication_version"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), index=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.id"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    ranks: Mapped[list[Any]] = mapped_column(JSON)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[float] = mapped_column(Float, default=now)


class ExportEvent(Base):
    """When a project's labels were exported: a ranking exported before its rater revises it has
    been used (for training, perhaps), so it can no longer be revised by the rater."""

    __tablename__ = "exports"
    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[float] = mapped_column(Float, default=now)


class Label(Base):
    __tablename__ = "labels"
    __table_args__ = (UniqueConstraint("task_id", "rater_id", name="uq_label_task_rater"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    submission_id: Mapped[str] = mapped_column(String(64), unique=True)
    """generated by the client: a retry of the same submission finds this row instead of adding one"""
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), index=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.id"))
    rater_id: Mapped[int] = mapped_column(ForeignKey("raters.id"))
    kind: Mapped[str] = mapped_column(String(8))
    """rank | skip"""
    ranks: Mapped[list[Any] | None] = mapped_column(JSON(none_as_null=True), nullable=True)
    """in the task's response order (not the display order); 1 = best, equal = tie, dense"""
    scores: Mapped[list[Any] | None] = mapped_column(JSON(none_as_null=True), nullable=True)
    """optional 1-7 quality score per response (null where not given), task order"""
    flags: Mapped[list[Any] | None] = mapped_column(JSON(none_as_null=True), nullable=True)
    """per response, a list of flags (harmful, factual_error, off_topic), task order"""
    skip_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    display_order: Mapped[list[Any]] = mapped_column(JSON)
    seconds: Mapped[float] = mapped_column(Float)
    """server time from assignment to submission"""
    elapsed_ms: Mapped[int | None] = mapped_column(Integer, nullable=True)
    """time the page was open, as the client measured it"""
    created_at: Mapped[float] = mapped_column(Float, default=now)


def retry_conflicts(work: Callable[[], T], attempts: int = ATTEMPTS) -> T:
    """``work()`` (one whole transaction), run again when the database aborted it over a conflict."""
    for attempt in range(attempts):
        try:
            return work()
        except DBAPIError as err:
            if getattr(err.orig, "sqlstate", None) not in RETRYABLE_SQLSTATES or attempt == attempts - 1:
                raise
            time.sleep(0.01 * (attempt + 1) * (1 + random.random()))  # let the other one finish
    raise AssertionError("unreachable")


def redact_url(url: str) -> str:
    """``url`` with any password replaced by ``***``: safe to print or put in an error message."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:  # not parseable: hide whatever sits between "user:" and "@"
        return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)


def normalize_url(db: str) -> str:
    """A SQLAlchemy URL from ``--db``: a URL as it is, anything else a SQLite file path."""
    if "://" in db:
        return db
    return f"sqlite:///{Path(db).expanduser().resolve()}"


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # isolation_level=None stops the driver from issuing its own BEGIN; ours comes from _begin.
    dbapi_connection.isolation_level = None
    cur = dbapi_connection.cursor()
    cur.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    cur.execute("PRAGMA journal_mode = WAL")
    cur.execute("PRAGMA synchronous = FULL")
    cur.execute("PRAGMA foreign_keys = ON")
    cur.close()


def _sqlite_begin(conn: Any) -> None:
    # A deferred transaction that reads and then writes can fail at once with SQLITE_BUSY when
    # another writer committed in between; IMMEDIATE takes the write lock up front and waits.
    mode = conn.get_execution_options().get("rlhf_begin", "DEFERRED")
    conn.exec_driver_sql(f"BEGIN {mode}")


class Database:
    """An engine and two kinds of session: ``read()`` and ``write()`` (commits on success)."""

    def __init__(self, db: str, create: bool = True):
        self.url = normalize_url(db)
        try:
            url = make_url(self.url)
        except ArgumentError:
            raise DbError(f"--db: {redact_url(db)!r} is not a database URL or file path") from None
        self.is_sqlite = url.get_backend_name() == "sqlite"
        kwargs: dict[str, Any] = {"pool_pre_ping": not self.is_sqlite}
        if self.is_sqlite:
            path = url.database or ""
            if path in ("", ":memory:"):
                raise DbError("--db: an in-memory SQLite database cannot be shared; give a file path")
            if not create and not Path(path).is_file():
                raise DbError(
                    f"--db: database file {path} does not exist (create it with `rlhf label projects create`)"
                )
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            kwargs.update(connect_args={"check_same_thread": False}, pool_size=20, max_overflow=40)
        else:
            kwargs.update(pool_size=20, max_overflow=20)
        try:
            self.engine = create_engine(self.url, **kwargs)
        except ArgumentError as err:
            raise DbError(f"--db: {redact_url(self.url)!r} is not a usable database URL ({err})") from None
        except (NoSuchModuleError, ModuleNotFoundError) as err:
            raise DbError(
                f"--db: no driver for {url.drivername!r} ({err}); for PostgreSQL install psycopg "
                "(pip install 'psycopg[binary]') and use a postgresql+psycopg://user:pass@host/db URL"
            ) from None
        if self.is_sqlite:
            event.listen(self.engine, "connect", _sqlite_pragmas)
            event.listen(self.engine, "begin", _sqlite_begin)
            write_engine = self.engine.execution_options(rlhf_begin="IMMEDIATE")
        else:
            write_engine = self.engine
        self._write_lock = threading.Lock() if self.is_sqlite else contextlib.nullcontext()
        self._read = sessionmaker(self.engine, expire_on_commit=False)
        self._write = sessionmaker(write_engine, expire_on_commit=False)
        had_memberships = inspect(self.engine).has_table("memberships")
        Base.metadata.create_all(self.engine)  # idempotent: adds only missing tables
        if not had_memberships:
            self._grandfather_members()

    def _grandfather_members(self) -> None:
        # A database from before memberships: whoever worked on a project stays its member, so
        # that the upgrade turns no rater away from work they had started.
        with self.write() as s:
            worked = s.execute(select(Assignment.project_id, Assignment.rater_id).distinct()).all()
            for project_id, rater_id in worked:
                s.add(Membership(project_id=project_id, rater_id=rater_id))

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A session for reading; nothing it changes is committed."""
        with self._read() as session:
            yield session

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A session whose changes are committed when the block ends, rolled back on an error."""
        # SQLite has one writer at a time, and a writer that finds the lock taken polls for it with
        # growing sleeps: under load a few requests lose again and again (a p95 of seconds). The
        # threads of this process queue on a lock instead; other processes still meet the busy timeout.
        with self._write_lock, self._write() as session:
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise

    def dispose(self) -> None:
        self.engine.dispose()


def add_version(s: Session, label: Label, kind: str, author: str, note: str | None = None) -> int:
    """Record ``label``'s current ranks, scores and flags as its next version; returns its number.

    A label stored before versions existed gets its original as version 1 first."""
    last = s.scalar(select(func.max(LabelVersion.version)).where(LabelVersion.label_id == label.id)) or 0
    row = LabelVersion(
        label_id=label.id,
        version=last + 1,
        kind=kind,
        author=author,
        ranks=label.ranks,
        scores=label.scores,
        flags=label.flags,
        note=note,
        created_at=now(),
    )
    s.add(row)
    s.flush()
    return row.version
