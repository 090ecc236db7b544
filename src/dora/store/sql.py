"""The store as SQL that SQLite and PostgreSQL both understand.

``SQLStore`` holds every query the two engines share: upserts with ``ON CONFLICT``, the
outbox, the comparison of an event with its stored form. SQL is written with ``?``
placeholders; an engine whose driver wants another style translates. What differs (how
a connection is opened and a transaction taken, how an id prefix is matched, how commits
are credited once) is left to each engine's subclass.
"""

from __future__ import annotations

import json
import operator
import time
from abc import abstractmethod
from collections.abc import Callable, Container, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from dora import failures, timeparse
from dora.errors import StoreError
from dora.events import (
    DELETION_KINDS,
    Deletion,
    Deliverable,
    Deployment,
    DeploymentMark,
    Event,
    Incident,
)
from dora.store import detection, links
from dora.store.base import (
    Deleted,
    Pending,
    PreviousCommit,
    Redetected,
    Saved,
    Store,
    Stored,
    deployment_from_row,
    incident_from_row,
    stored,
)

if TYPE_CHECKING:
    from dora.gitmeta import Commit


class Cursor(Protocol):
    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class Connection(Protocol):
    """What the shared SQL needs of a connection: rows that can be read by column name or
    position, ``?`` placeholders."""

    def execute(self, sql: str, params: Sequence[Any] = ..., /) -> Cursor: ...

    def executemany(self, sql: str, params: Iterable[Sequence[Any]], /) -> Any: ...


#: A deployment history: its service and env (None for none).
History = tuple[str, str | None]

#: Values in one ``IN`` list (SQLite's limit on parameters was 999 before 3.32), and
#: events written at a time by ``save_many`` unless the engine says otherwise.
CHUNK = 500

#: Tries of a deployment's write while other writers change the store's hotfix pattern.
_ATTEMPTS = 5

_T = TypeVar("_T")


class _OtherPattern(Exception):
    """The store's effects were found with another hotfix pattern than the write's
    (``wanted``): they must all be found again first, by a write that keeps the others out."""

    def __init__(self, wanted: str) -> None:
        super().__init__(wanted)
        self.wanted = wanted


class SQLStore(Store):
    #: SQL for an incident ``i``'s services, in order, as a JSON array (text).
    SERVICES: str
    #: A join the planner must take in the order written (SQLite reads CROSS JOIN so).
    ORDERED_JOIN = "JOIN"
    #: Events ``save_many`` writes at a time: one query finds which are stored already.
    CHUNK = CHUNK

    @abstractmethod
    def _write(self, *, bulk: bool = False) -> AbstractContextManager[Connection]:
        """A write transaction: committed when the block ends, rolled back if it raises.
        ``bulk`` (many events in one long transaction) may keep other writers out."""

    @abstractmethod
    def _read(self, sql: str, params: Sequence[Any]) -> list[Mapping[str, Any]]:
        """All rows of a read-only query."""

    @abstractmethod
    def _id_prefix(self, prefix: str, column: str = "i.id") -> tuple[str, Any]:
        """A condition on ``column`` (an id) that holds when it starts with ``prefix``, and
        its parameter."""

    @abstractmethod
    def _credit_once(self, db: Connection, shas: set[str]) -> None:
        """Credit each commit to the first deployment of the service and env that shipped it,
        as lead time measures the time to reach production once.

        ``shas`` are the commits of deployments just stored with their commits. Deployments
        are ordered by finish, then id: of the deployments of one service and env that list
        a commit, only the first keeps it. So a roll forward after a rollback ships nothing
        new, and a backfill takes its commits from the deployment recorded before it that
        shipped them.
        """

    def _among(self, column: str, values: Sequence[Any]) -> tuple[str, list[Any]]:
        """A condition that ``column`` is one of ``values``, and its parameters."""
        return f"{column} IN ({', '.join('?' * len(values))})", list(values)

    def _insert_rows(
        self,
        db: Connection,
        table: str,
        columns: Sequence[str],
        rows: list[tuple[Any, ...]],
        conflict: str = "",
    ) -> None:
        """Insert ``rows`` (values of ``columns``) into ``table`` in one go, with the
        ``ON CONFLICT`` clause ``conflict``."""
        db.executemany(
            f"INSERT INTO {table} ({', '.join(columns)}) "
            f"VALUES ({', '.join('?' * len(columns))}) {conflict}",
            rows,
        )

    def _lock_histories(self, db: Connection, histories: Iterable[History]) -> None:
        """Keep other writers off these histories (service and env) until the transaction
        ends, where the engine lets several write at once: crediting commits once and
        finding change failures read the history they change."""

    def _lock_links(self, db: Connection) -> None:
        """Keep other writers from relinking incidents until the transaction ends, where the
        engine lets several write at once: each must see what the others wrote (``links``)."""

    def _relink(self, db: Connection, what: links.Relink) -> None:
        """Find again the links of the incidents a write can have changed (``links``)."""
        if what.incidents or what.moved or what.since is not None:
            self._lock_links(db)
            links.relink(db, what, lateral=self.lateral, among=self._among, chunk=self.CHUNK)

    def _bulk(self) -> AbstractContextManager[object]:
        """Engine settings for writing many rows at once."""
        return nullcontext()

    def save(
        self, event: Event, *, queue: bool = False, commits: Sequence[Commit] | None = None
    ) -> None:
        if not isinstance(event, Deployment):
            with self._write() as db:
                relink = links.Relink()
                self._write_events(db, [stored(event, commits)], time.time_ns(), relink=relink)
                self._relink(db, relink)
                self._queue_all(db, [(event.kind, event.id)], insert=queue)
            return
        self._with_pattern(lambda: self._save_deployment(event, queue=queue, commits=commits))

    def _with_pattern(self, write: Callable[[], _T]) -> _T:
        """``write()``; when it finds the store's change failures found with another hotfix
        pattern than its own (``_OtherPattern``), they are found again by a write of its own
        that keeps the others out, then ``write()`` again."""
        for _ in range(_ATTEMPTS):
            try:
                return write()
            except _OtherPattern as other:
                following = self.hotfix
                self.use_hotfix(other.wanted)
                self.hotfix = following
        raise StoreError(
            f"cannot write to the store at {self.location}: other writers keep changing its "
            "hotfix pattern; give them all the same one (hotfix_pattern in a config file)"
        )

    def _save_deployment(
        self, event: Deployment, *, queue: bool, commits: Sequence[Commit] | None
    ) -> None:
        with self._write() as db:
            stored_pattern = detection.stored_hotfix(db)
            hotfix = self._wanted(stored_pattern)
            if hotfix != stored_pattern:  # the effects stored were found with another
                raise _OtherPattern(hotfix)
            item = stored(event, commits)
            histories = self._histories(db, [item])
            self._lock_histories(db, histories)
            facts = db.execute(
                f"SELECT {detection.FACTS} FROM deployments WHERE id = ?", (event.id,)
            ).fetchone()
            latest = facts is None and detection.is_latest(db, event)
            relink = links.Relink()
            self._write_events(db, [item], time.time_ns(), relink=relink)
            self._relink(db, relink)
            if latest:  # the common case: the effects of one deployment, at the end
                detection.add(db, event, hotfix=hotfix)
            elif facts is None or tuple(facts) != _facts(event) or commits is not None:
                detection.rescan(db, histories, hotfix=hotfix)
            self._queue_all(db, [(event.kind, event.id)], insert=queue)

    def use_hotfix(
        self, pattern: str, *, progress: Callable[[int, int], None] | None = None
    ) -> Redetected | None:
        self.hotfix = pattern
        found = self._read(
            "SELECT value FROM detection_settings WHERE name = ?", (detection.HOTFIX_SETTING,)
        )
        if found and found[0]["value"] == pattern:  # the common case: nothing to do
            return None
        with self._bulk(), self._write(bulk=True) as db:
            previous = detection.stored_hotfix(db)  # again: another process may have done it
            if previous == pattern:
                return None
            scanned = detection.rescan_all(db, pattern, progress=progress)
        return Redetected(previous, scanned)

    def _wanted(self, stored: str | None) -> str:
        """The hotfix pattern to judge with, given the store's (None: it has none)."""
        if self.hotfix is not None:
            return self.hotfix
        return stored if stored is not None else failures.HOTFIX

    def save_many(
        self,
        items: Iterable[Stored],
        *,
        queue: bool = False,
        sent_at: int | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> Saved:
        saved = Saved()
        now = time.time_ns()
        with self._bulk(), self._write(bulk=True) as db:
            histories: set[History] = set()
            relink = links.Relink()
            for chunk in _chunks(items, self.CHUNK):
                if sent_at is not None:
                    chunk = self._as_fetched(db, chunk, saved, sent_at)
                histories |= self._save_chunk(db, chunk, saved, queue=queue, now=now, relink=relink)
                if sent_at is not None:
                    _delivered(db, [(item.kind, item.id) for item in chunk], now)
                if progress is not None:
                    progress(saved.total)
            self._relink(db, relink)
            stored_pattern = detection.stored_hotfix(db)
            hotfix = self._wanted(stored_pattern)
            if hotfix != stored_pattern:  # this transaction writes alone: find them all again
                detection.rescan_all(db, hotfix)
            else:
                detection.rescan(db, histories, hotfix=hotfix)
        return saved

    def delete(self, kind: str, ids: Sequence[str]) -> Deleted:
        return self._with_pattern(lambda: self._delete(kind, ids))

    def _delete(self, kind: str, ids: Sequence[str]) -> Deleted:
        table = {"deployment": "deployments", "incident": "incidents"}[kind]
        wanted = list(dict.fromkeys(ids))
        deleted = Deleted()
        with self._write() as db:
            stored_pattern = detection.stored_hotfix(db)
            hotfix = self._wanted(stored_pattern)
            if kind == "deployment" and hotfix != stored_pattern:
                raise _OtherPattern(hotfix)
            if kind == "deployment":
                # the histories are locked before they are read for good (PostgreSQL)
                self._lock_histories(
                    db, {(service, env) for service, env, _ in self._placed(db, wanted).values()}
                )
            placed = self._placed(db, wanted) if kind == "deployment" else {}
            present = set(placed) if kind == "deployment" else self._present(db, table, wanted)
            deleted.ids = [event_id for event_id in wanted if event_id in present]
            if not deleted.ids:
                return deleted
            deleted.queued = self._queue_deletions(db, kind, deleted.ids)
            relink = links.Relink()
            if kind == "deployment":
                self._hand_on_commits(db, placed)
                for part in _parts(deleted.ids):
                    among, params = self._among("deployment_id", part)
                    relink.incidents.update(
                        incident
                        for (incident,) in db.execute(
                            f"SELECT id FROM incidents WHERE {among}", params
                        )
                    )
                    db.execute(f"UPDATE incidents SET deployment_id = NULL WHERE {among}", params)
                relink.moved.update(deleted.ids)
            for part in _parts(deleted.ids):
                among, params = self._among("id", part)
                db.execute(f"DELETE FROM {table} WHERE {among}", params)
            if kind == "deployment":
                histories = {(service, env) for service, env, _ in placed.values()}
                detection.rescan(db, histories, hotfix=hotfix)
                self._relink(db, relink)
        return deleted

    def _placed(self, db: Connection, ids: Sequence[str]) -> dict[str, tuple[str, Any, int]]:
        """The (service, env, finish) of each of these deployments that is stored."""
        placed = {}
        for part in _parts(ids):
            among, params = self._among("id", part)
            for event_id, service, env, finished in db.execute(
                f"SELECT id, service, env, finished_at FROM deployments WHERE {among}", params
            ):
                placed[event_id] = (service, env, finished)
        return placed

    def _present(self, db: Connection, table: str, ids: Sequence[str]) -> set[str]:
        present: set[str] = set()
        for part in _parts(ids):
            among, params = self._among("id", part)
            present.update(
                row[0] for row in db.execute(f"SELECT id FROM {table} WHERE {among}", params)
            )
        return present

    def _queue_deletions(self, db: Connection, kind: str, ids: Sequence[str]) -> list[str]:
        """Take the events (and a deployment's mark) out of the outbox, and queue the
        deletion of those it has sent, tried to, or is sending now; return their ids."""
        sent: list[str] = []
        for part in _parts(ids):
            among, params = self._among("event_id", part)
            sent += [
                event_id
                for (event_id,) in db.execute(
                    f"SELECT event_id FROM outbox WHERE kind = ? AND {among} "
                    "AND (state = 'delivered' OR attempts > 0 OR claimed_until IS NOT NULL)",
                    (kind, *params),
                )
            ]
            kinds = ("deployment", "mark") if kind == "deployment" else (kind,)
            for each in kinds:
                db.execute(f"DELETE FROM outbox WHERE kind = ? AND {among}", (each, *params))
        sent.sort(key={event_id: n for n, event_id in enumerate(ids)}.__getitem__)
        now = time.time_ns()
        db.executemany(
            "INSERT INTO outbox (kind, event_id, state, queued_at) VALUES (?, ?, 'pending', ?) "
            "ON CONFLICT (kind, event_id) DO UPDATE SET state = 'pending', attempts = 0, "
            "last_error = NULL, queued_at = excluded.queued_at, delivered_at = NULL, "
            "claimed_until = NULL",
            [(DELETION_KINDS[kind], event_id, now + n) for n, event_id in enumerate(sent)],
        )
        return sent

    def _hand_on_commits(self, db: Connection, placed: Mapping[str, tuple[str, Any, int]]) -> None:
        """Give the commits of each deployment about to be deleted to the next deployment of
        its history that stays, with that deployment's team, finish and lead times; a SHA
        that one has already stays its own. Oldest first, so that the commits of deleted
        deployments in a row all reach the one after them."""
        for event_id in sorted(placed, key=lambda i: (placed[i][2], i)):
            service, env, finished = placed[event_id]
            same, params = detection.same_env("env", env)
            after = None
            for row in db.execute(
                "SELECT id, team, finished_at FROM deployments WHERE service = ? AND "
                f"{same} AND (finished_at, id) > (?, ?) ORDER BY finished_at, id LIMIT ?",
                (service, *params, finished, event_id, len(placed) + 1),
            ):
                if row[0] not in placed:
                    after = row
                    break
            if after is None:
                continue  # shipped by nothing now: they go with it
            next_id, team, next_finished = after
            db.execute(
                "UPDATE deployment_commits SET deployment_id = ?, team = ?, finished_at = ?, "
                "lead_time = CASE WHEN ? > committed_at THEN ? - committed_at ELSE 0 END "
                "WHERE deployment_id = ? AND sha NOT IN "
                "(SELECT sha FROM deployment_commits WHERE deployment_id = ?)",
                (next_id, team, next_finished, next_finished, next_finished, event_id, next_id),
            )

    def previous_commit(self, deployment: Deployment) -> PreviousCommit | None:
        env, params = _same_env("env", deployment.env)
        found = self._read(
            f"SELECT commit_sha, repository_url FROM deployments WHERE service = ? AND {env} "
            "AND (finished_at, id) < (?, ?) AND commit_sha IS NOT NULL "
            "ORDER BY finished_at DESC, id DESC LIMIT 1",
            (
                deployment.service,
                *params,
                timeparse.to_ns(deployment.finished_at),
                deployment.id,
            ),
        )
        if not found:
            return None
        return PreviousCommit(str(found[0]["commit_sha"]), found[0]["repository_url"])

    def finish_incident(
        self, incident_id: str, finished_at: datetime, *, queue: bool = False
    ) -> bool:
        with self._write() as db:
            done = db.execute(
                "UPDATE incidents SET finished_at = ? WHERE id = ? AND finished_at IS NULL",
                (timeparse.to_ns(finished_at), incident_id),
            )
            if done.rowcount == 1:
                self._queue_all(db, [("incident", incident_id)], insert=queue)
            return done.rowcount == 1

    def save_mark(self, deployment_id: str, mark: failures.Mark, *, queue: bool = False) -> None:
        now = time.time_ns()
        with self._write() as db:
            db.execute(
                "INSERT INTO deployment_marks (deployment_id, failed, remediation_id, "
                "remediation_version, remediation_type, marked_at, by_version) "
                "VALUES (?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (deployment_id) DO UPDATE SET failed = excluded.failed, "
                "remediation_id = excluded.remediation_id, "
                "remediation_version = excluded.remediation_version, "
                "remediation_type = excluded.remediation_type, marked_at = excluded.marked_at, "
                "by_version = excluded.by_version",
                (
                    deployment_id,
                    int(mark.failed),
                    mark.remediation_id,
                    mark.remediation_version,
                    mark.remediation_type,
                    now,
                    int(mark.by_version),
                ),
            )
            if queue:
                _queue_new(db, [("deployment", deployment_id)], now)
            self._queue_all(db, [("mark", deployment_id)], insert=queue)

    def mark_request(self, deployment_id: str, mark: failures.Mark) -> DeploymentMark:
        by_version = None
        if mark.by_version:
            found = self._read(
                "SELECT service, env, version FROM deployments WHERE id = ?", (deployment_id,)
            )
            if found and found[0]["env"] is not None and found[0]["version"] is not None:
                by_version = (found[0]["service"], found[0]["env"], found[0]["version"])
        if not mark.failed:
            return DeploymentMark(deployment_id, failed=False, by_version=by_version)
        kind = mark.remediation_type
        if kind is None and (mark.remediation_id or mark.remediation_version) is not None:
            back = self._rolls_back(deployment_id, mark)
            kind = failures.ROLLBACK if back else failures.ROLLFORWARD
        return DeploymentMark(
            deployment_id, True, mark.remediation_id, mark.remediation_version, kind, by_version
        )

    def latest_of_version(self, service: str, env: str, version: str) -> Deployment | None:
        found = self._read(
            "SELECT * FROM deployments WHERE service = ? AND env = ? AND version = ? "
            "ORDER BY finished_at DESC, id DESC LIMIT 1",
            (service, env, version),
        )
        return deployment_from_row(found[0]) if found else None

    def _rolls_back(self, deployment_id: str, mark: failures.Mark) -> bool:
        """Whether the remediation a mark names deploys what a deployment before the marked
        one (of its service and env) deployed: its commit SHA, else its version. A
        remediation by a version not recorded yet compares that version."""
        found = self._read(
            "SELECT service, env, finished_at FROM deployments WHERE id = ?", (deployment_id,)
        )
        if not found:
            return False
        service, env, finished = found[0]["service"], found[0]["env"], found[0]["finished_at"]
        same_env, env_params = _same_env("env", env)
        history = f"service = ? AND {same_env}"
        if mark.remediation_id is not None:
            remediation = self._read(
                "SELECT commit_sha, version FROM deployments WHERE id = ?", (mark.remediation_id,)
            )
        else:
            remediation = self._read(
                f"SELECT commit_sha, version FROM deployments WHERE {history} AND version = ? "
                "AND (finished_at, id) > (?, ?) ORDER BY finished_at, id LIMIT 1",
                (service, *env_params, mark.remediation_version, finished, deployment_id),
            )
        if remediation:
            sha, version = remediation[0]["commit_sha"], remediation[0]["version"]
            key = failures.deployment_key(failures.Deployed(deployment_id, sha, version))
        else:
            key = None if mark.remediation_version is None else ("any", mark.remediation_version)
        if key is None:
            return False
        same = {
            "sha": "commit_sha = ?",
            "version": "commit_sha IS NULL AND version = ?",
            "any": "version = ?",
        }[key[0]]
        earlier = self._read(
            f"SELECT 1 FROM deployments WHERE {history} AND (finished_at, id) < (?, ?) "
            f"AND {same} LIMIT 1",
            (service, *env_params, finished, deployment_id, key[1]),
        )
        return bool(earlier)

    def _marks(self, ids: str, params: Sequence[Any]) -> list[DeploymentMark]:
        """The requests of the marks on the deployments ``ids`` (SQL giving their ids)."""
        return [
            self.mark_request(
                row["deployment_id"],
                failures.Mark(
                    bool(row["failed"]),
                    row["remediation_id"],
                    row["remediation_version"],
                    row["remediation_type"],
                    bool(row["by_version"]),
                ),
            )
            for row in self._read(
                "SELECT deployment_id, failed, remediation_id, remediation_version, "
                "remediation_type, by_version FROM deployment_marks "
                f"WHERE deployment_id IN ({ids})",
                params,
            )
        ]

    def undelivered(self) -> list[Pending]:
        waiting = "SELECT event_id FROM outbox WHERE kind = ? AND state != 'delivered'"
        now = time.time_ns()
        outbox = self._read(
            "SELECT kind, event_id, state, attempts, last_error, claimed_until FROM outbox "
            "WHERE state != 'delivered' "
            "ORDER BY CASE WHEN kind = 'mark' THEN 1 ELSE 0 END, queued_at, kind, event_id",
            (),
        )
        events: dict[tuple[str, str], Deliverable] = {
            ("deployment", row["id"]): deployment_from_row(row)
            for row in self._read(
                f"SELECT * FROM deployments WHERE id IN ({waiting})", ("deployment",)
            )
        }
        events.update(
            (("incident", incident.id), incident)
            for incident in self._incidents(f"WHERE i.id IN ({waiting})", ("incident",))
        )
        events.update((("mark", mark.id), mark) for mark in self._marks(waiting, ("mark",)))
        events.update(
            ((row["kind"], row["event_id"]), Deletion(row["kind"], row["event_id"]))
            for row in outbox
            if row["kind"] in _DELETIONS
        )
        return [
            Pending(
                event,
                entry["state"],
                entry["attempts"],
                entry["last_error"],
                claimed=(entry["claimed_until"] or 0) >= now,
            )
            for entry in outbox
            if (event := events.get((entry["kind"], entry["event_id"]))) is not None
        ]

    def claim(self, event: Deliverable, seconds: float) -> bool:
        now = time.time_ns()
        with self._write() as db:
            taken = db.execute(
                "UPDATE outbox SET claimed_until = ? WHERE kind = ? AND event_id = ? "
                "AND state != 'delivered' AND (claimed_until IS NULL OR claimed_until < ?)",
                (now + int(seconds * 1e9), event.kind, event.id, now),
            )
            return taken.rowcount == 1

    def release(self, event: Deliverable) -> None:
        with self._write() as db:
            db.execute(
                "UPDATE outbox SET claimed_until = NULL WHERE kind = ? AND event_id = ?",
                (event.kind, event.id),
            )

    def mark_delivered(self, event: Deliverable) -> None:
        with self._write() as db:
            db.execute(
                "UPDATE outbox SET state = 'delivered', attempts = attempts + 1, "
                "last_error = NULL, delivered_at = ?, claimed_until = NULL "
                "WHERE kind = ? AND event_id = ?",
                (time.time_ns(), event.kind, event.id),
            )

    def mark_failed(self, event: Deliverable, error: str) -> None:
        with self._write() as db:
            db.execute(
                "UPDATE outbox SET state = 'failed', attempts = attempts + 1, last_error = ?, "
                "claimed_until = NULL WHERE kind = ? AND event_id = ?",
                (error, event.kind, event.id),
            )

    def get(self, kind: str, event_id: str) -> Deliverable | None:
        if kind in _DELETIONS:
            return Deletion(kind, event_id)
        if kind == "mark":
            marks = self._marks("?", (event_id,))
            return marks[0] if marks else None
        if kind == "deployment":
            rows = self._read("SELECT * FROM deployments WHERE id = ?", (event_id,))
            return deployment_from_row(rows[0]) if rows else None
        incidents = self._incidents("WHERE i.id = ?", (event_id,))
        return incidents[0] if incidents else None

    def deployments_by_prefix(self, prefix: str, limit: int) -> list[Deployment]:
        condition, param = self._id_prefix(prefix, "d.id")
        return [
            deployment_from_row(row)
            for row in self._read(
                f"SELECT d.* FROM deployments d WHERE {condition} ORDER BY d.id != ?, d.id LIMIT ?",
                (param, prefix, limit),
            )
        ]

    def incidents_by_prefix(self, prefix: str, limit: int) -> list[Incident]:
        condition, param = self._id_prefix(prefix)
        return self._incidents(
            f"WHERE {condition} ORDER BY i.id != ?, i.id LIMIT ?", (param, prefix, limit)
        )

    def list_incidents(
        self,
        *,
        open_only: bool = False,
        services: Sequence[str] = (),
        envs: Sequence[str] = (),
        teams: Sequence[str] = (),
        since: datetime | None = None,
        limit: int | None = None,
    ) -> list[Incident]:
        where: list[str] = []
        params: list[Any] = []
        if open_only:
            where.append("i.finished_at IS NULL")
        for column, values in (("env", envs), ("team", teams)):
            if values:
                where.append(f"i.{column} IN ({', '.join('?' * len(values))})")
                params.extend(values)
        if since is not None:
            where.append("i.started_at >= ?")
            params.append(timeparse.to_ns(since))
        if services:
            marks = ", ".join("?" * len(services))
            where.append(
                "EXISTS (SELECT 1 FROM incident_services s "
                f"WHERE s.incident_id = i.id AND s.service IN ({marks}))"
            )
            params.extend(services)
        sql = f"WHERE {' AND '.join(where)}" if where else ""
        sql += " ORDER BY i.started_at DESC, i.id DESC"
        if limit:
            sql += " LIMIT ?"
            params.append(limit)
        return self._incidents(sql, params)

    def _incidents(self, rest: str, params: Sequence[Any]) -> list[Incident]:
        """Incidents of ``SELECT ... FROM incidents i {rest}``, with their services."""
        sql = (
            "SELECT i.id, i.name, i.severity, i.env, i.version, i.team, i.started_at, "
            "i.finished_at, i.repository_url, i.commit_sha, i.custom_tags, i.deployment_id, "
            f"{self.SERVICES} AS services FROM incidents i {rest}"
        )
        return [incident_from_row(r, json.loads(r["services"])) for r in self._read(sql, params)]

    def _as_fetched(
        self, db: Connection, chunk: list[Stored], saved: Saved, sent_at: int
    ) -> list[Stored]:
        """The events of ``chunk`` (read from the backend from ``sent_at`` on) to write: not
        those with a change or a deletion made here waiting in the outbox, nor those sent
        again since ``sent_at`` (the backend's copy may be older), which are counted in
        ``saved.waiting``; an incident keeps the deployment it names, which the backend's
        read model has no place for."""
        skip: set[tuple[str, str]] = set()
        named: dict[str, str] = {}
        for kind in ("deployment", "incident"):
            if not (ids := [item.id for item in chunk if item.kind == kind]):
                continue
            among, params = self._among("event_id", ids)
            skip.update(
                (kind, event_id)
                for (event_id,) in db.execute(
                    f"SELECT event_id FROM outbox WHERE kind IN (?, ?) AND {among} "
                    "AND (state != 'delivered' OR delivered_at >= ?)",
                    (kind, DELETION_KINDS[kind], *params, sent_at),
                )
            )
            if kind == "incident":
                among, params = self._among("id", ids)
                for event_id, deployment_id in db.execute(
                    f"SELECT id, deployment_id FROM incidents WHERE {among} "
                    "AND deployment_id IS NOT NULL",
                    params,
                ):
                    named[event_id] = deployment_id
        saved.waiting += len(skip)
        return [
            item._replace(row={**item.row, "deployment_id": named[item.id]})
            if item.kind == "incident" and item.id in named
            else item
            for item in chunk
            if (item.kind, item.id) not in skip
        ]

    def _save_chunk(
        self,
        db: Connection,
        chunk: list[Stored],
        saved: Saved,
        *,
        queue: bool,
        now: int,
        relink: links.Relink,
    ) -> set[History]:
        """Write the new and changed events of ``chunk`` (what can change links into
        ``relink``); return the deployment histories they change, for finding change
        failures again."""
        known: set[tuple[str, str]] = set()
        was: dict[str, History] = {}  # the history each deployment stored is in now
        for kind, table in (("deployment", "deployments"), ("incident", "incidents")):
            ids = [item.id for item in chunk if item.kind == kind]
            if ids:
                among, params = self._among("id", ids)
                columns = "id, service, env" if kind == "deployment" else "id, NULL, NULL"
                for event_id, service, env in db.execute(
                    f"SELECT {columns} FROM {table} WHERE {among}", params
                ):
                    known.add((kind, event_id))
                    if kind == "deployment":  # an incident may have the same id
                        was[event_id] = (service, env)
        self._lock_histories(
            db,
            (
                (item.row["service"], item.row["env"])
                for item in chunk
                if item.kind == "deployment" and item.commits is not None
            ),
        )
        changed: list[Stored] = []
        unchanged: list[tuple[str, str]] = []
        stored_now = self._stored(db, [item for item in chunk if (item.kind, item.id) in known])
        for item in chunk:
            if (item.kind, item.id) not in known:
                saved.new += 1
            elif self._unchanged(db, item, stored_now.get((item.kind, item.id))):
                saved.unchanged += 1
                unchanged.append((item.kind, item.id))
                continue
            else:
                saved.updated += 1
            changed.append(item)
        if queue:
            _queue_new(db, unchanged, now)
        # a deployment recorded again may move to another service or env: both change
        histories = {
            history
            for item in changed
            if item.kind == "deployment"
            for history in ((item.row["service"], item.row["env"]), was.get(item.id))
            if history is not None
        }
        self._write_events(db, changed, now, known=known, relink=relink)
        self._queue_all(db, [(item.kind, item.id) for item in changed], insert=queue)
        return histories

    def _write_events(
        self,
        db: Connection,
        items: Sequence[Stored],
        recorded_at: int,
        *,
        known: Container[tuple[str, str]] | None = None,
        relink: links.Relink,
    ) -> None:
        """Insert or replace the events (keeping when each was first recorded) and what goes
        with them: an incident's services, a deployment's commits (None keeps those stored);
        what can change incidents' links goes into ``relink``.
        ``known`` holds the (kind, id) of those that may be stored already (None: any may
        be); the others are inserted as they are, nothing of theirs looked for to be
        replaced. A deployment's commits are one per SHA (``stored``) and those it had are
        deleted first, so they are inserted as they are."""

        def replaced(found: list[Stored]) -> list[tuple[str]]:
            return [(i.id,) for i in found if known is None or (i.kind, i.id) in known]

        deployments = [item for item in items if item.kind == "deployment"]
        incidents = [item for item in items if item.kind == "incident"]
        relink.incidents.update(item.id for item in incidents)
        for item in deployments:
            relink.deployment(item.row, again=known is None or (item.kind, item.id) in known)
        for table, written in (("deployments", deployments), ("incidents", incidents)):
            if fresh := [
                i.row for i in written if known is not None and (i.kind, i.id) not in known
            ]:
                self._upsert(db, table, fresh, recorded_at, new=True)
            if again := [i.row for i in written if known is None or (i.kind, i.id) in known]:
                self._upsert(db, table, again, recorded_at)
        if old_incidents := replaced(incidents):
            db.executemany("DELETE FROM incident_services WHERE incident_id = ?", old_incidents)
        services = [(i.id, service, n) for i in incidents for n, service in enumerate(i.services)]
        if services:
            self._insert_rows(
                db, "incident_services", ("incident_id", "service", "position"), services
            )
        # a deployment's commits carry its service, team, env and finish, and their lead
        # times (m012): those of a deployment recorded again without commits follow it
        # (one statement for the chunk: a round trip per deployment is slow on PostgreSQL)
        kept = [i for (i,) in replaced([d for d in deployments if d.commits is None])]
        if kept:
            among, params = self._among("deployment_id", kept)
            db.execute(
                "UPDATE deployment_commits SET (service, team, env, finished_at, lead_time) = "
                "(SELECT d.service, d.team, d.env, d.finished_at, CASE WHEN d.finished_at > "
                "deployment_commits.committed_at THEN d.finished_at - "
                "deployment_commits.committed_at ELSE 0 END FROM deployments d "
                f"WHERE d.id = deployment_commits.deployment_id) WHERE {among}",
                params,
            )
        shipping = [item for item in deployments if item.commits is not None]
        if not shipping:
            return
        if old_deployments := replaced(shipping):
            db.executemany(
                "DELETE FROM deployment_commits WHERE deployment_id = ?", old_deployments
            )
        commits = [
            (
                row["id"], sha, committed, subject, reverts, row["service"], row["team"],
                row["env"], row["finished_at"], max(0, row["finished_at"] - committed),
            )
            for row, shipped in ((item.row, item.commits or ()) for item in shipping)
            for sha, committed, subject, reverts in shipped
        ]  # fmt: skip
        if commits:
            self._insert_rows(
                db,
                "deployment_commits",
                (
                    "deployment_id", "sha", "committed_at", "subject", "reverts", "service",
                    "team", "env", "finished_at", "lead_time",
                ),
                commits,
            )  # fmt: skip
        self._credit_once(db, {commit[1] for commit in commits})

    def _stored(self, db: Connection, items: Sequence[Stored]) -> dict[tuple[str, str], _Compared]:
        """The stored forms of the events of ``items`` (kind and id) that are stored, to
        compare with ``_as_stored``: a few statements for them all."""
        found: dict[tuple[str, str], _Compared] = {}
        for kind, table in (("deployment", "deployments"), ("incident", "incidents")):
            ids = [item.id for item in items if item.kind == kind]
            if not ids:
                continue
            among, params = self._among("id", ids)
            for row in db.execute(f"SELECT * FROM {table} WHERE {among}", params):
                kept = {key: row[key] for key in row.keys() if key != "recorded_at"}  # noqa: SIM118
                found[kind, kept["id"]] = (kept, [], None)
        incidents = [item.id for item in items if item.kind == "incident"]
        if incidents:
            among, params = self._among("incident_id", incidents)
            for incident_id, service in db.execute(
                "SELECT incident_id, service FROM incident_services "
                f"WHERE {among} ORDER BY incident_id, position",
                params,
            ):
                found["incident", incident_id][1].append(service)
        shipping = [i.id for i in items if i.kind == "deployment" and i.commits is not None]
        for event_id in shipping:
            if ("deployment", event_id) in found:
                row, services, _ = found["deployment", event_id]
                found["deployment", event_id] = (row, services, [])
        if shipping:
            among, params = self._among("deployment_id", shipping)
            for deployment_id, *commit in db.execute(
                "SELECT deployment_id, sha, committed_at, subject, reverts FROM "
                f"deployment_commits WHERE {among} ORDER BY deployment_id, sha",
                params,
            ):
                commits = found["deployment", deployment_id][2]
                assert commits is not None  # noqa: S101 - made a list just above
                commits.append(tuple(commit))
        return found

    def _unchanged(self, db: Connection, item: Stored, found: _Compared | None) -> bool:
        """Whether the event (and its commits, if given) is stored exactly so (``found``,
        from ``_stored``): a deployment's commits compared as they would be kept, without
        those an earlier deployment of its service and env was credited with."""
        given = _as_stored(item)
        if found is None or found[:2] != given[:2] or found == given:
            return found == given
        shipped = given[2] or []
        row = item.row
        env, env_params = _same_env("d.env", row["env"])
        earlier: set[str] = set()
        for start in range(0, len(shipped), CHUNK):
            among, part = self._among("c.sha", [c[0] for c in shipped[start : start + CHUNK]])
            earlier.update(
                sha
                for (sha,) in db.execute(
                    f"SELECT c.sha FROM deployment_commits c {self.ORDERED_JOIN} deployments d "
                    f"ON d.id = c.deployment_id WHERE {among} "
                    f"AND d.service = ? AND {env} AND (d.finished_at, d.id) < (?, ?)",
                    (*part, row["service"], *env_params, row["finished_at"], item.id),
                )
            )
        return found[2] == [commit for commit in shipped if commit[0] not in earlier]

    def _histories(self, db: Connection, deployments: Sequence[Stored]) -> set[History]:
        """The histories (service, env) ``deployments`` go to, and those they are stored in
        now (a deployment recorded again may move to another service or env)."""
        found = {(d.row["service"], d.row["env"]) for d in deployments}
        ids = [d.id for d in deployments]
        for start in range(0, len(ids), CHUNK):
            among, part = self._among("id", ids[start : start + CHUNK])
            found.update(
                (service, env)
                for service, env in db.execute(
                    f"SELECT service, env FROM deployments WHERE {among}", part
                )
            )
        return found

    def _queue_all(self, db: Connection, keys: Sequence[tuple[str, str]], *, insert: bool) -> None:
        """Put changed events (kind, id) (back) in the outbox as pending, keeping their
        counts of attempts, queued in the order given.

        Without ``insert`` only events already in the outbox go back: one that was sent to
        a backend once is sent again when it changes, whatever backend the change was made
        with. One statement for them all: a round trip per event is slow on PostgreSQL.
        """
        if not keys:
            return
        now = time.time_ns()
        if insert:
            # an event sent again after its deletion was queued: it is sent, not deleted
            # (a deletion being sent now goes first: the event is queued after it)
            for kind, deletion in DELETION_KINDS.items():
                for part in _parts([i for each, i in keys if each == kind]):
                    among, ids = self._among("event_id", part)
                    db.execute(
                        f"DELETE FROM outbox WHERE kind = ? AND {among} AND state != 'delivered' "
                        "AND (claimed_until IS NULL OR claimed_until < ?)",
                        (deletion, *ids, now),
                    )
            db.executemany(
                "INSERT INTO outbox (kind, event_id, state, queued_at) "
                "VALUES (?, ?, 'pending', ?) ON CONFLICT (kind, event_id) DO UPDATE SET "
                "state = 'pending', queued_at = excluded.queued_at, delivered_at = NULL",
                [(kind, event_id, now + n) for n, (kind, event_id) in enumerate(keys)],
            )
            return
        for kind in sorted({kind for kind, _ in keys}):
            among, ids = self._among("event_id", [i for each, i in keys if each == kind])
            db.execute(
                "UPDATE outbox SET state = 'pending', queued_at = ?, delivered_at = NULL "
                f"WHERE kind = ? AND {among}",
                (now, kind, *ids),
            )

    def _upsert(
        self,
        db: Connection,
        table: str,
        rows: list[dict[str, Any]],
        recorded_at: int,
        *,
        new: bool = False,
    ) -> None:
        """Insert the rows (all with the same columns), recorded at ``recorded_at``, or
        update those already stored, except for when they were first recorded. ``new``:
        none is stored (a bulk write, which keeps other writers out, looked), so they are
        inserted as they are."""
        names = list(rows[0])
        values = operator.itemgetter(*names)
        self._insert_rows(
            db,
            table,
            [*names, "recorded_at"],
            [(*values(row), recorded_at) for row in rows],
            ""
            if new
            else "ON CONFLICT (id) DO UPDATE SET "
            + ", ".join(f"{name} = excluded.{name}" for name in names),
        )


_same_env = detection.same_env


def _facts(deployment: Deployment) -> tuple[Any, ...]:
    """A deployment's ``detection.FACTS``, as stored."""
    sha = deployment.git.commit_sha if deployment.git else None
    return (
        deployment.service,
        deployment.env,
        timeparse.to_ns(deployment.finished_at),
        sha,
        deployment.version,
    )


def _chunks(items: Iterable[Stored], size: int) -> Iterator[list[Stored]]:
    """Lists of at most ``size`` items, none holding one event twice (a later copy of an
    event starts the next list, so that it is compared with the earlier one as stored)."""
    chunk: list[Stored] = []
    keys: set[tuple[str, str]] = set()
    for item in items:
        key = (item.kind, item.id)
        if len(chunk) >= size or key in keys:
            yield chunk
            chunk, keys = [], set()
        chunk.append(item)
        keys.add(key)
    if chunk:
        yield chunk


_Compared = tuple[dict[str, Any], list[str], list[tuple[Any, ...]] | None]


def _as_stored(item: Stored) -> _Compared:
    shipped = None if item.commits is None else sorted(item.commits)
    return item.row, item.services, shipped


#: The outbox kinds of deletions.
_DELETIONS = frozenset(DELETION_KINDS.values())


def _parts(values: Sequence[str]) -> Iterator[Sequence[str]]:
    return links.parts(values, CHUNK)


def _delivered(db: Connection, keys: Sequence[tuple[str, str]], now: int) -> None:
    """Record events (kind, id) as delivered: the backend has them as they are stored."""
    if keys:
        db.executemany(
            "INSERT INTO outbox (kind, event_id, state, queued_at, delivered_at) "
            "VALUES (?, ?, 'delivered', ?, ?) ON CONFLICT (kind, event_id) DO UPDATE SET "
            "state = 'delivered', last_error = NULL, delivered_at = excluded.delivered_at, "
            "claimed_until = NULL",
            [(kind, event_id, now, now) for kind, event_id in keys],
        )


def _queue_new(db: Connection, keys: Sequence[tuple[str, str]], now: int) -> None:
    """Put events (kind, id) in the outbox as pending unless there already, in any state."""
    if keys:
        db.executemany(
            "INSERT INTO outbox (kind, event_id, state, queued_at) VALUES (?, ?, 'pending', ?) "
            "ON CONFLICT (kind, event_id) DO NOTHING",
            [(kind, event_id, now) for kind, event_id in keys],
        )
