"""Project membership: the admin decides which raters work on which project.

A rater sees only the projects they are a member of. Asking for any other project, existing or
not, gets the same 403 answer, so that a rater learns nothing of projects that are not theirs.
Removing a member gives their open tasks in that project back to the pool; their submitted
rankings stay (they are data, and part of the record).
"""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from rlhf.feedback.assign import release_assignments
from rlhf.feedback.auth import get_rater
from rlhf.feedback.db import Database, Membership, Project, Rater
from rlhf.feedback.projects import get_project


class NotAMember(PermissionError):
    """A rater asked for a project they are not a member of (or one that does not exist)."""

    def __init__(self, name: str):
        super().__init__(
            f"you are not a member of a project named {name!r}; the admin adds raters to projects"
        )


def member_project_id(s: Session, name: str, rater_id: int) -> int:
    """The id of project ``name`` if the rater is its member; NotAMember (the same) otherwise."""
    project_id = s.scalar(
        select(Project.id)
        .join(Membership, Membership.project_id == Project.id)
        .where(Project.name == name, Membership.rater_id == rater_id)
    )
    if project_id is None:
        raise NotAMember(name)
    return project_id


def rater_projects(s: Session, rater_id: int) -> list[Project]:
    """The projects a rater is a member of, by name."""
    return list(
        s.scalars(
            select(Project)
            .join(Membership, Membership.project_id == Project.id)
            .where(Membership.rater_id == rater_id)
            .order_by(Project.name)
        )
    )


def add_members(db: Database, project_name: str, rater_names: list[str]) -> list[str]:
    """Make raters members of a project; returns those who were not members before."""
    added = []
    with db.write() as s:
        project = get_project(s, project_name)
        have = set(s.scalars(select(Membership.rater_id).where(Membership.project_id == project.id)))
        for name in rater_names:
            rater = get_rater(s, name)
            if rater.id not in have:
                s.add(Membership(project_id=project.id, rater_id=rater.id))
                have.add(rater.id)
                added.append(name)
    return added


def remove_members(db: Database, project_name: str, rater_names: list[str]) -> list[str]:
    """Take raters off a project (their open tasks there go back to the pool); returns those removed."""
    removed = []
    with db.write() as s:
        project = get_project(s, project_name)
        for name in rater_names:
            rater = get_rater(s, name)
            gone = s.execute(
                delete(Membership).where(Membership.project_id == project.id, Membership.rater_id == rater.id)
            )
            if gone.rowcount:
                release_assignments(s, rater.id, project.id)
                removed.append(name)
    return removed


def list_members(db: Database, project_name: str) -> list[str]:
    """Names of a project's members."""
    with db.read() as s:
        project = get_project(s, project_name)
        return list(
            s.scalars(
                select(Rater.name)
                .join(Membership, Membership.rater_id == Rater.id)
                .where(Membership.project_id == project.id)
                .order_by(Rater.name)
            )
        )
