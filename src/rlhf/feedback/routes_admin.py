"""Admin routes: projects, import, progress and agreement, raters, export; as pages and as JSON.

The JSON API (``/api/admin/...``) takes ``Authorization: Bearer <admin token>``; the pages take
an admin session cookie, and their forms carry its CSRF token.
"""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, Form, HTTPException, Query, Request, UploadFile
from fastapi.responses import RedirectResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, StrictInt
from starlette.concurrency import run_in_threadpool

from rlhf.data.readers import decode_text
from rlhf.feedback.auth import create_rater, list_raters, new_rater_token, set_rater_active
from rlhf.feedback.io import (
    MAX_RESPONSES,
    export_pairs,
    export_rankings,
    import_records,
    iter_lines,
    parse_jsonl_text,
)
from rlhf.feedback.members import add_members, list_members, remove_members
from rlhf.feedback.projects import create_project, get_project, list_projects, update_project
from rlhf.feedback.review import adjudicate, correct, review_queue, task_review
from rlhf.feedback.stats import project_stats
from rlhf.feedback.submit import SubmitError
from rlhf.feedback.web import check_csrf, db_of, page, public_base, require_admin

router = APIRouter()
RaterAction = Literal["disable", "enable", "token"]


class ProjectSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    guidelines: str | None = Field(None, max_length=200_000)
    overlap: int | None = Field(None, ge=1, le=100)
    gold_fraction: float | None = Field(None, ge=0, le=1)
    lease_minutes: float | None = Field(None, gt=0)
    min_agreement: float | None = Field(None, ge=0, le=1)
    min_gold_accuracy: float | None = Field(None, ge=0, le=1)


class NewProject(ProjectSettings):
    name: str = Field(min_length=1, max_length=64)


class MemberChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    add: list[str] = Field(default_factory=list, max_length=10_000)
    remove: list[str] = Field(default_factory=list, max_length=10_000)


class Decision(BaseModel):
    """A correction of a rater's ranking or an adjudication of a task: ranks in the task's order."""

    model_config = ConfigDict(extra="forbid")
    ranks: list[StrictInt] = Field(max_length=MAX_RESPONSES)
    note: str | None = Field(None, max_length=5000)


class NewRater(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=64)
    projects: list[str] = Field(default_factory=list, max_length=1000)
    """projects to make the new rater a member of"""


def _rater_action(request: Request, name: str, action: str) -> dict[str, Any]:
    db = db_of(request)
    if action == "token":
        token = new_rater_token(db, name)
        return {"rater": name, "token": token, "invite_url": public_base(request) + "login#" + token}
    set_rater_active(db, name, action == "enable")
    return {"rater": name, "active": action == "enable"}


def _export(request: Request, name: str, kind: str, weight: str, min_votes: int, metadata: bool, gold: bool):
    db = db_of(request)
    if kind == "rankings":
        records = export_rankings(db, name, with_metadata=metadata, include_gold=gold)
    else:
        records, _ = export_pairs(db, name, min_votes=min_votes, weight=weight, include_gold=gold)
    headers = {"content-disposition": f'attachment; filename="{name}-{kind}.jsonl"'}
    return StreamingResponse(iter_lines(records), media_type="application/x-ndjson", headers=headers)


# ---------------------------------------------------------------- JSON API


@router.get("/api/admin/projects")
def api_projects(request: Request) -> list[dict[str, Any]]:
    require_admin(request)
    return list_projects(db_of(request))


@router.post("/api/admin/projects", status_code=201)
def api_create_project(request: Request, body: NewProject) -> dict[str, Any]:
    check_csrf(request, require_admin(request))
    settings = body.model_dump(exclude={"name"}, exclude_none=True)
    create_project(db_of(request), body.name, **settings)
    return {"created": body.name}


@router.post("/api/admin/projects/{name}/settings")
def api_update_project(request: Request, name: str, body: ProjectSettings) -> dict[str, Any]:
    check_csrf(request, require_admin(request))
    update_project(db_of(request), name, **body.model_dump(exclude_none=True))
    return {"updated": name}


@router.get("/api/admin/projects/{name}/stats")
def api_stats(request: Request, name: str) -> dict[str, Any]:
    require_admin(request)
    return project_stats(db_of(request), name)


@router.post("/api/admin/projects/{name}/import")
async def api_import(request: Request, name: str) -> dict[str, Any]:
    """The request body is the JSONL file itself."""
    await run_in_threadpool(lambda: check_csrf(request, require_admin(request)))
    text = decode_text(await request.body(), "request body")
    records = parse_jsonl_text(text, "request body")
    result = await run_in_threadpool(import_records, db_of(request), name, records)
    return dataclasses.asdict(result)


@router.get("/api/admin/projects/{name}/export")
def api_export(
    request: Request,
    name: str,
    kind: Literal["rankings", "pairs"] = "rankings",
    weight: Literal["none", "agreement"] = "none",
    min_votes: Annotated[int, Query(ge=1)] = 1,
    metadata: bool = False,
    gold: bool = True,
):
    require_admin(request)
    return _export(request, name, kind, weight, min_votes, metadata, gold)


@router.get("/api/admin/projects/{name}/members")
def api_members(request: Request, name: str) -> dict[str, Any]:
    require_admin(request)
    return {"project": name, "members": list_members(db_of(request), name)}


@router.post("/api/admin/projects/{name}/members")
def api_change_members(request: Request, name: str, body: MemberChange) -> dict[str, Any]:
    """Add and remove raters; a removed rater's open tasks in the project go back to the pool."""
    check_csrf(request, require_admin(request))
    db = db_of(request)
    added = add_members(db, name, body.add)
    removed = remove_members(db, name, body.remove)
    return {"added": added, "removed": removed, "members": list_members(db, name)}


@router.get("/api/admin/projects/{name}/review")
def api_review_queue(request: Request, name: str) -> list[dict[str, Any]]:
    """Tasks with rankings, most disputed first."""
    require_admin(request)
    return review_queue(db_of(request), name)


@router.get("/api/admin/projects/{name}/tasks/{task_id}")
def api_task(request: Request, name: str, task_id: int) -> dict[str, Any]:
    """A task, every rater's ranking with all its versions, and its adjudications."""
    require_admin(request)
    return task_review(db_of(request), name, task_id)


@router.post("/api/admin/projects/{name}/labels/{label_id}/correct")
def api_correct(request: Request, name: str, label_id: int, body: Decision) -> dict[str, Any]:
    check_csrf(request, require_admin(request))
    return {"label_id": label_id, "version": correct(db_of(request), name, label_id, body.ranks, body.note)}


@router.post("/api/admin/projects/{name}/tasks/{task_id}/adjudicate")
def api_adjudicate(request: Request, name: str, task_id: int, body: Decision) -> dict[str, Any]:
    check_csrf(request, require_admin(request))
    return {"task_id": task_id, "version": adjudicate(db_of(request), name, task_id, body.ranks, body.note)}


@router.get("/api/admin/raters")
def api_raters(request: Request) -> list[dict[str, Any]]:
    require_admin(request)
    return list_raters(db_of(request))


@router.post("/api/admin/raters", status_code=201)
def api_create_rater(request: Request, body: NewRater) -> dict[str, Any]:
    """A new rater; the answer holds their invite token and link, which cannot be read again."""
    check_csrf(request, require_admin(request))
    db = db_of(request)
    with db.read() as s:  # unknown projects are refused before the rater is made
        for project in body.projects:
            get_project(s, project)
    token = create_rater(db, body.name)
    for project in body.projects:
        add_members(db, project, [body.name])
    return {
        "rater": body.name,
        "token": token,
        "invite_url": public_base(request) + "login#" + token,
        "projects": body.projects,
    }


@router.post("/api/admin/raters/{name}/{action}")
def api_rater_action(request: Request, name: str, action: RaterAction) -> dict[str, Any]:
    check_csrf(request, require_admin(request))
    return _rater_action(request, name, action)


# ---------------------------------------------------------------- pages


def _admin_home(request: Request, message: str | None = None, invite: dict | None = None, status: int = 200):
    db = db_of(request)
    context = {"projects": list_projects(db), "raters": list_raters(db), "message": message, "invite": invite}
    return page(request, "admin.html", context, status)


@router.get("/admin", include_in_schema=False)
def admin_home(request: Request):
    require_admin(request)
    return _admin_home(request)


@router.post("/admin/projects", include_in_schema=False)
def admin_create_project(
    request: Request,
    name: Annotated[str, Form(max_length=64)],
    overlap: Annotated[int, Form(ge=1, le=100)] = 3,
    gold_fraction: Annotated[float, Form(ge=0, le=1)] = 0.1,
    guidelines: Annotated[str, Form(max_length=200_000)] = "",
    csrf_token: Annotated[str, Form()] = "",
):
    check_csrf(request, require_admin(request), csrf_token)
    create_project(db_of(request), name, overlap=overlap, gold_fraction=gold_fraction, guidelines=guidelines)
    return RedirectResponse(f"/admin/p/{name}", status_code=303)


@router.post("/admin/raters", include_in_schema=False)
def admin_create_rater(
    request: Request, name: Annotated[str, Form(max_length=64)], csrf_token: Annotated[str, Form()] = ""
):
    check_csrf(request, require_admin(request), csrf_token)
    token = create_rater(db_of(request), name)
    invite = {"rater": name, "token": token, "invite_url": public_base(request) + "login#" + token}
    return _admin_home(request, f"Rater {name} created.", invite, 201)


@router.post("/admin/raters/{name}/{action}", include_in_schema=False)
def admin_rater_action(
    request: Request, name: str, action: RaterAction, csrf_token: Annotated[str, Form()] = ""
):
    check_csrf(request, require_admin(request), csrf_token)
    result = _rater_action(request, name, action)
    invite = result if action == "token" else None
    return _admin_home(request, f"Rater {name}: {action} done.", invite)


def _project_page(request: Request, name: str, message: str | None = None, status: int = 200):
    db = db_of(request)
    stats = project_stats(db, name)
    members = set(list_members(db, name))
    raters = [(r["name"], r["name"] in members) for r in list_raters(db)]
    context = {"stats": stats, "message": message, "raters": raters}
    return page(request, "admin_project.html", context, status)


@router.post("/admin/p/{name}/members", include_in_schema=False)
def admin_project_members(
    request: Request,
    name: str,
    member: Annotated[list[str], Form()] = [],  # noqa: B006 (FastAPI reads the default, never mutates it)
    csrf_token: Annotated[str, Form()] = "",
):
    """The checkboxes of the project page: checked raters are members, the others are not."""
    check_csrf(request, require_admin(request), csrf_token)
    db = db_of(request)
    before = set(list_members(db, name))
    wanted = set(member)
    added = add_members(db, name, sorted(wanted - before))
    removed = remove_members(db, name, sorted(before - wanted))
    return _project_page(request, name, f"Members: {len(added)} added, {len(removed)} removed.")


@router.get("/admin/p/{name}", include_in_schema=False)
def admin_project(request: Request, name: str):
    require_admin(request)
    return _project_page(request, name)


@router.post("/admin/p/{name}/settings", include_in_schema=False)
def admin_project_settings(
    request: Request,
    name: str,
    overlap: Annotated[int, Form(ge=1, le=100)],
    gold_fraction: Annotated[float, Form(ge=0, le=1)],
    lease_minutes: Annotated[float, Form(gt=0)],
    min_agreement: Annotated[float, Form(ge=0, le=1)],
    min_gold_accuracy: Annotated[float, Form(ge=0, le=1)],
    guidelines: Annotated[str, Form(max_length=200_000)] = "",
    csrf_token: Annotated[str, Form()] = "",
):
    check_csrf(request, require_admin(request), csrf_token)
    update_project(
        db_of(request),
        name,
        overlap=overlap,
        gold_fraction=gold_fraction,
        lease_minutes=lease_minutes,
        min_agreement=min_agreement,
        min_gold_accuracy=min_gold_accuracy,
        guidelines=guidelines,
    )
    return _project_page(request, name, "Settings saved.")


@router.post("/admin/p/{name}/import", include_in_schema=False)
async def admin_import(
    request: Request, name: str, file: Annotated[UploadFile, File()], csrf_token: Annotated[str, Form()] = ""
):
    await run_in_threadpool(lambda: check_csrf(request, require_admin(request), csrf_token))
    source = file.filename or "upload"
    text = decode_text(await file.read(), source)
    result = await run_in_threadpool(import_records, db_of(request), name, parse_jsonl_text(text, source))
    message = (
        f"Imported {result.added} tasks ({result.gold} gold); {result.already_present} were already there."
    )
    return await run_in_threadpool(_project_page, request, name, message)


@router.get("/admin/p/{name}/export/{kind}.jsonl", include_in_schema=False)
def admin_export(request: Request, name: str, kind: str, weight: Literal["none", "agreement"] = "none"):
    require_admin(request)
    if kind not in ("rankings", "pairs"):
        raise HTTPException(404, f"no export {kind!r}; there are rankings.jsonl and pairs.jsonl")
    return _export(request, name, kind, weight, 1, False, True)


def _ranks_field(text: str) -> list[int]:
    """Ranks typed into a form, "1 2 2 3" or "1,2,2,3", in the task's response order."""
    parts = text.replace(",", " ").split()
    if not parts or not all(p.isdigit() for p in parts):
        raise SubmitError(422, f"ranks must be whole numbers separated by spaces, like 1 3 2 2; got {text!r}")
    return [int(p) for p in parts]


@router.get("/admin/p/{name}/review", include_in_schema=False)
def admin_review(request: Request, name: str):
    require_admin(request)
    return page(request, "admin_review.html", {"project": name, "queue": review_queue(db_of(request), name)})


def _task_page(request: Request, name: str, task_id: int, message: str | None = None):
    review = task_review(db_of(request), name, task_id)
    return page(request, "admin_task.html", {"r": review, "message": message})


@router.get("/admin/p/{name}/t/{task_id}", include_in_schema=False)
def admin_task(request: Request, name: str, task_id: int):
    require_admin(request)
    return _task_page(request, name, task_id)


@router.post("/admin/p/{name}/t/{task_id}/adjudicate", include_in_schema=False)
def admin_adjudicate(
    request: Request,
    name: str,
    task_id: int,
    ranks: Annotated[str, Form(max_length=200)],
    note: Annotated[str, Form(max_length=5000)] = "",
    csrf_token: Annotated[str, Form()] = "",
):
    check_csrf(request, require_admin(request), csrf_token)
    version = adjudicate(db_of(request), name, task_id, _ranks_field(ranks), note or None)
    return _task_page(request, name, task_id, f"Adjudicated (version {version}).")


@router.post("/admin/p/{name}/t/{task_id}/correct/{label_id}", include_in_schema=False)
def admin_correct(
    request: Request,
    name: str,
    task_id: int,
    label_id: int,
    ranks: Annotated[str, Form(max_length=200)],
    note: Annotated[str, Form(max_length=5000)] = "",
    csrf_token: Annotated[str, Form()] = "",
):
    check_csrf(request, require_admin(request), csrf_token)
    version = correct(db_of(request), name, label_id, _ranks_field(ranks), note or None)
    return _task_page(request, name, task_id, f"Corrected (version {version}).")
