"""Each incident's link to the deployment it followed, kept in the store (``incident_links``,
migration m014), so that a report reads it instead of finding it.

An incident that names no deployment is linked to the latest deployment that finished at or
before it started: of one of its services (of its team when it names none), in its env
when it has one; of several at the same finish, the greatest id. Found at report time, that
was a seek per incident and service (110,000 for two years of a large store: 0.7 s on
SQLite, 1.1 to 1.4 s on PostgreSQL). A link window (``--link-window``) needs nothing more:
the latest deployment is within the window, or none is.

A write relinks every incident whose link it can change (``Relink``), in the transaction
that writes: the incidents it writes; those linked to a deployment it writes again (which
may have moved to another history or finish); those that started at or after the finish of
a deployment it writes, of its service or team. On PostgreSQL, writers relink one at a time
(``SQLStore._lock_links``), so that none misses a deployment or an incident another is
writing. Anything that deletes a deployment must relink the incidents linked to it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dora.store.sql import Connection

#: A condition that a column is one of some values, and its parameters (``_among``).
Among = Callable[[str, Sequence[Any]], tuple[str, list[Any]]]

#: The stored link's columns, in the order of ``Placed``.
COLUMNS = ("deployment_id", "service", "team", "env", "finished_at")


@dataclass
class Relink:
    """What a write did that can change links, gathered as it goes (across chunks) and
    acted on once, at its end (``relink``)."""

    #: the incidents written
    incidents: set[str] = field(default_factory=set)
    #: the deployments written again: those linked to them may be linked elsewhere now
    moved: set[str] = field(default_factory=set)
    #: the services and teams of the deployments written, and the earliest finish among them
    services: set[str] = field(default_factory=set)
    teams: set[str] = field(default_factory=set)
    since: int | None = None

    def deployment(self, row: dict[str, Any], *, again: bool) -> None:
        """A deployment written (its stored row), recorded before if ``again``."""
        if again:
            self.moved.add(row["id"])
        self.services.add(row["service"])
        if row["team"] is not None:
            self.teams.add(row["team"])
        if self.since is None or row["finished_at"] < self.since:
            self.since = row["finished_at"]


def linking(incidents: str, *, lateral: bool) -> str:
    """A query of the deployment each incident that names none, matching the condition
    ``incidents`` (on ``i``), is linked to: rows of (incident, ``Placed``'s fields). An
    incident of several services has a row for each (and, without ``lateral``, for each
    deployment tied at the latest finish): the latest, then the greatest id, is its link.

    ``lateral`` (PostgreSQL): each latest deployment is read whole by the seek that finds
    it, in the index of each history by (finish, id) that holds the team (m013). Otherwise
    the latest finish is one seek on an index by (service or team, env, finish), and the
    deployments that finished then are joined on the finish index."""
    return _lateral(incidents) if lateral else _joined(incidents)


def _joined(incidents: str) -> str:
    def latest(column: str, key: str, env: str) -> str:
        return (
            f"(SELECT MAX(d.finished_at) FROM deployments d WHERE d.{column} = {key}{env} "
            "AND d.finished_at <= i.started_at)"
        )

    same_env = " AND d.env = i.env"
    # DISTINCT (each row is already): PostgreSQL would otherwise look the latest up twice
    inner = (
        "SELECT DISTINCT i.id AS incident, s.service AS svc, i.team AS team, i.env AS e, "
        "CASE WHEN s.service IS NOT NULL AND i.env IS NOT NULL "
        f"THEN {latest('service', 's.service', same_env)} "
        f"WHEN s.service IS NOT NULL THEN {latest('service', 's.service', '')} "
        f"WHEN i.env IS NOT NULL THEN {latest('team', 'i.team', same_env)} "
        f"ELSE {latest('team', 'i.team', '')} END AS t "
        "FROM incidents i LEFT JOIN incident_services s ON s.incident_id = i.id "
        "WHERE i.deployment_id IS NULL AND (s.service IS NOT NULL OR i.team IS NOT NULL) "
        f"AND {incidents}"
    )
    return (
        "SELECT x.incident, d.id, d.service, d.team, d.env, d.finished_at "
        f"FROM ({inner}) x JOIN deployments d ON d.finished_at = x.t "
        "AND ((x.svc IS NOT NULL AND d.service = x.svc) OR (x.svc IS NULL AND d.team = x.team)) "
        "AND (x.e IS NULL OR d.env = x.e)"
    )


def _lateral(incidents: str) -> str:
    # Of the four ways an incident finds its history, one applies to each row: the others'
    # conditions on the incident alone are false, and PostgreSQL never runs them.
    def latest(applies: str, history: str) -> str:
        return (
            "(SELECT d.id, d.service, d.team, d.env, d.finished_at FROM deployments d "
            f"WHERE {applies} AND {history} AND d.finished_at <= i.started_at "
            "ORDER BY d.finished_at DESC, d.id DESC LIMIT 1)"
        )

    service, team, env = "s.service IS NOT NULL", "s.service IS NULL", "i.env IS NOT NULL"
    ways = " UNION ALL ".join(
        (
            latest(f"{service} AND {env}", "d.service = s.service AND d.env = i.env"),
            latest(f"{service} AND i.env IS NULL", "d.service = s.service"),
            latest(f"{team} AND {env}", "d.team = i.team AND d.env = i.env"),
            latest(f"{team} AND i.env IS NULL", "d.team = i.team"),
        )
    )
    return (
        "SELECT i.id, d.id, d.service, d.team, d.env, d.finished_at "
        "FROM incidents i LEFT JOIN incident_services s ON s.incident_id = i.id "
        f"CROSS JOIN LATERAL ({ways}) d "
        "WHERE i.deployment_id IS NULL AND (s.service IS NOT NULL OR i.team IS NOT NULL) "
        f"AND {incidents}"
    )


def relink(db: Connection, what: Relink, *, lateral: bool, among: Among, chunk: int) -> None:
    """Find again the links of every incident ``what`` can have changed."""
    affected = set(what.incidents)
    if what.moved:
        for part in parts(sorted(what.moved), chunk):
            condition, ids = among("deployment_id", part)
            affected.update(
                incident
                for (incident,) in db.execute(
                    f"SELECT incident_id FROM incident_links WHERE {condition}", ids
                )
            )
    if what.since is not None:
        # of a written deployment's service or team (a superset: from the earliest finish
        # of them all), and none of them when a deployment is recorded as it finishes; the
        # incidents of the services are found once (as a condition on each incident, the
        # services of an import were looked for again for every incident: 0.25 s for 10,000)
        def since(reach: str, params: list[Any]) -> None:
            affected.update(
                incident
                for (incident,) in db.execute(
                    "SELECT i.id FROM incidents i WHERE i.started_at >= ? "
                    f"AND i.deployment_id IS NULL AND {reach}",
                    [what.since, *params],
                )
            )

        for part in parts(sorted(what.services), chunk):
            services, params = among("s.service", part)
            since(
                f"i.id IN (SELECT s.incident_id FROM incident_services s WHERE {services})", params
            )
        for part in parts(sorted(what.teams), chunk):
            teams, params = among("i.team", part)
            since(
                f"{teams} AND NOT EXISTS (SELECT 1 FROM incident_services s "
                "WHERE s.incident_id = i.id)",
                params,
            )
    for part in parts(sorted(affected), chunk):
        condition, ids = among("incident_id", part)
        db.execute(f"DELETE FROM incident_links WHERE {condition}", ids)
        condition, ids = among("i.id", part)
        found = _latest(db.execute(linking(condition, lateral=lateral), ids))
        if found:
            db.executemany(
                f"INSERT INTO incident_links (incident_id, {', '.join(COLUMNS)}) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                found,
            )


def relink_all(db: Connection, *, lateral: bool) -> None:
    """Find the link of every incident (a store made before links were kept: m014)."""
    ids = [
        incident
        for (incident,) in db.execute("SELECT id FROM incidents WHERE deployment_id IS NULL")
    ]

    def among(column: str, values: Sequence[Any]) -> tuple[str, list[Any]]:
        return f"{column} IN ({', '.join('?' * len(values))})", list(values)

    relink(db, Relink(incidents=set(ids)), lateral=lateral, among=among, chunk=500)


def _latest(rows: Iterable[Sequence[Any]]) -> list[tuple[Any, ...]]:
    """Of the rows of ``linking``, each incident's link: the latest, the greatest id among
    deployments that finished at once."""
    best: dict[str, tuple[Any, ...]] = {}
    for row in rows:
        known = best.get(row[0])
        if known is None or (row[5], row[1]) > (known[5], known[1]):
            best[row[0]] = tuple(row)
    return list(best.values())


def parts(values: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    """``values`` ``size`` at a time (for ``IN`` lists)."""
    for start in range(0, len(values), size):
        yield values[start : start + size]
