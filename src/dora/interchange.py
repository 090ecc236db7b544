"""Events in and out of files, NDJSON or CSV: backfills, backups and moves between stores.

One record per event, with the events' own field names and a ``type``::

    {"type": "deployment", "id": "...", "service": "api", "env": "prod",
     "started_at": "2026-11-02T09:00:00Z", "finished_at": "2026-11-02T09:05:00Z",
     "git": {"repository_url": "...", "commit_sha": "..."}, "custom_tags": ["a:b"],
     "commits": [{"sha": "...", "committed_at": "2026-11-01T17:12:00Z",
                  "subject": "fix: ...", "reverts": "..."}]}

A commit's ``subject`` (its message's first line) and ``reverts`` (the commit it reverts)
may be left out. CSV has one column per field (``CSV_COLUMNS``; ``git.repository_url`` and
``git.commit_sha`` for the nested ones); ``services``, ``custom_tags`` and ``commits``
(``SHA@TIME``, or ``SHA@TIME@REVERTS@SUBJECT`` with either of the last two empty) hold
their items separated by ``;``, and an item's own ``;`` or ``\\`` is escaped with ``\\``.
An empty cell is an absent field.

Reading validates each record exactly as the commands validate their flags. A record
without an ``id`` gets one derived from what identifies the event (``derived_id``), so the
same row read again is the same event. Writing orders events by start, kind and id and
leaves out empty fields, so that an export read back into an empty store exports the same
bytes.
"""

from __future__ import annotations

import csv
import hashlib
import heapq
import json
import pickle
import re
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import IO, Any

from dora import timeparse
from dora.errors import InvalidEvent
from dora.events import Deployment, Event, Incident, build
from dora.gitmeta import Commit
from dora.metrics import Filters, Source, deployments_matching, incidents_matching
from dora.store import Store
from dora.store.base import Stored, stored

KINDS: dict[str, type[Event]] = {"deployment": Deployment, "incident": Incident}
CSV_COLUMNS = (
    "type", "id", "service", "services", "name", "severity", "team", "env", "version",
    "started_at", "finished_at", "git.repository_url", "git.commit_sha", "custom_tags",
    "commits", "deployment_id",
)  # fmt: skip
_LISTS = ("services", "custom_tags", "commits")
_SUFFIXES = {".ndjson": "ndjson", ".jsonl": "ndjson", ".json": "ndjson", ".csv": "csv"}
_PLACEHOLDER = "0" * 16
#: Events are kept on disk between validation and saving, this many at a time in memory.
_BATCH = 1000


@dataclass(frozen=True)
class Problem:
    """A record that cannot be read: where it is, which field, and what is wrong."""

    source: str
    line: int
    field: str
    problem: str
    #: The file cannot be read past it, so skipping records cannot help.
    whole_file: bool = False

    def __str__(self) -> str:
        where = f"{self.source}:{self.line}"
        return (
            f"{where}: {self.field}: {self.problem}" if self.field else f"{where}: {self.problem}"
        )


def format_of(name: str, head: bytes) -> str:
    """The format of a file from its name's suffix, else from its first bytes: NDJSON starts
    with ``{``, anything else is taken for CSV."""
    for suffix, found in _SUFFIXES.items():
        if name.lower().endswith(suffix):
            return found
    return "ndjson" if head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"{") else "csv"


# Reading


def records(
    lines: Iterable[bytes], fmt: str, source: str, *, on_bytes: Callable[[int], None] | None = None
) -> Iterator[tuple[int, dict[str, Any] | Problem]]:
    """The records of a file as (line number, fields), or (line, Problem) for one that is
    not a record at all. ``lines`` are the file's raw lines; ``on_bytes`` hears each size."""
    text = _decoded(lines, source, on_bytes)
    yield from _csv(text, source) if fmt == "csv" else _ndjson(text, source)


class _NotText(Exception):
    def __init__(self, line: int) -> None:
        self.line = line


def _decoded(
    lines: Iterable[bytes], source: str, on_bytes: Callable[[int], None] | None
) -> Iterator[tuple[int, str | None]]:
    for number, raw in enumerate(lines, 1):
        if on_bytes:
            on_bytes(len(raw))
        if number == 1:
            raw = raw.removeprefix(b"\xef\xbb\xbf")  # a spreadsheet's byte-order mark
        try:
            yield number, raw.decode("utf-8")
        except UnicodeDecodeError:
            yield number, None


def _ndjson(
    lines: Iterator[tuple[int, str | None]], source: str
) -> Iterator[tuple[int, dict[str, Any] | Problem]]:
    for number, line in lines:
        if line is None:
            yield number, Problem(source, number, "", "not UTF-8 text")
            continue
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            yield number, Problem(source, number, "", f"not JSON ({exc.msg}, column {exc.colno})")
            continue
        except RecursionError:  # "[[[[..." deeper than the parser goes: no event is so deep
            yield number, Problem(source, number, "", "not an event (JSON nested too deeply)")
            continue
        if not isinstance(data, dict):
            yield number, Problem(source, number, "", "not a JSON object")
            continue
        yield number, data


def _csv(
    lines: Iterator[tuple[int, str | None]], source: str
) -> Iterator[tuple[int, dict[str, Any] | Problem]]:
    numbers: list[int] = []  # the line each physical line the reader takes came from
    bad: list[int] = []

    def feed() -> Iterator[str]:
        for number, line in lines:
            numbers.append(number)
            if line is None:
                bad.append(number)
                line = "\n"
            yield line

    reader = csv.reader(feed(), strict=True)
    header: list[str] | None = None
    while True:
        first = len(numbers) + 1
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            reason = f"not CSV ({exc}); the rest of the file cannot be read"
            yield first, Problem(source, first, "", reason, whole_file=True)
            return
        if bad and bad[-1] >= first:
            yield first, Problem(source, first, "", "not UTF-8 text")
            continue
        if header is None:
            if not any(cell.strip() for cell in cells):
                continue  # blank lines before the header; an empty input has no records
            header = [cell.strip() for cell in cells]
            if wrong := _check_header(header):
                yield first, Problem(source, first, "", wrong, whole_file=True)
                return
            continue
        if not any(cell.strip() for cell in cells):
            continue
        if len(cells) != len(header):
            yield (
                first,
                Problem(source, first, "", f"{len(cells)} cells, but the header has {len(header)}"),
            )
            continue
        yield first, _from_cells(header, cells)


def _check_header(header: list[str]) -> str | None:
    unknown = [name for name in header if name not in CSV_COLUMNS]
    if unknown:
        return f"unknown column '{unknown[0]}'; the columns are {', '.join(CSV_COLUMNS)}"
    repeated = [name for name in header if header.count(name) > 1]
    if repeated:
        return f"the column '{repeated[0]}' appears twice"
    if "type" not in header:
        return "no 'type' column: each row says whether it is a deployment or an incident"
    return None


def _from_cells(header: list[str], cells: list[str]) -> dict[str, Any]:
    """A record from a row's cells, named by the header (as many as there are cells)."""
    data: dict[str, Any] = {}
    git: dict[str, str] = {}
    for name, cell in zip(header, cells, strict=True):
        if not cell:
            continue
        if name in _LISTS:
            items = split_list(cell)
            if name == "commits":
                data[name] = [_commit_cell(item) for item in items]
            else:
                data[name] = items
        elif name.startswith("git."):
            git[name.removeprefix("git.")] = cell
        else:
            data[name] = cell
    if git:
        data["git"] = git
    return data


def _commit_cell(item: str) -> dict[str, str]:
    """``SHA@TIME``, or ``SHA@TIME@REVERTS@SUBJECT`` (a subject may hold ``@``)."""
    sha, at, rest = item.partition("@")
    if not at:
        return {"sha": sha}
    when, more, rest = rest.partition("@")
    commit = {"sha": sha, "committed_at": when}
    if more:
        reverts, _, subject = rest.partition("@")
        commit.update({k: v for k, v in (("reverts", reverts), ("subject", subject)) if v})
    return commit


def _commit_text(commit: dict[str, str]) -> str:
    """A commit as a CSV list item: what ``_commit_cell`` reads."""
    text = f"{commit['sha']}@{commit['committed_at']}"
    if "reverts" in commit or "subject" in commit:
        text += f"@{commit.get('reverts', '')}@{commit.get('subject', '')}"
    return text


def split_list(cell: str) -> list[str]:
    """``a;b\\;c`` → ``["a", "b;c"]``: items separated by ``;``; ``\\;`` and ``\\\\`` are a
    literal ``;`` and ``\\``, and any other backslash is itself."""
    if "\\" not in cell:  # the common cell, with nothing escaped: split at C speed
        return [item.strip() for item in cell.split(";") if item.strip()]
    items, item, chars = [], [], iter(cell)
    for char in chars:
        if char == "\\":
            following = next(chars, "")
            if following not in (";", "\\"):
                item.append(char)
            item.append(following)
        elif char == ";":
            items.append("".join(item))
            item = []
        else:
            item.append(char)
    items.append("".join(item))
    return [item.strip() for item in items if item.strip()]


def join_list(items: Iterable[str]) -> str:
    return ";".join(item.replace("\\", "\\\\").replace(";", "\\;") for item in items)


def event_of(data: dict[str, Any]) -> tuple[Event, list[Commit] | None]:
    """Validate one record into its event and the commits it ships (None: not given).

    Raises ``InvalidEvent`` naming the field, in the record's own terms.
    """
    data = dict(data)
    kind = data.pop("type", None)
    if kind is None:
        raise InvalidEvent("type", "required: deployment or incident")
    model = KINDS.get(kind.strip()) if isinstance(kind, str) else None
    if model is None:
        shown = f"'{kind}'" if isinstance(kind, str) else json.dumps(kind)
        raise InvalidEvent("type", f"{shown} is not deployment or incident")
    for name in ("started_at", "finished_at"):
        _fixed_time(name, data.get(name))
    listed = data.pop("commits", None)
    commits = None if listed is None else _commits(listed)
    if commits is not None and model is not Deployment:
        raise InvalidEvent("commits", "only deployments ship commits")
    given_id = data.get("id") not in (None, "")
    if not given_id:
        data["id"] = _PLACEHOLDER  # replaced below; cheaper than making a ULID to drop
    event = build(model, data)
    if not given_id:
        event.id = derived_id(event)
    return event, commits


def _fixed_time(field: str, value: Any) -> None:
    """A file states when things happened: a time relative to now would be another time
    (and another derived id) each time the file is read."""
    if isinstance(value, str) and timeparse.is_relative(value):
        raise InvalidEvent(
            field, f"'{value.strip()}' is relative to now; a file needs the time itself"
        )


def _commits(value: Any) -> list[Commit]:
    if not isinstance(value, list):
        raise InvalidEvent("commits", "must be a list of {sha, committed_at}")
    from dora.gitmeta import SHA_PATTERN

    found = []
    for item in value:
        if not isinstance(item, dict) or not {"sha", "committed_at"} <= set(item) <= _COMMIT:
            raise InvalidEvent(
                "commits",
                "each commit has a sha and a committed_at, and may have a "
                "subject and the sha it reverts, only",
            )
        sha, when = item["sha"], item["committed_at"]
        _fixed_time("commits", when)
        if not isinstance(sha, str) or not SHA_PATTERN.fullmatch(sha):
            raise InvalidEvent("commits", f"'{sha}' is not a full commit SHA")
        try:
            if isinstance(when, str):
                moment = timeparse.parse_timestamp(when)
            elif isinstance(when, int | float) and not isinstance(when, bool):
                moment = timeparse.from_unix(when)
            else:
                raise ValueError(f"{json.dumps(when)} is not a time")
        except ValueError as exc:
            raise InvalidEvent("commits", f"commit {sha[:12]}: {exc}") from None
        found.append(Commit(sha.lower(), moment, *_message(sha, item)))
    return found


_COMMIT = {"sha", "committed_at", "subject", "reverts"}
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_ABBREVIATED_SHA = re.compile(r"[0-9a-fA-F]{7,64}")


def _message(sha: str, item: dict[str, Any]) -> tuple[str | None, str | None]:
    """A commit's subject (one line, at most ``gitmeta.SUBJECT`` characters) and the commit
    it reverts (7 to 64 hex digits), as a record gives them."""
    from dora.gitmeta import SUBJECT

    subject, reverts = item.get("subject"), item.get("reverts")
    if subject is not None:
        if not isinstance(subject, str) or _CONTROL.search(subject) or len(subject) > SUBJECT:
            raise InvalidEvent(
                "commits", f"commit {sha[:12]}: the subject is one line of at most {SUBJECT:,}"
            )
        subject = subject.strip() or None
    if reverts is not None:
        if not isinstance(reverts, str) or not _ABBREVIATED_SHA.fullmatch(reverts):
            raise InvalidEvent(
                "commits", f"commit {sha[:12]}: reverts is the SHA of a commit (7 to 64 hex)"
            )
        reverts = reverts.lower()
    return subject, reverts


def derived_id(event: Event) -> str:
    """An id from what identifies the event, for a record that has none: a deployment by its
    service, env, version, times and commit; an incident by its services, team, env, name
    and start, so that resolving it (or changing its severity or tags) in the file and
    reading it again updates the incident instead of adding another."""
    # whole microseconds, as dora kept times before it kept nanoseconds: the same file read
    # again derives the ids it derived then
    start = timeparse.to_ns(event.started_at) // 1000 * 1000
    identity: list[Any] = [event.kind, event.env]
    if isinstance(event, Deployment):
        sha = event.git.commit_sha if event.git else None
        end = timeparse.to_ns(event.finished_at) // 1000 * 1000
        identity += [event.service, event.version, start, end, sha]
    elif isinstance(event, Incident):
        identity += [event.services, event.team, event.name, start]
    # repr tells None from "None" and a list's items apart; times as integer nanoseconds
    text = "\x1f".join(map(repr, identity))
    return "import-" + hashlib.sha256(text.encode()).hexdigest()[:32]


@dataclass
class Loaded:
    """Valid events of one or more files, kept in a temporary file until they are saved."""

    count: int = 0
    problems: list[Problem] = field(default_factory=list)
    invalid: int = 0
    #: A file could not be read to its end (not CSV, a bad header).
    unreadable: bool = False
    _spool: IO[bytes] = field(default_factory=lambda: tempfile.TemporaryFile())  # noqa: SIM115

    def items(self) -> Iterator[Stored]:
        """The valid events, as the store keeps them, in the order they were read."""
        self._spool.seek(0)
        while True:
            try:
                batch = pickle.load(self._spool)  # noqa: S301 - our own temporary file
            except EOFError:
                return
            yield from batch

    def _keep(self, batch: list[Stored]) -> None:
        """Write a batch of valid events to the spool, in their stored form (a few tuples
        and a dict each, quick to pickle and to read back)."""
        pickle.dump(batch, self._spool)

    def close(self) -> None:
        self._spool.close()

    def __enter__(self) -> Loaded:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _digest(item: Stored) -> int:
    """A hash of everything an event stores, to tell a record given twice from another
    record with the same id."""
    commits = None if item.commits is None else tuple(item.commits)
    return hash((item.kind, tuple(item.row.items()), tuple(item.services), commits))


def load(
    sources: Iterable[tuple[str, Iterable[tuple[int, dict[str, Any] | Problem]]]],
    *,
    keep_problems: int = 20,
    progress: Callable[[int], None] | None = None,
) -> Loaded:
    """Validate every record of every source (name, records); keep the valid events aside
    and the first ``keep_problems`` problems. Nothing is written to a store here.
    ``progress(n)`` hears how many records are read and checked so far, every
    ``_BATCH`` records and at the end."""
    loaded = Loaded()
    checked = 0
    batch: list[Stored] = []
    # each event's first place and a digest of its content: an id given twice with other
    # content is a mistake (which record is right?), and the same record twice is harmless
    seen: dict[tuple[str, str], tuple[str, int, int]] = {}
    try:
        for source, found in sources:
            for line, data in found:
                checked += 1
                if progress is not None and not checked % _BATCH:
                    progress(checked)
                problem = data if isinstance(data, Problem) else None
                if isinstance(data, dict):
                    try:
                        event, commits = event_of(data)
                    except InvalidEvent as exc:
                        problem = Problem(source, line, exc.field, exc.problem)
                    else:
                        kept = stored(event, commits)
                        key, digest = (event.kind, event.id), _digest(kept)
                        where, first, known = seen.setdefault(key, (source, line, digest))
                        if known != digest:
                            problem = Problem(
                                source,
                                line,
                                "id",
                                f"'{event.id}' is also on {where}:{first}, with other content",
                            )
                        elif (where, first) == (source, line):
                            batch.append(kept)
                        else:
                            continue  # the same record again: already kept
                if problem is not None:
                    loaded.invalid += 1
                    loaded.unreadable |= problem.whole_file
                    if len(loaded.problems) < keep_problems or problem.whole_file:
                        loaded.problems.append(problem)
                    continue
                loaded.count += 1
                if len(batch) >= _BATCH:
                    loaded._keep(batch)
                    batch = []
        if batch:
            loaded._keep(batch)
        if progress is not None:
            progress(checked)
    except BaseException:
        loaded.close()
        raise
    return loaded


# Writing


def export(
    store: Store,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    filters: Filters | None = None,
) -> Iterator[dict[str, Any]]:
    """Every event of the store as a record, ordered by start, kind and id; with a window,
    the deployments that finished in it and the incidents open at some time in it."""
    low = timeparse.to_ns(since) if since else None
    high = timeparse.to_ns(until) if until else None
    filters = filters or Filters()
    deployments = _deployment_records(store, low, high, filters)
    incidents = _incident_records(store, low, high, filters)
    yield from heapq.merge(
        deployments, incidents, key=lambda r: (r["started_at_ns"], r["type"], r["id"])
    )


def _between(
    start: str, end: str, low: int | None, high: int | None
) -> tuple[list[str], list[int]]:
    """Conditions for a row whose span ``[start, end]`` (``end`` NULL: still going) meets
    the window ``[low, high)``, and their parameters."""
    where, params = [], []
    if low is not None:
        where.append(f"({end} IS NULL OR {end} >= ?)")
        params.append(low)
    if high is not None:
        where.append(f"{start} < ?")
        params.append(high)
    return where, params


def _deployment_records(
    store: Store, low: int | None, high: int | None, filters: Filters
) -> Iterator[dict[str, Any]]:
    found = _with_details(
        store,
        "SELECT d.id, d.service, d.env, d.version, d.team, d.started_at, d.finished_at, "
        "d.repository_url, d.commit_sha, d.custom_tags FROM deployments d",
        "SELECT c.deployment_id, c.sha, c.committed_at, c.subject, c.reverts "
        "FROM deployment_commits c "
        "JOIN deployments d ON d.id = c.deployment_id",
        "c.committed_at, c.sha",
        deployments_matching((), filters),
        _between("d.finished_at", "d.finished_at", low, high),
        alias="d",
    )
    for row, commits in found:
        shipped = [
            {
                "sha": sha,
                "committed_at": _iso(at),
                **({"subject": subject} if subject is not None else {}),
                **({"reverts": reverts} if reverts is not None else {}),
            }
            for sha, at, subject, reverts in commits
        ]
        yield _record("deployment", row, service=row[1], commits=shipped)


def _incident_records(
    store: Store, low: int | None, high: int | None, filters: Filters
) -> Iterator[dict[str, Any]]:
    found = _with_details(
        store,
        "SELECT i.id, i.name, i.severity, i.env, i.version, i.team, i.started_at, "
        "i.finished_at, i.repository_url, i.commit_sha, i.custom_tags, i.deployment_id "
        "FROM incidents i",
        "SELECT s.incident_id, s.service FROM incident_services s "
        "JOIN incidents i ON i.id = s.incident_id",
        "s.position",
        incidents_matching((), filters),
        _between("i.started_at", "i.finished_at", low, high),
        alias="i",
    )
    for row, services in found:
        yield _record(
            "incident",
            (row[0], None, row[3], row[4], row[5], *row[6:11]),
            services=[service for (service,) in services],
            name=row[1],
            severity=row[2],
            deployment_id=row[11],
        )


def _with_details(
    store: Store,
    events: str,
    details: str,
    detail_order: str,
    source: Source,
    window: tuple[list[str], list[int]],
    *,
    alias: str,
) -> Iterator[tuple[Sequence[Any], list[tuple[Any, ...]]]]:
    """Each event the ``events`` query selects, in order of start and id, with its rows of
    the ``details`` query (commits, services), both streamed side by side."""
    where, bounds = window
    condition = " AND ".join([source.condition(), *where])
    params = (*source.params, *bounds)
    order = f"ORDER BY {alias}.started_at, {alias}.id"
    rows = store.rows(f"{events} WHERE {condition} {order}", params)
    of = _grouped(store.rows(f"{details} WHERE {condition} {order}, {detail_order}", params))
    for row in rows:
        yield row, of(str(row[0]))


def _grouped(rows: Iterator[Sequence[Any]]) -> Callable[[str], list[tuple[Any, ...]]]:
    """For rows ordered like the events they belong to (the first column): a function that
    takes the next event's id and returns its rows, reading one stream alongside another."""
    pending: list[Any] = [next(rows, None)]

    def of(event_id: str) -> list[tuple[Any, ...]]:
        found = []
        while pending[0] is not None and pending[0][0] == event_id:
            found.append(tuple(pending[0][1:]))
            pending[0] = next(rows, None)
        return found

    return of


def record_of(event: Event) -> dict[str, Any]:
    """The record of an event, as ``dora export`` writes it (without commits)."""
    git = event.git
    row = (
        event.id,
        None,
        event.env,
        event.version,
        event.team,
        timeparse.to_ns(event.started_at),
        timeparse.to_ns(event.finished_at) if event.finished_at is not None else None,
        git.repository_url if git else None,
        git.commit_sha if git else None,
        json.dumps(event.custom_tags),
    )
    fields = {
        name: getattr(event, name)
        for name in ("service", "services", "name", "severity", "deployment_id")
        if getattr(event, name, None) is not None
    }
    record = _record(event.kind, row, **fields)
    del record["started_at_ns"]
    return record


def _record(kind: str, row: Sequence[Any], **fields: Any) -> dict[str, Any]:
    """A record from ``row`` (id, -, env, version, team, started_at, finished_at,
    repository_url, commit_sha, custom_tags) and the kind's own ``fields``, empty ones
    left out. ``started_at_ns`` orders records; writers drop it."""
    event_id, _, env, version, team, started, finished, url, sha, tags = row
    git = {k: v for k, v in (("repository_url", url), ("commit_sha", sha)) if v is not None}
    values: dict[str, Any] = {
        "type": kind,
        "id": event_id,
        **{k: fields[k] for k in ("service", "services", "name", "severity") if k in fields},
        "team": team,
        "env": env,
        "version": version,
        "started_at": _iso(started),
        "finished_at": _iso(finished) if finished is not None else None,
        "git": git,
        "custom_tags": json.loads(tags),
        "commits": fields.get("commits"),
        "deployment_id": fields.get("deployment_id"),
    }
    record = {k: v for k, v in values.items() if v not in (None, [], {})}
    record["started_at_ns"] = started
    return record


def _iso(ns: int) -> str:
    return timeparse.format_iso(timeparse.from_ns(ns))


def write_ndjson(records: Iterable[dict[str, Any]], out: IO[str]) -> int:
    """One compact JSON object per line; return how many."""
    count = 0
    for record in records:
        record.pop("started_at_ns", None)
        out.write(json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n")
        count += 1
    return count


def write_csv(records: Iterable[dict[str, Any]], out: IO[str]) -> int:
    """A header row, then one row per record; return how many."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    count = 0
    for record in records:
        git = record.get("git", {})
        cells = {
            **record,
            "git.repository_url": git.get("repository_url"),
            "git.commit_sha": git.get("commit_sha"),
            "services": join_list(record.get("services", [])),
            "custom_tags": join_list(record.get("custom_tags", [])),
            "commits": join_list(_commit_text(c) for c in record.get("commits", [])),
        }
        writer.writerow(["" if cells.get(name) is None else cells[name] for name in CSV_COLUMNS])
        count += 1
    return count
