"""Labeling projects: their settings and progress counts."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from rlhf.feedback.auth import AuthError, check_name
from rlhf.feedback.db import Assignment, Database, Label, Project, Task

SETTINGS = ("guidelines", "overlap", "gold_fraction", "lease_minutes", "min_agreement", "min_gold_accuracy")


class ProjectError(ValueError):
    """An unknown project or a bad project setting; the message names it."""


def _check(field: str, value: Any) -> Any:
    if field == "guidelines":
        if not isinstance(value, str):
            raise ProjectError("guidelines must be text (markdown)")
        return value
    if field == "overlap":
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 100:
            raise ProjectError(f"overlap must be an integer from 1 to 100, got {value!r}")
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ProjectError(f"{field} must be a number, got {value!r}")
    if field == "lease_minutes":
        if value <= 0:
            raise ProjectError(f"lease_minutes must be > 0, got {value}")
    elif not 0 <= value <= 1:
        raise ProjectError(f"{field} must be between 0 and 1, got {value}")
    return float(value)


def create_project(db: Database, name: str, **settings: Any) -> None:
    """Add a project; ``settings`` are any of SETTINGS."""
    try:
        check_name(name, "project")
    except AuthError as err:
        raise ProjectError(str(err)) from None
    values = {k: _check(k, v) for k, v in settings.items() if v is not None}
    unknown = set(values) - set(SETTINGS)
    if unknown:
        raise ProjectError(f"unknown project settings {sorted(unknown)}; known: {', '.join(SETTINGS)}")
    with db.write() as s:
        if s.scalar(select(Project.id).where(Project.name == name)) is not None:
            raise ProjectError(f"project {name!r} already exists")
        s.add(Project(name=name, **values))


def update_project(db: Database, name: str, **settings: Any) -> None:
    """Change settings of a project (None values are left as they are)."""
    with db.write() as s:
        project = get_project(s, name)
        for key, value in settings.items():
            if value is None:
                continue
            if key not in SETTINGS:
                raise ProjectError(f"unknown project setting {key!r}; known: {', '.join(SETTINGS)}")
            setattr(project, key, _check(key, value))


def get_project(s: Session, name: str) -> Project:
    """The project called ``name``, or a ProjectError that lists the known ones."""
    project = s.scalar(select(Project).where(Project.name == name))
    if project is None:
        known = s.scalars(select(Project.name).order_by(Project.name)).all()
        hint = f"known projects: {', '.join(known)}" if known else "there are no projects yet"
        raise ProjectError(
            f"no project named {name!r} ({hint}; create one with `rlhf label projects create`)"
        )
    return project


def project_settings(project: Project) -> dict[str, Any]:
    return {"name": project.name, **{k: getattr(project, k) for k in SETTINGS}}


def progress(s: Session, project: Project) -> dict[str, int]:
    """Counts of a project: tasks, gold tasks, complete tasks (``overlap`` rankings), rankings,
    skips, open assignments."""
    tasks = dict(
        s.execute(
            select(Task.is_gold, func.count()).where(Task.project_id == project.id).group_by(Task.is_gold)
        ).all()
    )
    per_task = (
        select(Label.task_id, func.count().label("n"))
        .join(Task, Task.id == Label.task_id)
        .where(Label.project_id == project.id, Label.kind == "rank", Task.is_gold.is_(False))
        .group_by(Label.task_id)
        .subquery()
    )
    complete = s.scalar(select(func.count()).select_from(per_task).where(per_task.c.n >= project.overlap))
    kinds = dict(
        s.execute(
            select(Label.kind, func.count()).where(Label.project_id == project.id).group_by(Label.kind)
        ).all()
    )
    open_ = s.scalar(
        select(func.count()).where(Assignment.project_id == project.id, Assignment.status == "open")
    )
    return {
        "tasks": tasks.get(False, 0),
        "gold_tasks": tasks.get(True, 0),
        "complete_tasks": complete or 0,
        "rankings": kinds.get("rank", 0),
        "skips": kinds.get("skip", 0),
        "open_assignments": open_ or 0,
    }


def list_projects(db: Database) -> list[dict[str, Any]]:
    """Every project's settings and progress."""
    with db.read() as s:
        projects = s.scalars(select(Project).order_by(Project.name)).all()
        return [{**project_settings(p), **progress(s, p)} for p in projects]
