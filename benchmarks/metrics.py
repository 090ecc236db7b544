"""Time ``dora metrics`` on a large store against hand-written SQL, and measure its memory.

Three questions, answered in one run so that the ratios are measured side by side:

* the full-range report (every event, grouped by service): how much slower is dora than a
  bare hand-written SQL aggregate of the same per-service figures over the same file?
* the last 30 days of the same store: does it cost in proportion to the window, not to
  the store?
* peak memory of ``dora metrics`` over stores of growing size: does it stay flat?

    python benchmarks/metrics.py                    # builds a 1,000,000-deployment store
    python benchmarks/metrics.py --store store.db   # one made by benchmarks/make_store.py
    python benchmarks/metrics.py --quick            # small sizes, a few seconds (CI smoke)
    python benchmarks/metrics.py --postgres postgresql://postgres@127.0.0.1:5432/postgres

With ``--postgres URL`` the same questions are asked of dora's PostgreSQL store too, in the
same run: each store is copied into a database made for the run on that server (by
``benchmarks/to_postgres.py``: dora's migrations, then ``COPY``, then ``VACUUM ANALYZE``),
dropped again at the end, and each round times every measurement on both engines. The
warm-up round also checks that dora's reports on the two engines agree on every figure.

The store is made by ``benchmarks/make_store.py`` (in a temporary directory, or at
``--cache`` to be reused by the next run; ``--cache`` does not change the figures). Each
round runs every measurement in turn, after one warm-up round that also checks that dora
and the hand-written SQL agree on every figure they share (on each engine); the median of
``--repeat`` rounds is reported. The output is a Markdown section for ``BENCHMARKS.md``.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import os
import platform
import shlex
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, closing, nullcontext
from dataclasses import dataclass
from datetime import date, datetime, timezone
from functools import partial
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from to_postgres import Scratch

NS = 1_000_000_000
DAY_NS = 86_400 * NS
MAKE_STORE = Path(__file__).with_name("make_store.py")

# The hand-written SQL: what someone would write against dora's schema by hand, one query per
# figure, for the figures the report computes. :lo and :hi bound the half-open window. Each
# join starts from the table whose time index bounds the window (CROSS JOIN pins the order in
# SQLite), and open incidents are found from the finish side (the unary + keeps the planner
# off the start index), so that a recent window reads only recent rows.
_LEAD = """
SELECT {key} AVG(lead) FROM (
    SELECT {key} lead,
        ROW_NUMBER() OVER w - 1 AS rn,
        COUNT(*) OVER (w ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING) AS n
    FROM (
        SELECT {dkey} MAX(d.finished_at - c.committed_at, 0) AS lead
        FROM deployments d CROSS JOIN deployment_commits c ON c.deployment_id = d.id
        WHERE d.finished_at >= :lo AND d.finished_at < :hi
    )
    WINDOW w AS ({partition} ORDER BY lead)
)
WHERE rn IN ((n - 1) / 2, n / 2) {group}
"""

PER_SERVICE = {
    "deployments": "SELECT service, COUNT(*) FROM deployments "
    "WHERE finished_at >= :lo AND finished_at < :hi GROUP BY service",
    "failures": "SELECT s.service, COUNT(*) FROM incidents i "
    "CROSS JOIN incident_services s ON s.incident_id = i.id "
    "WHERE i.started_at >= :lo AND i.started_at < :hi GROUP BY s.service",
    "resolved": "SELECT s.service, COUNT(*), AVG(i.finished_at - i.started_at) FROM incidents i "
    "CROSS JOIN incident_services s ON s.incident_id = i.id "
    "WHERE i.finished_at >= :lo AND i.finished_at < :hi GROUP BY s.service",
    "open": "SELECT s.service, COUNT(*) FROM incidents i "
    "CROSS JOIN incident_services s ON s.incident_id = i.id "
    "WHERE +i.started_at < :hi AND (i.finished_at IS NULL OR i.finished_at >= :hi) "
    "GROUP BY s.service",
    "lead": _LEAD.format(
        key="service,",
        dkey="d.service,",
        partition="PARTITION BY service",
        group="GROUP BY service",
    ),
}

TOTAL = {
    "deployments": "SELECT COUNT(*) FROM deployments "
    "WHERE finished_at >= :lo AND finished_at < :hi",
    "failures": "SELECT COUNT(*) FROM incidents WHERE started_at >= :lo AND started_at < :hi",
    "resolved": "SELECT COUNT(*), AVG(finished_at - started_at) FROM incidents "
    "WHERE finished_at >= :lo AND finished_at < :hi",
    "open": "SELECT COUNT(*) FROM incidents "
    "WHERE +started_at < :hi AND (finished_at IS NULL OR finished_at >= :hi)",
    "lead": _LEAD.format(key="", dkey="", partition="", group=""),
}

FLOOR = PER_SERVICE["deployments"]

# The same figures by hand in PostgreSQL's own SQL: plain joins (its planner picks the order
# from the statistics), GREATEST, and the median as ``percentile_cont``, which interpolates
# as dora's does. The mean is cast to a float as SQLite's AVG gives it (PostgreSQL's is exact).
_PG_LEAD = (
    "SELECT {key} percentile_cont(0.5) WITHIN GROUP "
    "(ORDER BY GREATEST(d.finished_at - c.committed_at, 0)) "
    "FROM deployments d JOIN deployment_commits c ON c.deployment_id = d.id "
    "WHERE d.finished_at >= %(lo)s AND d.finished_at < %(hi)s {group}"
)

PG_PER_SERVICE = {
    "deployments": "SELECT service, COUNT(*) FROM deployments "
    "WHERE finished_at >= %(lo)s AND finished_at < %(hi)s GROUP BY service",
    "failures": "SELECT s.service, COUNT(*) FROM incidents i "
    "JOIN incident_services s ON s.incident_id = i.id "
    "WHERE i.started_at >= %(lo)s AND i.started_at < %(hi)s GROUP BY s.service",
    "resolved": "SELECT s.service, COUNT(*), AVG(i.finished_at - i.started_at)::float8 "
    "FROM incidents i JOIN incident_services s ON s.incident_id = i.id "
    "WHERE i.finished_at >= %(lo)s AND i.finished_at < %(hi)s GROUP BY s.service",
    "open": "SELECT s.service, COUNT(*) FROM incidents i "
    "JOIN incident_services s ON s.incident_id = i.id "
    "WHERE i.started_at < %(hi)s AND (i.finished_at IS NULL OR i.finished_at >= %(hi)s) "
    "GROUP BY s.service",
    "lead": _PG_LEAD.format(key="d.service,", group="GROUP BY d.service"),
}

PG_TOTAL = {
    "deployments": "SELECT COUNT(*) FROM deployments "
    "WHERE finished_at >= %(lo)s AND finished_at < %(hi)s",
    "failures": "SELECT COUNT(*) FROM incidents WHERE started_at >= %(lo)s AND started_at < %(hi)s",
    "resolved": "SELECT COUNT(*), AVG(finished_at - started_at)::float8 FROM incidents "
    "WHERE finished_at >= %(lo)s AND finished_at < %(hi)s",
    "open": "SELECT COUNT(*) FROM incidents "
    "WHERE started_at < %(hi)s AND (finished_at IS NULL OR finished_at >= %(hi)s)",
    "lead": _PG_LEAD.format(key="", group=""),
}

PG_FLOOR = PG_PER_SERVICE["deployments"]

# Run a command as this wrapper's only child and print the child's peak RSS: a fresh
# process, so RUSAGE_CHILDREN holds that one command and nothing measured before it.
PEAK_RSS = (
    "import resource, subprocess, sys\n"
    "subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL)\n"
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
)

# The library path alone, in its own process (for its peak RSS).
LIBRARY = (
    "import sys\n"
    "from dora import metrics, timeparse\n"
    "from dora.store import open_store\n"
    "store = open_store(sys.argv[1], create=False)\n"
    "metrics.report(store, timeparse.from_ns(int(sys.argv[2])), "
    "timeparse.from_ns(int(sys.argv[3])), group_by=('service',))\n"
    "store.close()\n"
)


@dataclass(frozen=True)
class Store:
    path: Path
    deployments: int
    incidents: int
    commits: int
    since: int  # ns, the UTC midnight at or before the first event
    until: int  # ns, the UTC midnight after the last

    @property
    def mib(self) -> float:
        return self.path.stat().st_size / 2**20


def inspect(path: Path) -> Store:
    with closing(sqlite3.connect(path)) as db:
        deployments, first, last = db.execute(
            "SELECT COUNT(*), MIN(finished_at), MAX(finished_at) FROM deployments"
        ).fetchone()
        incidents, started, ended = db.execute(
            "SELECT COUNT(*), MIN(started_at), MAX(MAX(started_at), "
            "COALESCE(MAX(finished_at), 0)) FROM incidents"
        ).fetchone()
        (commits,) = db.execute("SELECT COUNT(*) FROM deployment_commits").fetchone()
    if not deployments:
        sys.exit(f"{path} holds no deployments")
    first = min(first, started if incidents else first)
    last = max(last, ended if incidents else last)
    since, until = first // DAY_NS * DAY_NS, (last // DAY_NS + 1) * DAY_NS
    return Store(path, deployments, incidents, commits, since, until)


def make_store(path: Path, deployments: int) -> Store:
    """The store of ``make_store.py`` with ``deployments`` (incidents a tenth of them) at
    ``path``, reused if one of that size is there already."""
    if path.exists():
        found = inspect(path)
        if found.deployments == deployments and found.incidents == deployments // 10:
            return found
    argv = [sys.executable, str(MAKE_STORE), str(path), "--force"]
    argv += ["--deployments", str(deployments), "--incidents", str(deployments // 10)]
    subprocess.run(argv, check=True)
    return inspect(path)


def iso(ns: int) -> str:
    return datetime.fromtimestamp(ns // NS, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("DD_", "DORA_"))}


# Where a store is: an SQLite file, or a PostgreSQL URL.
Target = Path | str


def cli(target: Target, lo: int, hi: int) -> list[str]:
    window = ["--since", iso(lo), "--until", iso(hi)]
    db = ["--db", str(target)]
    return [sys.executable, "-m", "dora", "metrics", *db, *window, "--format", "json"]


# What is timed. Each returns what it computed, for the warm-up round's cross-check.


def run_library(target: Target, lo: int, hi: int) -> Any:
    from dora import metrics, timeparse
    from dora.store import open_store

    store = open_store(target, create=False)
    try:
        since, until = timeparse.from_ns(lo), timeparse.from_ns(hi)
        return metrics.report(store, since, until, group_by=("service",))
    finally:
        store.close()


def run_cli(target: Target, lo: int, hi: int) -> None:
    done = subprocess.run(
        cli(target, lo, hi), env=clean_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    if done.returncode:
        raise RuntimeError(done.stderr.decode(errors="replace").strip())


def run_sql(queries: dict[str, str]) -> Callable[[Path, int, int], dict[str, list[Any]]]:
    def run(path: Path, lo: int, hi: int) -> dict[str, list[Any]]:
        with closing(sqlite3.connect(path)) as db:
            return {
                name: db.execute(sql, {"lo": lo, "hi": hi}).fetchall()
                for name, sql in queries.items()
            }

    return run


def run_both(path: Path, lo: int, hi: int) -> None:
    run_sql({**PER_SERVICE, **{f"total {k}": v for k, v in TOTAL.items()}})(path, lo, hi)


def run_floor(path: Path, lo: int, hi: int) -> None:
    with closing(sqlite3.connect(path)) as db:
        db.execute(FLOOR, {"lo": lo, "hi": hi}).fetchall()


def run_pg_sql(queries: dict[str, str]) -> Callable[[str, int, int], dict[str, list[Any]]]:
    def run(url: str, lo: int, hi: int) -> dict[str, list[Any]]:
        import psycopg

        with psycopg.connect(url) as db:
            return {
                name: db.execute(sql, {"lo": lo, "hi": hi}).fetchall()
                for name, sql in queries.items()
            }

    return run


LIBRARY_LABEL = "`dora.metrics.report(..., group_by=('service',))`"
CLI_LABEL = "`dora metrics --format json` (whole CLI process)"
HAND = "hand-written SQL, per service"
BOTH = "hand-written SQL, per service and in total"
FLOOR_LABEL = "floor: `SELECT service, COUNT(*) ... GROUP BY service`"
MEASURES: dict[str, Callable[[Path, int, int], Any]] = {
    LIBRARY_LABEL: run_library,
    CLI_LABEL: run_cli,
    HAND: run_sql(PER_SERVICE),
    BOTH: run_both,
    FLOOR_LABEL: run_floor,
}
# The same measurements of the same store on PostgreSQL, under the same labels.
PG_MEASURES: dict[str, Callable[[str, int, int], Any]] = {
    LIBRARY_LABEL: run_library,
    CLI_LABEL: run_cli,
    HAND: run_pg_sql(PG_PER_SERVICE),
    BOTH: run_pg_sql({**PG_PER_SERVICE, **{f"total {k}": v for k, v in PG_TOTAL.items()}}),
    FLOOR_LABEL: run_pg_sql({"floor": PG_FLOOR}),
}
SQLITE, POSTGRES = "SQLite", "PostgreSQL"
# What is timed, by engine and label: each takes the window, [lo, hi) in ns.
Measures = dict[tuple[str, str], Callable[[int, int], Any]]


def measures(store: Path, postgres: str | None) -> Measures:
    found: Measures = {(SQLITE, name): partial(run, store) for name, run in MEASURES.items()}
    if postgres is not None:
        found.update(
            {(POSTGRES, name): partial(run, postgres) for name, run in PG_MEASURES.items()}
        )
    return found


def check(report: Any, hand: dict[str, list[Any]], engine: str = SQLITE) -> None:
    """Stop if dora and the hand-written SQL disagree: the comparison would mean nothing."""
    mine: dict[str, dict[str, Any]] = {}
    for row in report.groups:
        f = row.figures
        mine[row.key[0]] = {
            "deployments": f.deployments,
            "failures": f.failures,
            "resolved": (f.resolved_failures, f.mttr_seconds),
            "open": f.open_failures,
            "lead": f.median_lead_time_seconds,
        }
    theirs: dict[str, dict[str, Any]] = {}
    for name, rows in hand.items():
        for service, *values in rows:
            value: Any = tuple(values) if len(values) > 1 else values[0]
            if name == "resolved":
                value = (value[0], value[1] / 1e9)
            elif name == "lead":
                value = value / 1e9
            theirs.setdefault(service, {})[name] = value
    defaults = {"deployments": 0, "failures": 0, "resolved": (0, None), "open": 0, "lead": None}
    for service in sorted(mine.keys() | theirs.keys()):
        ours = {**defaults, **mine.get(service, {})}
        hands = {**defaults, **theirs.get(service, {})}
        for name in defaults:
            if not same(ours[name], hands[name]):
                sys.exit(
                    f"dora and the hand-written SQL disagree on {engine}, on {name} of "
                    f"{service}: {ours[name]!r} against {hands[name]!r}"
                )


#: How far apart the two engines' floats may be, relatively. Only the mean time to restore
#: may differ at all: it divides a sum of floats, which an engine may add up in another order
#: or more carefully (SQLite from 3.43 on), changing its last digits; every other figure is
#: computed in Python from the same integers, and must be equal.
ENGINES_TOLERANCE = 1e-11
#: The figure that depends on the clock: an open incident's age is counted up to the
#: window's end, or up to now when the window ends later.
AGE = "oldest_open_failure_age_seconds"


@dataclass
class Agreement:
    """What ``check_engines`` found: of the figures compared, how many were equal exactly,
    how many were means within ``ENGINES_TOLERANCE`` (and the largest relative difference),
    and how many were ages apart by less than the time between the reports."""

    compared: int = 0
    exact: int = 0
    means: int = 0
    largest: float = 0.0
    ages: int = 0

    def __str__(self) -> str:
        text = f"{self.compared:,} figures, {self.exact:,} of them exactly"
        if self.means:
            text += (
                f"; {self.means:,} means of the time to restore within {self.largest:.0e} "
                "of each other (relatively)"
            )
        if self.ages:
            text += f"; {self.ages:,} ages counted up to now, apart by less than the run took"
        return text


def check_engines(window: str, sqlite_report: Any, pg_report: Any, clock: float = 0.0) -> Agreement:
    """Stop if dora's reports of one window on SQLite and on PostgreSQL differ in any figure
    of any group or the total: equal, but for the mean time to restore within
    ``ENGINES_TOLERANCE``, and ages within ``clock`` seconds (the time between the two
    reports, when the window ends after they ran)."""

    def rows(report: Any) -> list[tuple[Any, dict[str, Any]]]:
        found = [(row.key, row.figures) for row in report.groups] + [("total", report.total)]
        return [(key, {**dataclasses.asdict(f), **f.as_dict()}) for key, f in found]

    ours, theirs = rows(sqlite_report), rows(pg_report)
    keys, other_keys = [key for key, _ in ours], [key for key, _ in theirs]
    if keys != other_keys:
        only = sorted(map(str, set(keys) ^ set(other_keys))) or "the same, in another order"
        sys.exit(f"dora on SQLite and on PostgreSQL report other groups, {window}: {only}")
    found = Agreement()
    for (key, mine), (_, other) in zip(ours, theirs, strict=True):
        for name, a in mine.items():
            b = other[name]
            found.compared += 1
            if a == b and type(a) is type(b):
                found.exact += 1
                continue
            if isinstance(a, float) and isinstance(b, float):
                if name == "mttr_seconds":
                    apart = abs(a - b) / max(abs(a), abs(b))
                    found.largest = max(found.largest, apart)
                    if apart <= ENGINES_TOLERANCE:
                        found.means += 1
                        continue
                elif name == AGE and abs(a - b) <= clock:
                    found.ages += 1
                    continue
            sys.exit(
                f"dora on SQLite and on PostgreSQL disagree, {window}, on {name} of {key}: "
                f"{a!r} on SQLite against {b!r} on PostgreSQL"
            )
    return found


def same(a: Any, b: Any) -> bool:
    if isinstance(a, tuple):
        return all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) or isinstance(b, float):
        return a is not None and b is not None and abs(a - b) <= 1e-6 * max(abs(a), abs(b), 1)
    return bool(a == b)


Timings = dict[tuple[str, str, str], float | None]


def timings(
    measured: Measures, windows: dict[str, tuple[int, int]], repeat: int
) -> tuple[Timings, dict[str, Agreement]]:
    """Median seconds per (engine, measure, window), rounds interleaved; None where it
    failed. With both engines, also what ``check_engines`` found, per window."""
    runs: dict[tuple[str, str, str], list[float]] = {
        (*key, w): [] for key in measured for w in windows
    }
    broken: set[tuple[str, str]] = set()
    engines = list(dict.fromkeys(engine for engine, _ in measured))
    agreed = {}
    for window, (lo, hi) in windows.items():  # warm-up, and the cross-checks
        began = time.time_ns()
        results = {}
        for key, measure in measured.items():
            try:
                results[key] = measure(lo, hi)
            except RuntimeError as exc:
                print(f"{' '.join(key)}: failed, left out: {exc}", file=sys.stderr)
                broken.add(key)
        for engine in engines:
            check(results[engine, LIBRARY_LABEL], results[engine, HAND], engine)
        if POSTGRES in engines:
            clock = (time.time_ns() - began) / 1e9 if hi > began else 0.0
            agreed[window] = check_engines(
                window, results[SQLITE, LIBRARY_LABEL], results[POSTGRES, LIBRARY_LABEL], clock
            )
            print(
                f"{window}: dora on SQLite and on PostgreSQL agree on {agreed[window]}",
                file=sys.stderr,
            )
    for round_ in range(repeat):
        print(f"round {round_ + 1}/{repeat}", file=sys.stderr)
        for window, (lo, hi) in windows.items():
            for key, measure in measured.items():
                if key in broken:
                    continue
                start = time.perf_counter()
                measure(lo, hi)
                runs[key[0], key[1], window].append(time.perf_counter() - start)
    medians = {key: statistics.median(times) if times else None for key, times in runs.items()}
    return medians, agreed


def peak_rss_mib(argv: Sequence[str]) -> float:
    done = subprocess.run(
        [sys.executable, "-c", PEAK_RSS, *argv],
        env=clean_env(),
        check=True,
        capture_output=True,
        text=True,
    )
    peak = int(done.stdout.split()[-1])
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # bytes there, KiB here


def count_deployments(store: Store, lo: int, hi: int) -> int:
    with closing(sqlite3.connect(store.path)) as db:
        (n,) = db.execute(
            "SELECT COUNT(*) FROM deployments WHERE finished_at >= ? AND finished_at < ?", (lo, hi)
        ).fetchone()
    return int(n)


def show_plans(target: Target, windows: dict[str, tuple[int, int]]) -> None:
    """Each query ``dora.metrics.report`` runs, timed, with the engine's plan for it: SQLite's
    ``EXPLAIN QUERY PLAN``; PostgreSQL's ``EXPLAIN ANALYZE`` of the query as dora runs it, a
    plain query for an aggregate, a cursor for rows it streams (which runs it again)."""
    from dora import metrics, timeparse
    from dora.store import is_postgres, open_store

    opened = open_store(target, create=False)
    engine = POSTGRES if is_postgres(target) else SQLITE
    rows, aggregate = opened.rows, opened.aggregate
    seen: list[tuple[float, int, str, Sequence[Any], bool]] = []

    def timed(sql: str, params: Sequence[Any] = ()) -> Iterator[Sequence[Any]]:
        start, n = time.perf_counter(), 0
        for row in rows(sql, params):
            n += 1
            yield row
        seen.append((time.perf_counter() - start, n, sql, params, True))

    def timed_aggregate(sql: str, params: Sequence[Any] = ()) -> list[Sequence[Any]]:
        start = time.perf_counter()
        found = aggregate(sql, params)
        seen.append((time.perf_counter() - start, len(found), sql, params, False))
        return found

    opened.rows = timed  # type: ignore[method-assign]
    opened.aggregate = timed_aggregate  # type: ignore[method-assign]
    try:
        for window, (lo, hi) in windows.items():
            seen.clear()
            metrics.report(opened, timeparse.from_ns(lo), timeparse.from_ns(hi))
            print(f"\n#### Queries of `dora.metrics.report` on {engine}, {window}\n")
            for took, n, sql, params, streamed in seen:
                print(f"{took:.3f} s, {n} rows:\n```sql\n{sql}\n```\n```")
                if engine == POSTGRES:
                    print("\n".join(pg_plan(str(target), sql, params, cursor=streamed)))
                    print("```")
                    continue
                depth = {0: -1}
                for step_id, parent, _, detail in list(rows(f"EXPLAIN QUERY PLAN {sql}", params)):
                    depth[step_id] = depth.get(parent, -1) + 1
                    print(f"{'  ' * depth[step_id]}{detail}")
                print("```")
    finally:
        opened.close()


def pg_plan(url: str, sql: str, params: Sequence[Any], *, cursor: bool) -> list[str]:
    """PostgreSQL's plan for ``sql`` (with ``?`` placeholders) as dora runs it: a plain query,
    or read through a cursor, which the planner plans for its first rows and never runs in
    parallel."""
    import psycopg

    explain = "EXPLAIN (ANALYZE) " + ("DECLARE plan CURSOR FOR " if cursor else "")
    with psycopg.connect(url) as db:
        query = explain + sql.replace("%", "%%").replace("?", "%s")
        return [line for (line,) in db.execute(query, params)]


def terminated(signum: int, frame: FrameType | None) -> None:
    """On SIGTERM, leave as on Ctrl-C: what the run made on the server is dropped."""
    sys.exit(128 + signum)


def scratch(url: str | None) -> AbstractContextManager[Scratch | None]:
    """Where the run's stores go on the PostgreSQL server, if one is given."""
    if url is None:
        return nullcontext()
    from to_postgres import Scratch

    return Scratch(url)


def to_postgres(place: Scratch, store: Store) -> str:
    """A copy of ``store`` in a schema of its own in ``place``: its URL."""
    from to_postgres import copy_store

    began = time.perf_counter()
    url = place.store(f"store_{store.deployments}")
    counts = copy_store(store.path, url)
    rows = ", ".join(f"{count:,} {table}" for table, count in counts.items())
    print(f"copied into PostgreSQL: {rows} in {time.perf_counter() - began:.1f} s", file=sys.stderr)
    return url


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.partition(":")[2].strip()
                break
    except OSError:
        pass
    import dora

    return (
        f"{cpu}, {os.cpu_count()} CPUs, {platform.system()} {platform.machine()}; "
        f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, "
        f"dora {dora.__version__}"
    )


def seconds(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:.3f} s" if value < 10 else f"{value:.2f} s"


def ratio(a: float | None, b: float | None) -> str:
    if a is None or not b:
        return "n/a"
    return f"{a / b:.2f}" if a / b >= 0.1 else f"{a / b:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", type=Path, metavar="PATH", help="a store to measure")
    parser.add_argument(
        "--cache", type=Path, metavar="PATH", help="keep the generated store here, and reuse it"
    )
    parser.add_argument("--deployments", type=int, metavar="N", help="size of a generated store")
    parser.add_argument("--repeat", type=int, default=5, metavar="N", help="rounds (median)")
    parser.add_argument("--window-days", type=int, default=30, metavar="N")
    parser.add_argument(
        "--memory-sizes",
        metavar="N,N,...",
        help="deployments in each store of the memory series (default 100000,300000,1000000)",
    )
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke test")
    parser.add_argument(
        "--plans", action="store_true", help="also time each query of the report, with its plan"
    )
    parser.add_argument(
        "--postgres",
        metavar="URL",
        help="also measure dora's PostgreSQL store on this server (postgresql://...), in a "
        "database made for the run and dropped at the end",
    )
    args = parser.parse_args()
    if args.store and args.deployments:
        parser.error("--deployments sizes a generated store; not with --store")
    if args.postgres is not None:
        from dora.store import INSTALL_POSTGRES, is_postgres

        if not is_postgres(args.postgres):
            parser.error("--postgres takes a postgresql:// (or postgres://) URL")
        if importlib.util.find_spec("psycopg") is None:
            parser.error(f"--postgres needs the psycopg driver: {INSTALL_POSTGRES}")
    size = args.deployments or (20_000 if args.quick else 1_000_000)
    repeat = 3 if args.quick and "--repeat" not in sys.argv else args.repeat
    sizes_text = args.memory_sizes or (
        "5000,10000,20000" if args.quick else "100000,300000,1000000"
    )
    sizes = [int(n) for n in sizes_text.split(",")]
    signal.signal(signal.SIGTERM, terminated)

    with tempfile.TemporaryDirectory(prefix="dora-bench-") as tmp, scratch(args.postgres) as place:
        if args.store:
            store = inspect(args.store)
        else:
            store = make_store(args.cache or Path(tmp) / "store.db", size)
        pg_url = None if place is None else to_postgres(place, store)
        since, until = store.since, store.until
        recent = max(since, until - args.window_days * DAY_NS)
        full_days = (until - since) // DAY_NS
        windows = {
            f"full range ({full_days} days)": (since, until),
            f"last {args.window_days} days": (recent, until),
        }
        full, part = windows
        figures, agreed = timings(measures(store.path, pg_url), windows, repeat)

        series = []
        for n in sizes:
            if n == store.deployments:
                one = store
            elif args.cache:
                one = make_store(
                    args.cache.with_name(f"{args.cache.stem}-{n}{args.cache.suffix}"), n
                )
            else:
                one = make_store(Path(tmp) / f"store-{n}.db", n)
            targets: list[tuple[str, Target]] = [(SQLITE, one.path)]
            if place is not None and pg_url is not None:
                targets.append((POSTGRES, pg_url if one is store else to_postgres(place, one)))
            for engine, target in targets:
                cli_peak = (
                    None
                    if figures[engine, CLI_LABEL, full] is None
                    else peak_rss_mib(cli(target, one.since, one.until))
                )
                lib_peak = peak_rss_mib(
                    [sys.executable, "-c", LIBRARY, str(target), str(one.since), str(one.until)]
                )
                series.append((engine, one, target, cli_peak, lib_peak))
        baseline = peak_rss_mib([sys.executable, "-c", "import dora.cli"])
        lib_baselines = {
            engine: peak_rss_mib(
                [sys.executable, "-c", f"import dora.metrics, dora.store.{module}"]
            )
            for engine, module in ((SQLITE, "sqlite"), (POSTGRES, "postgres"))
            if engine == SQLITE or pg_url is not None
        }

        shown = list(sys.argv[1:])
        if "--cache" in shown:  # where the store is kept changes no figure
            at = shown.index("--cache")
            del shown[at : at + 2]
        shown = [a for a in shown if not a.startswith("--cache=")]
        if args.postgres is not None:  # no password in print
            from to_postgres import shown as shown_url

            shown = [shown_url(a) if a == args.postgres else a for a in shown]
            shown = [
                f"--postgres={shown_url(args.postgres)}" if a.startswith("--postgres=") else a
                for a in shown
            ]
        command = shlex.join(["python", "benchmarks/metrics.py", *shown])
        in_window = {w: count_deployments(store, lo, hi) for w, (lo, hi) in windows.items()}

        print(f"Measured {date.today().isoformat()}: {machine()}.", end="")
        if pg_url is not None:
            from to_postgres import describe

            print(f" {describe(pg_url)}.", end="")
        print("\n\n```sh")
        print(command)
        if not args.store:
            extra = "" if size == 1_000_000 else f" --deployments {size} --incidents {size // 10}"
            print(f"# its store on its own: python benchmarks/make_store.py store.db{extra}")
        print("```\n")
        on_server = ""
        if pg_url is not None:
            from to_postgres import size_mib

            on_server = f" ({size_mib(pg_url):,.0f} MiB on PostgreSQL, with the indexes)"
        print(
            f"Store: {store.deployments:,} deployments ({store.commits:,} commits), "
            f"{store.incidents:,} incidents, {iso(since)[:10]} to {iso(until)[:10]}, "
            f"{store.mib:,.0f} MiB{on_server}. Median of {repeat} interleaved rounds; "
            f'"× hand" is the ratio to `{HAND}`'
            + (
                ' on the same engine; "× SQLite" the ratio to the same row on SQLite.\n'
                if pg_url
                else ".\n"
            )
        )
        engines = [SQLITE] if pg_url is None else [SQLITE, POSTGRES]
        for engine in engines:
            versus = engine != SQLITE
            if pg_url is not None:
                print(f"On {engine}:\n")
            extra = " × SQLite |" if versus else ""
            print(f"| | {full} | × hand |{extra} {part} | × hand |{extra} {part} ÷ full |")
            print("|---|---:|---:|" + ("---:|" if versus else "") * 2 + "---:|---:|---:|")
            hand_full, hand_part = figures[engine, HAND, full], figures[engine, HAND, part]
            for name in MEASURES:
                a, b = figures[engine, name, full], figures[engine, name, part]
                vs_full = f" {ratio(a, figures[SQLITE, name, full])} |" if versus else ""
                vs_part = f" {ratio(b, figures[SQLITE, name, part])} |" if versus else ""
                print(
                    f"| {name} | {seconds(a)} | {ratio(a, hand_full)} |{vs_full} {seconds(b)} | "
                    f"{ratio(b, hand_part)} |{vs_part} {ratio(b, a)} |"
                )
            a, b = in_window[full], in_window[part]
            gap = " |" if versus else ""
            print(f"| deployments in the window | {a:,} | |{gap} {b:,} | |{gap} {ratio(b, a)} |\n")
        for window, agreement in agreed.items():
            print(
                f"Checked in the warm-up, {window}: dora's reports on SQLite and on PostgreSQL "
                f"agree on every group's figures and the total's: {agreement}.\n"
            )

        print("Peak RSS of one full-range report, grouped by service, per store size:\n")
        for engine in engines:
            if pg_url is not None:
                print(
                    f"On {engine}"
                    + (" (the client process alone):\n" if engine == POSTGRES else ":\n")
                )
            place_name = "file" if engine == SQLITE else "on the server"
            module = "sqlite" if engine == SQLITE else "postgres"
            print(
                f"| store | {place_name} | `dora metrics` (CLI) | `dora.metrics.report` (library) |"
            )
            print("|---|---:|---:|---:|")
            print(
                f'| baseline: `python -c "import dora.cli"` / `"import dora.metrics, '
                f'dora.store.{module}"` | | {baseline:.1f} MiB | {lib_baselines[engine]:.1f} MiB |'
            )
            for found, one, target, cli_peak, lib_peak in series:
                if found != engine:
                    continue
                cli_text = "n/a" if cli_peak is None else f"{cli_peak:.1f} MiB"
                if engine == SQLITE:
                    mib = one.mib
                else:
                    from to_postgres import size_mib

                    mib = size_mib(str(target))
                print(
                    f"| {one.deployments:,} deployments, {one.incidents:,} incidents | "
                    f"{mib:,.0f} MiB | {cli_text} | {lib_peak:.1f} MiB |"
                )
            if engine != engines[-1]:
                print()
        if args.plans:
            show_plans(store.path, windows)
            if pg_url is not None:
                show_plans(pg_url, windows)


if __name__ == "__main__":
    main()
