"""Rater routes: sign in, the labeling page, guidelines, and the JSON API the page's script uses.

A rater only ever reads their own assignments and answers: every query below is filtered by the
session's rater id, and a task id that is not theirs is answered 404.
"""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import RedirectResponse
from pydantic import BaseModel, ConfigDict, Field, StrictInt

from rlhf.feedback import assign, review
from rlhf.feedback.auth import Principal, login, logout
from rlhf.feedback.db import Project
from rlhf.feedback.io import MAX_RESPONSES
from rlhf.feedback.members import member_project_id, rater_projects
from rlhf.feedback.projects import get_project
from rlhf.feedback.submit import FLAGS, Flag, Submission, record
from rlhf.feedback.web import (
    COOKIE,
    check_csrf,
    check_same_origin,
    db_of,
    page,
    principal,
    require_rater,
)

router = APIRouter()
SKIP_REASONS = (
    "I cannot judge this topic",
    "the prompt is unclear or broken",
    "the responses are unreadable",
    "the content is too disturbing for me",
)


class ReviseBody(BaseModel):
    """A rater's new ranking of a task they answered; per-response lists in the order they saw."""

    model_config = ConfigDict(extra="forbid")
    ranks: list[StrictInt] = Field(max_length=MAX_RESPONSES)
    scores: list[StrictInt | None] | None = Field(None, max_length=MAX_RESPONSES)
    flags: list[Annotated[list[Flag], Field(max_length=len(FLAGS))]] | None = Field(
        None, max_length=MAX_RESPONSES
    )


class SubmitBody(BaseModel):
    """A rater's answer; per-response lists are in the order the page showed them."""

    model_config = ConfigDict(extra="forbid")
    submission_id: str = Field(min_length=8, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    task_id: int
    action: Literal["rank", "skip"] = "rank"
    # strict: "2", true and 2.0 are refused, not read as 2, 1 and 2
    ranks: list[StrictInt] | None = Field(None, max_length=MAX_RESPONSES)
    scores: list[StrictInt | None] | None = Field(None, max_length=MAX_RESPONSES)
    flags: list[Annotated[list[Flag], Field(max_length=len(FLAGS))]] | None = Field(
        None, max_length=MAX_RESPONSES
    )
    skip_reason: str | None = Field(None, max_length=1000)
    elapsed_ms: int | None = Field(None, ge=0, le=10**10)


def _project_id(request: Request, name: str, who: Principal) -> int:
    """The id of a project the rater is a member of; any other name, existing or not, is the same 403."""
    with db_of(request).read() as s:
        return member_project_id(s, name, who.rater_id)


def _progress(request: Request, project_id: int, rater_id: int) -> dict[str, int]:
    with db_of(request).read() as s:
        return dataclasses.asdict(assign.rater_progress(s, s.get(Project, project_id), rater_id))


def _task_json(view: assign.TaskView | None) -> dict[str, Any] | None:
    if view is None:
        return None
    return {"task_id": view.task_id, "prompt": view.prompt, "responses": view.responses}


# ---------------------------------------------------------------- sign in


@router.get("/login", include_in_schema=False)
def login_page(request: Request):
    principal(request)
    return page(request, "login.html", {"error": None})


@router.post("/login", include_in_schema=False)
def login_post(request: Request, token: Annotated[str, Form(max_length=200)] = ""):
    check_same_origin(request)
    result = login(db_of(request), token)
    if result is None:
        return page(
            request, "login.html", {"error": "That token is not valid, or the rater was disabled."}, 401
        )
    session_token, who = result
    response = RedirectResponse("/admin" if who.is_admin else "/", status_code=303)
    response.set_cookie(
        COOKIE,
        session_token,
        max_age=14 * 24 * 3600,
        httponly=True,
        samesite="lax",
        secure=request.app.state.secure_cookies,
        path="/",
    )
    return response


@router.post("/logout", include_in_schema=False)
def logout_post(request: Request, csrf_token: Annotated[str, Form()] = ""):
    who = principal(request)
    if who is not None:
        check_csrf(request, who, csrf_token)
        logout(db_of(request), request.cookies.get(COOKIE, ""))
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response


# ---------------------------------------------------------------- pages


@router.get("/", include_in_schema=False)
def home(request: Request):
    who = principal(request)
    if who is not None and who.is_admin:
        return RedirectResponse("/admin", status_code=303)
    who = require_rater(request)
    with db_of(request).read() as s:
        rows = [(p.name, assign.rater_progress(s, p, who.rater_id)) for p in rater_projects(s, who.rater_id)]
    return page(request, "home.html", {"projects": rows})


@router.get("/p/{name}", include_in_schema=False)
def label_page(request: Request, name: str):
    """The rater's open task; without one, a button that asks for the next (GET changes nothing)."""
    who = require_rater(request)
    project_id = _project_id(request, name, who)
    with db_of(request).read() as s:
        view = assign.current_task(s, s.get(Project, project_id), who.rater_id)
    progress = _progress(request, project_id, who.rater_id)
    context = {
        "project": name,
        "task": view,
        "progress": progress,
        "flags": FLAGS,
        "skip_reasons": SKIP_REASONS,
        "mode": "label",
    }
    if view is not None:
        context["order"] = list(range(len(view.responses)))
        context["ties"] = [False] * len(view.responses)
        return page(request, "label.html", context)
    return page(request, "start.html" if progress["available"] else "done.html", context)


@router.post("/p/{name}/next", include_in_schema=False)
def label_next(request: Request, name: str, csrf_token: Annotated[str, Form()] = ""):
    """Assign the rater's next task (a form's POST), then show it."""
    who = require_rater(request)
    check_csrf(request, who, csrf_token)
    assign.next_task(db_of(request), _project_id(request, name, who), who.rater_id)
    return RedirectResponse(f"/p/{name}", status_code=303)


@router.get("/p/{name}/answers", include_in_schema=False)
def answers_page(request: Request, name: str):
    """The rater's recent rankings, each with a link to revise it while it is not yet used."""
    who = require_rater(request)
    answers = review.rater_answers(db_of(request), _project_id(request, name, who), who.rater_id)
    return page(request, "answers.html", {"project": name, "answers": answers})


@router.get("/p/{name}/revise/{task_id}", include_in_schema=False)
def revise_page(request: Request, name: str, task_id: int):
    """The rater page again, with the rater's current ranking of a task they answered."""
    who = require_rater(request)
    view = review.revision_view(db_of(request), _project_id(request, name, who), who.rater_id, task_id)
    if view["locked"]:
        return page(
            request,
            "error.html",
            {"status": 409, "message": f"This ranking can no longer be revised: {view['locked']}."},
            409,
        )
    order = sorted(range(len(view["ranks"])), key=lambda d: (view["ranks"][d], d))
    ties = [i > 0 and view["ranks"][order[i]] == view["ranks"][order[i - 1]] for i in range(len(order))]
    context = {
        "project": name,
        "task": view,
        "order": order,
        "ties": ties,
        "mode": "revise",
        "progress": None,
        "flags": FLAGS,
        "skip_reasons": SKIP_REASONS,
    }
    return page(request, "label.html", context)


@router.get("/p/{name}/guidelines", include_in_schema=False)
def guidelines_page(request: Request, name: str):
    who = principal(request)
    if who is None or not who.is_admin:  # the admin may read them too
        who = require_rater(request)
    with db_of(request).read() as s:
        if not who.is_admin:
            member_project_id(s, name, who.rater_id)
        guidelines = get_project(s, name).guidelines
    return page(request, "guidelines.html", {"project": name, "guidelines": guidelines})


# ---------------------------------------------------------------- JSON API


@router.get("/api/me")
def me(request: Request) -> dict[str, Any]:
    """Who the session belongs to, and its CSRF token (for scripted clients)."""
    who = principal(request)
    if who is None:
        raise HTTPException(401, "not signed in")
    return {"rater": who.rater_name, "admin": who.is_admin, "csrf_token": who.csrf_token}


@router.post("/api/p/{name}/next", response_model=None)
def next_task(request: Request, name: str) -> dict[str, Any]:
    """The rater's open task, else a newly assigned one (responses in their display order), or
    null when nothing is left for them. A POST: it may create an assignment."""
    who = require_rater(request)
    check_csrf(request, who)
    view = assign.next_task(db_of(request), _project_id(request, name, who), who.rater_id)
    return {"task": _task_json(view)}


@router.get("/api/p/{name}/current", response_model=None)
def current(request: Request, name: str) -> dict[str, Any]:
    """The rater's open task, or null; assigns nothing."""
    who = require_rater(request)
    project_id = _project_id(request, name, who)
    with db_of(request).read() as s:
        view = assign.current_task(s, s.get(Project, project_id), who.rater_id)
    return {"task": _task_json(view)}


@router.post("/api/p/{name}/labels/{task_id}")
def revise_label(request: Request, name: str, task_id: int, body: ReviseBody) -> dict[str, Any]:
    """Revise one's ranking of a task while it is not yet used (exported or reviewed): 409 after."""
    who = require_rater(request)
    check_csrf(request, who)
    project_id = _project_id(request, name, who)
    version = review.revise(
        db_of(request), project_id, who.rater_id, task_id, body.ranks, body.scores, body.flags
    )
    return {"task_id": task_id, "version": version}


@router.get("/api/p/{name}/progress")
def my_progress(request: Request, name: str) -> dict[str, int]:
    who = require_rater(request)
    return _progress(request, _project_id(request, name, who), who.rater_id)


@router.post("/api/p/{name}/submit", response_model=None)
def submit(request: Request, name: str, body: SubmitBody) -> dict[str, Any]:
    """Store a ranking or skip; a repeated submission_id returns the stored receipt (200 both times)."""
    who = require_rater(request)
    check_csrf(request, who)
    receipt = record(
        db_of(request), _project_id(request, name, who), who.rater_id, Submission(**body.model_dump())
    )
    return {"stored": True, **dataclasses.asdict(receipt)}
