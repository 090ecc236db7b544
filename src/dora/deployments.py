"""Recorded deployments as ``dora deployment list`` and ``show`` present them: each with
the verdict the reports give it (``verdicts``), its commits and their lead times."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from dora import timeparse, verdicts
from dora.events import Deployment
from dora.store.base import deployment_from_row

if TYPE_CHECKING:
    from dora.store import Store

_COLUMNS = (
    "id", "service", "env", "team", "version", "started_at", "finished_at",
    "repository_url", "commit_sha", "custom_tags",
)  # fmt: skip


@dataclass
class Listed:
    """A deployment, its outcome (None: no rule, mark or incident touched it) and the
    failures it remediates (by id)."""

    deployment: Deployment
    outcome: verdicts.Outcome | None = None
    remediates: list[str] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return self.outcome is not None and self.outcome.verdict.failed


@dataclass(frozen=True)
class Commit:
    """A commit a deployment shipped, and its lead time (ns) to the deployment's finish."""

    sha: str
    committed_at: datetime
    subject: str | None
    lead_ns: int


@dataclass
class Detail(Listed):
    """``dora deployment show``: a deployment with its commits."""

    commits: list[Commit] = field(default_factory=list)

    @property
    def median_lead_ns(self) -> int | None:
        if not self.commits:
            return None
        return int(statistics.median(c.lead_ns for c in self.commits))


def listing(
    store: Store,
    *,
    services: Sequence[str] = (),
    envs: Sequence[str] = (),
    teams: Sequence[str] = (),
    since: datetime | None = None,
    until: datetime | None = None,
    failed_only: bool = False,
    limit: int | None = None,
    link_window: timedelta | None = None,
) -> list[Listed]:
    """Deployments that finished in ``[since, until)`` (either end may be open) and match
    the filters, newest finish first, at most ``limit``; with ``failed_only``, those the
    reports count as failed (marks override the rules)."""
    where: list[str] = []
    params: list[Any] = []
    for column, values in (("service", services), ("env", envs), ("team", teams)):
        if values:
            where.append(f"d.{column} IN ({', '.join('?' * len(values))})")
            params.extend(values)
    if since is not None:
        where.append("d.finished_at >= ?")
        params.append(timeparse.to_ns(since))
    if until is not None:
        where.append("d.finished_at < ?")
        params.append(timeparse.to_ns(until))
    with store.snapshot():
        found = verdicts.outcomes(
            store,
            since or timeparse.EPOCH,
            until or timeparse.LATEST,
            link_window=link_window,
        )
        remediates: dict[str, list[str]] = {}
        for failed_id, outcome in found.items():
            if outcome.verdict.failed:
                for remediation, _ in outcome.verdict.remediations:
                    remediates.setdefault(remediation, []).append(failed_id)
        sql = f"SELECT {', '.join('d.' + c for c in _COLUMNS)} FROM deployments d"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY d.finished_at DESC, d.id DESC"
        if limit and not failed_only:
            sql += " LIMIT ?"
            params.append(limit)
        listed: list[Listed] = []
        for row in store.rows(sql, params):
            deployment = deployment_from_row(dict(zip(_COLUMNS, row, strict=True)))
            one = Listed(
                deployment, found.get(deployment.id), sorted(remediates.get(deployment.id, []))
            )
            if failed_only and not one.failed:
                continue
            listed.append(one)
            if limit and len(listed) >= limit:
                break
    return listed


def detail(store: Store, ref: str, *, link_window: timedelta | None = None) -> Detail:
    """The deployment that ``ref`` (an id or a unique prefix) names, with its commits, its
    outcome and the failures it remediates."""
    with store.snapshot():
        deployment = store.find_deployment(ref)
        outcome = verdicts.outcome(store, deployment.id, link_window=link_window)
        finished = timeparse.to_ns(deployment.finished_at) if deployment.finished_at else 0
        commits = [
            Commit(sha, timeparse.from_ns(at), subject, max(0, finished - at))
            for sha, at, subject in store.rows(
                "SELECT sha, committed_at, subject FROM deployment_commits "
                "WHERE deployment_id = ? ORDER BY committed_at, sha",
                (deployment.id,),
            )
        ]
        # the failures that name it as their remediation: by a rule, or by a mark
        candidates = [
            row[0]
            for row in store.rows(
                "SELECT f.failed_id FROM change_failures f WHERE f.cause_id = ? UNION "
                "SELECT m.deployment_id FROM deployment_marks m JOIN deployments d "
                "ON d.id = m.deployment_id WHERE m.failed = 1 AND (m.remediation_id = ? OR "
                "(m.remediation_version = ? AND d.service = ?))",
                (deployment.id, deployment.id, deployment.version, deployment.service),
            )
        ]
        remediates = []
        for failed_id in sorted(set(candidates)):
            other = verdicts.outcome(store, failed_id, link_window=link_window)
            if other.verdict.failed and any(
                remediation == deployment.id for remediation, _ in other.verdict.remediations
            ):
                remediates.append(failed_id)
    shown = outcome if outcome.verdict.failed or outcome.verdict.cleared else None
    return Detail(deployment, shown, remediates, commits)
