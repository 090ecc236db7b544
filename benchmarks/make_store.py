"""Generate a large, realistic dora store to benchmark ``dora metrics`` against.

The schema is dora's own (the file is created with ``dora.store.open_store``, so every
migration runs); the rows are then written straight into it with ``sqlite3``, in large
batches, one transaction per table. Everything is drawn from ``random.Random(seed)`` and the
period ends at ``--end``, so the same arguments always give the same events.

    python benchmarks/make_store.py store.db                      # 1,000,000 deployments
    python benchmarks/make_store.py small.db --deployments 20000 --incidents 2000

What the events look like:

* ``--services`` services (``svc-042``), each owned by one of about services/10 teams
  (``team-07``), deployed to ``prod`` and about half of them to ``staging`` too.
* How often a service deploys is skewed: the rates fall geometrically with a service's rank,
  a thousandfold from the busiest to the quietest, so with the defaults the busiest deploys
  about 50 times a day and the quietest about once a month. Deployments cluster in working
  hours (08:00-18:00 UTC) on weekdays, run for a few minutes, and ship about 3 commits each,
  committed minutes to days before (log-normal, median 4 hours).
* Incidents are about a tenth as many as deployments, spread over services in proportion to
  their deployments (times a per-service factor, so change failure rates differ); about 10 %
  name two services. They last minutes to days (log-normal, median an hour); about 1 % are
  still open, as is any that would end after ``--end``. Name and severity are sometimes unset.

The database is not ``ANALYZE``d: dora never does it, so neither does a real store.
"""

from __future__ import annotations

import argparse
import math
import random
import sqlite3
import sys
import time
from collections.abc import Iterator, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

NS = 1_000_000_000
DAY_NS = 86_400 * NS
BATCH = 50_000

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_PAIRS = [a + b for a in _CROCKFORD for b in _CROCKFORD]  # 10 bits -> 2 characters

INCIDENT_NAMES = (
    "elevated 5xx on checkout",
    "latency above SLO",
    "queue backlog growing",
    "database failover",
    "bad config rolled out",
    "memory leak after deploy",
    "certificate expired",
    "third-party API timeouts",
)
SEVERITIES = ("SEV-1", "SEV-2", "SEV-3", "SEV-4")


def ulid(ns: int, rng: random.Random) -> str:
    """A ULID (26 characters, sorts by time): the milliseconds of ``ns``, 80 random bits."""
    value = (ns // 1_000_000) << 80 | rng.getrandbits(80)
    return "".join(_PAIRS[(value >> shift) & 0x3FF] for shift in range(120, -1, -10))


def parse_end(text: str) -> int:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return round(moment.timestamp()) * NS


class Services:
    """The services with their teams, environments and relative deployment rates."""

    def __init__(self, count: int, rng: random.Random) -> None:
        width = max(3, len(str(count - 1)))
        teams = max(1, round(count / 10))
        self.names = [f"svc-{n:0{width}d}" for n in range(count)]
        self.teams = [f"team-{rng.randrange(teams):02d}" for _ in range(count)]
        self.staging = [rng.random() < 0.5 for _ in range(count)]
        ranks = list(range(count))
        rng.shuffle(ranks)
        spread = math.log(1000)  # busiest / quietest
        self.weights = [math.exp(-spread * rank / max(1, count - 1)) for rank in ranks]
        # Incidents follow deployments, times a factor of each service's own.
        self.incident_weights = [w * rng.lognormvariate(0, 0.5) for w in self.weights]


def working_time(start: int, span: int, rng: random.Random) -> int:
    """A moment in ``[start, start + span)``, mostly in weekday working hours (UTC)."""
    while True:
        moment = start + int(rng.random() * span)
        hour = moment // (3600 * NS) % 24
        weekday = (moment // DAY_NS + 3) % 7  # 1970-01-01 was a Thursday; Monday is 0
        keep = (0.15 if weekday >= 5 else 1.0) * (1.0 if 8 <= hour < 18 else 0.25)
        if rng.random() < keep:
            return moment // 1000 * 1000  # microseconds, as dora records them


def batches(rows: Iterator[Sequence[Any]]) -> Iterator[list[Sequence[Any]]]:
    batch: list[Sequence[Any]] = []
    for row in rows:
        batch.append(row)
        if len(batch) == BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def fill(db: sqlite3.Connection, sql: str, rows: Iterator[Sequence[Any]]) -> int:
    """Insert ``rows`` in one transaction, ``BATCH`` rows per ``executemany``."""
    count = 0
    db.execute("BEGIN")
    for batch in batches(rows):
        db.executemany(sql, batch)
        count += len(batch)
    db.execute("COMMIT")
    return count


def build(path: Path, args: argparse.Namespace) -> dict[str, int]:
    from dora.store import links, open_store

    open_store(path).close()  # dora's own schema, every migration applied

    rng = random.Random(args.seed)
    end = parse_end(args.end)
    span = args.days * DAY_NS
    start = end - span
    services = Services(args.services, rng)
    indexes = range(args.services)

    # Deployments, in time order (as they would be recorded), so ids sort like the times.
    picked = rng.choices(indexes, weights=services.weights, k=args.deployments)
    deployed = sorted((working_time(start, span, rng), s) for s in picked)
    ids: list[str] = []
    envs: list[str] = []
    newest: list[tuple[str, int]] = []  # per deployment: its newest commit's sha and count
    releases = [0] * args.services

    def deployments() -> Iterator[tuple[Any, ...]]:
        for finished, s in deployed:
            deployment_id = ulid(finished, rng)
            ids.append(deployment_id)
            commits = 1 + int(rng.expovariate(0.4))  # about 3 on average
            sha = f"{rng.getrandbits(160):040x}"
            newest.append((sha, commits))
            releases[s] += 1
            env = "staging" if services.staging[s] and rng.random() < 0.3 else "prod"
            envs.append(env)
            duration = int(rng.lognormvariate(math.log(300), 0.6) * 1e6) * 1000
            yield (
                deployment_id,
                services.names[s],
                env,
                f"1.{releases[s]}.0",
                services.teams[s],
                finished - max(duration, 10 * NS),
                finished,
                f"https://github.com/acme/{services.names[s]}",
                sha,
                "[]",
                finished,
            )

    def commits() -> Iterator[tuple[Any, ...]]:
        shipped = zip(ids, deployed, envs, newest, strict=True)
        for deployment_id, (finished, s), env, (sha, count) in shipped:
            leads = sorted(
                max(30, int(rng.lognormvariate(math.log(4 * 3600), 1.6))) for _ in range(count)
            )
            committed = finished // NS * NS  # git commit times are whole seconds
            for n, lead in enumerate(leads):
                commit_sha = sha if n == 0 else f"{rng.getrandbits(160):040x}"
                at = committed - lead * NS
                # each commit carries its deployment's fields and its lead time, as dora
                # stores them (m012)
                yield (
                    deployment_id, commit_sha, at, services.names[s], services.teams[s], env,
                    finished, max(0, finished - at),
                )  # fmt: skip

    # Incidents, in time order too.
    incidents: list[tuple[int, list[int]]] = []
    for _ in range(args.incidents):
        first, second = rng.choices(indexes, weights=services.incident_weights, k=2)
        named = [first] if rng.random() >= 0.1 or first == second else [first, second]
        incidents.append((working_time(start, span, rng), named))
    incidents.sort()
    incident_ids: list[str] = []

    def incident_rows() -> Iterator[tuple[Any, ...]]:
        for started, named in incidents:
            incident_id = ulid(started, rng)
            incident_ids.append(incident_id)
            lasted = max(60.0, rng.lognormvariate(math.log(3600), 1.5))
            ends = started + int(lasted * 1e6) * 1000
            finished = None if rng.random() < 0.01 or ends > end else ends
            first = named[0]
            yield (
                incident_id,
                rng.choice(INCIDENT_NAMES) if rng.random() < 0.8 else None,
                rng.choices(SEVERITIES, weights=(1, 3, 6, 4))[0] if rng.random() < 0.7 else None,
                "prod" if rng.random() < 0.9 else "staging",
                services.teams[first],
                started,
                finished,
                "[]",
                started,
            )

    def incident_services() -> Iterator[tuple[Any, ...]]:
        for incident_id, (_, named) in zip(incident_ids, incidents, strict=True):
            for position, s in enumerate(named):
                yield (incident_id, services.names[s], position)

    db = sqlite3.connect(path, isolation_level=None)
    try:
        # A bulk load: no journal, no syncs, a large page cache; back to WAL at the end.
        db.execute("PRAGMA journal_mode = OFF")
        db.execute("PRAGMA synchronous = OFF")
        db.execute("PRAGMA cache_size = -524288")
        counts = {
            "deployments": fill(
                db,
                "INSERT INTO deployments (id, service, env, version, team, started_at, "
                "finished_at, repository_url, commit_sha, custom_tags, recorded_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                deployments(),
            ),
            "deployment_commits": fill(
                db,
                "INSERT INTO deployment_commits (deployment_id, sha, committed_at, service, "
                "team, env, finished_at, lead_time) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                commits(),
            ),
            "incidents": fill(
                db,
                "INSERT INTO incidents (id, name, severity, env, team, started_at, "
                "finished_at, custom_tags, recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                incident_rows(),
            ),
            "incident_services": fill(
                db,
                "INSERT INTO incident_services (incident_id, service, position) VALUES (?, ?, ?)",
                incident_services(),
            ),
        }
        # what dora's writes keep beside the events: each incident's link (m014)
        db.execute("BEGIN")
        links.relink_all(db, lateral=False)
        db.execute("COMMIT")
        (counts["incident_links"],) = db.execute("SELECT COUNT(*) FROM incident_links").fetchone()
        db.execute("PRAGMA journal_mode = WAL")
    finally:
        db.close()
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", metavar="PATH", type=Path, help="the store file to create")
    parser.add_argument("--deployments", type=int, default=1_000_000, metavar="N")
    parser.add_argument("--incidents", type=int, default=100_000, metavar="N")
    parser.add_argument("--services", type=int, default=200, metavar="N")
    parser.add_argument("--days", type=int, default=730, metavar="N", help="length of the period")
    parser.add_argument("--seed", type=int, default=1, metavar="N")
    parser.add_argument(
        "--end",
        default="2026-11-01T00:00:00Z",
        metavar="ISO",
        help="end of the period (UTC unless an offset is given); default %(default)s",
    )
    parser.add_argument("--force", action="store_true", help="replace PATH if it exists")
    args = parser.parse_args()
    if args.services < 1 or args.days < 1 or args.deployments < 0 or args.incidents < 0:
        parser.error("--services and --days must be positive, the counts not negative")

    path: Path = args.path
    siblings = [path, *(path.with_name(path.name + end) for end in ("-wal", "-shm"))]
    if path.exists() or path.is_symlink():
        if not args.force:
            parser.error(f"{path} exists; pass --force to replace it")
        for file in siblings:
            file.unlink(missing_ok=True)

    began = time.perf_counter()
    try:
        counts = build(path, args)
    except BaseException:
        for file in siblings:
            file.unlink(missing_ok=True)
        raise
    took = time.perf_counter() - began
    rows = ", ".join(f"{count:,} {table}" for table, count in counts.items())
    size = path.stat().st_size
    print(f"{path}: {rows}; {size / 2**20:,.0f} MiB in {took:.1f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
