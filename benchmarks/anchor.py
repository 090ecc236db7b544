"""``dora metrics`` beside DuckDB: the same figures from the same rows, side by side.

DuckDB is the anchor of issue 15 ("metrics at the speed of an analytical engine"): an
in-process analytical engine, given the store's rows once, computes the figures dora's
report gives, and each shape is timed on both, each command a process of its own, in
rounds that interleave them. Every figure both give is compared.

    python benchmarks/anchor.py --store store.db   # a store made by make_store.py
    python benchmarks/anchor.py --store store.db --postgres postgresql://postgres@127.0.0.1/postgres
    python benchmarks/anchor.py --quick            # a small store of its own (a smoke test)

DuckDB is a benchmark-only dependency (``pip install duckdb``). It reads the rows dora
reads: deployments, their commits, incidents and their services, the change-failure rules'
findings, exported from the store once (through CSV files, into a DuckDB database in a
temporary directory; the time that takes is reported apart). DuckDB runs on one thread, as
dora's SQLite store does. Beside SQLite the times are CPU seconds; with ``--postgres``, the
store is also copied into a database of its own on that server (dropped at the end), and
both sides are timed in wall-clock seconds there, since the server's processes do dora's
work.

The shapes: the whole store's period and its last 30 days, by service and in all, and the
whole period by service in weekly buckets. The figures compared, per bucket and group and
in total: deployments, median lead time, incidents started, resolved with their mean,
median and 90th percentile time to restore, and open at the bucket's end; failed
deployments, those recovered with their mean, median and 90th percentile recovery time,
those not recovered at the bucket's end, and rework deployments. Equal means equal for
counts, and within a nanosecond (or 1e-14 of the value) for times. The DuckDB side links
incidents to deployments as dora does (no link window) with ASOF joins; it does not model
marks, and refuses a store that has any.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import math
import platform
import resource
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import closing
from datetime import datetime
from pathlib import Path
from typing import Any

from dora import metrics, timeparse

HERE = Path(__file__).resolve().parent
DAY_NS = 86_400 * 10**9
COMPARED = (
    "deployments",
    "median_lead_time_seconds",
    "failures",
    "resolved_failures",
    "mttr_seconds",
    "median_time_to_restore_seconds",
    "p90_time_to_restore_seconds",
    "open_failures",
    "failed_deployments",
    "recovered_failed_deployments",
    "mean_recovery_time_seconds",
    "median_recovery_time_seconds",
    "p90_recovery_time_seconds",
    "unrecovered_failed_deployments",
    "rework_deployments",
)

#: The DuckDB side, run in a process of its own: argv = database, buckets (JSON: [[lo, hi],
#: ...] in ns), by (service|none). Prints {bucket: {key: {figure: value}}}, with the whole
#: window's total under the key "total" when grouped by service over one bucket.
DUCK = r'''
import json, sys
import duckdb
path, buckets, by = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
db = duckdb.connect(path, read_only=True)
db.execute("SET threads = 1")
db.execute("SET enable_progress_bar = false")  # it would print to stdout, amid the figures
db.execute("CREATE TEMP TABLE b (bucket INTEGER, lo BIGINT, hi BIGINT)")
rows = [(n, lo, hi) for n, (lo, hi) in enumerate(buckets)]
db.executemany("INSERT INTO b VALUES (?, ?, ?)", rows)
lo, hi = buckets[0][0], buckets[-1][1]

# Each incident's deployment: the one it names, else the latest that finished at or before
# it started, of one of its services (of its team when it names none), in its env when it
# has one; of those tied at that finish, the greatest id (dora's linking, no link window).
# Only incidents resolved since the first bucket began, or open, can change a figure.
db.execute("""
CREATE TEMP TABLE keyed AS
SELECT i.id AS incident, i.started_at AS started, i.finished_at AS ifin, i.env AS env,
       s.service AS service, CASE WHEN s.service IS NULL THEN i.team END AS team
FROM incidents i LEFT JOIN incident_services s ON s.incident_id = i.id
WHERE i.deployment_id IS NULL AND (s.service IS NOT NULL OR i.team IS NOT NULL)
  AND (i.finished_at IS NULL OR i.finished_at >= ?)""", [lo])
asof = []
for column, env in [("service", True), ("service", False), ("team", True), ("team", False)]:
    asof.append(
        f"SELECT k.incident, k.ifin, k.service, k.team, k.env, d.finished_at AS dfin FROM "
        f"(SELECT * FROM keyed WHERE {column} IS NOT NULL AND env IS {'NOT ' if env else ''}NULL"
        f"{' AND service IS NULL' if column == 'team' else ''}) k "
        f"ASOF JOIN deployments d ON d.{column} = k.{column}"
        f"{' AND d.env = k.env' if env else ''} AND d.finished_at <= k.started"
    )
db.execute(f"""
CREATE TEMP TABLE links AS
SELECT incident, ifin, did FROM (
    SELECT c.incident, c.ifin, d.id AS did, d.finished_at AS dfin
    FROM ({" UNION ALL ".join(asof)}) c
    JOIN deployments d ON d.finished_at = c.dfin
     AND ((c.service IS NOT NULL AND d.service = c.service)
          OR (c.service IS NULL AND d.team = c.team))
     AND (c.env IS NULL OR d.env = c.env)
    UNION ALL
    SELECT i.id, i.finished_at, d.id, d.finished_at FROM incidents i
    JOIN deployments d ON d.id = i.deployment_id
    WHERE i.finished_at IS NULL OR i.finished_at >= {int(lo)}
) QUALIFY row_number() OVER (PARTITION BY incident ORDER BY dfin DESC, did DESC) = 1""")
# Each failed deployment (a linked incident, or a change-failure rule's finding) and when
# it recovered: its first remediation's finish, else its last incident's resolution once
# all are resolved. (Marks are not modelled: anchor.py refuses a store that has any.)
db.execute("""
CREATE TEMP TABLE outcome AS
WITH inc AS (SELECT did, count(*) AS n, count(ifin) AS resolved, max(ifin) AS last
             FROM links GROUP BY did),
     rules AS (SELECT f.failed_id AS did, min(c.finished_at) AS fix FROM change_failures f
               JOIN deployments c ON c.id = f.cause_id GROUP BY f.failed_id)
SELECT d.id, d.service, d.finished_at AS fin,
       CASE WHEN r.did IS NOT NULL THEN r.fix WHEN inc.n = inc.resolved THEN inc.last END AS rec
FROM (SELECT did FROM inc UNION SELECT did FROM rules) x JOIN deployments d ON d.id = x.did
LEFT JOIN inc ON inc.did = d.id LEFT JOIN rules r ON r.did = d.id
WHERE d.finished_at < ?""", [hi])

out = {}
def put(rows, *names):
    for row in rows:
        entry = out.setdefault(str(row[0]), {}).setdefault(row[1], {})
        for name, value in zip(names, row[2:]):
            entry[name] = value
grouped = by == "service"
scopes = [("d.service", "s.service", "o.service", "c.service", True)] if grouped else []
if not grouped or len(buckets) == 1:
    name = "'total'" if grouped else "'all'"
    scopes.append((name, name, name, name, False))
for key, ikey, okey, ckey, joins in scopes:
    j = "LEFT JOIN incident_services s ON s.incident_id = i.id" if joins else ""
    put(db.execute(f"SELECT b.bucket, {key}, COUNT(*) FROM b JOIN deployments d "
                   "ON d.finished_at >= b.lo AND d.finished_at < b.hi GROUP BY ALL").fetchall(),
        "deployments")
    put(db.execute(f"SELECT b.bucket, {ckey}, median(c.lead_time) FROM b JOIN deployment_commits c "
                   "ON c.finished_at >= b.lo AND c.finished_at < b.hi GROUP BY ALL").fetchall(),
        "lead")
    put(db.execute(f"SELECT b.bucket, {ikey}, COUNT(*) FROM b JOIN incidents i "
                   f"ON i.started_at >= b.lo AND i.started_at < b.hi {j} GROUP BY ALL").fetchall(),
        "failures")
    put(db.execute(f"SELECT b.bucket, {ikey}, COUNT(*), avg(i.finished_at - i.started_at), "
                   "median(i.finished_at - i.started_at), "
                   "quantile_cont(i.finished_at - i.started_at, 0.9) FROM b JOIN incidents i "
                   f"ON i.finished_at >= b.lo AND i.finished_at < b.hi {j} "
                   "GROUP BY ALL").fetchall(),
        "resolved", "mean", "median", "p90")
    put(db.execute(f"SELECT b.bucket, {ikey}, COUNT(*) FROM b JOIN incidents i ON i.started_at "
                   f"< b.hi AND (i.finished_at IS NULL OR i.finished_at >= b.hi) {j} "
                   "GROUP BY ALL").fetchall(), "open")
    put(db.execute(f"SELECT b.bucket, {okey}, COUNT(*) FROM b JOIN outcome o "
                   "ON o.fin >= b.lo AND o.fin < b.hi GROUP BY ALL").fetchall(), "failed")
    put(db.execute(f"SELECT b.bucket, {okey}, COUNT(*), avg(GREATEST(o.rec - o.fin, 0)), "
                   "median(GREATEST(o.rec - o.fin, 0)), "
                   "quantile_cont(GREATEST(o.rec - o.fin, 0), 0.9) FROM b JOIN outcome o "
                   "ON o.rec >= b.lo AND o.rec < b.hi GROUP BY ALL").fetchall(),
        "recovered", "rmean", "rmedian", "rp90")
    put(db.execute(f"SELECT b.bucket, {okey}, COUNT(*) FROM b JOIN outcome o ON o.fin < b.hi "
                   "AND (o.rec IS NULL OR o.rec >= b.hi) GROUP BY ALL").fetchall(), "unrecovered")
    put(db.execute(f"SELECT b.bucket, {ckey}, COUNT(DISTINCT c.id) FROM b JOIN "
                   "(SELECT c.id, c.service, c.finished_at FROM change_failures f "
                   "JOIN deployments c ON c.id = f.cause_id "
                   f"JOIN deployments d ON d.id = f.failed_id WHERE d.finished_at < {int(hi)}) c "
                   "ON c.finished_at >= b.lo AND c.finished_at < b.hi GROUP BY ALL").fetchall(),
        "rework")
print(json.dumps(out, default=float))
'''


def export(store: Path, target: Path, tmp: Path) -> float:
    """The store's rows into a DuckDB database at ``target``; the seconds it took."""
    import duckdb

    start = time.perf_counter()
    tables = {
        "deployments": "SELECT id, service, team, env, finished_at FROM deployments",
        # each commit with its deployment's service and finish and its lead time, as dora
        # keeps them (m012): DuckDB reads what dora reads, no join
        "deployment_commits": "SELECT service, finished_at, lead_time FROM deployment_commits",
        "incidents": "SELECT id, team, env, started_at, finished_at, deployment_id FROM incidents",
        "incident_services": "SELECT incident_id, service FROM incident_services",
        "change_failures": "SELECT failed_id, cause_id FROM change_failures",
    }
    with closing(sqlite3.connect(store)) as source, closing(duckdb.connect(str(target))) as db:
        for table, query in tables.items():
            path = tmp / f"{table}.csv"
            with path.open("w", newline="") as out:
                cursor = source.execute(query)
                names = [column[0] for column in cursor.description]
                writer = csv.writer(out)
                writer.writerow(names)
                writer.writerows(cursor)
            given = {
                name: "BIGINT" if name.endswith(("_at", "_time")) else "VARCHAR" for name in names
            }
            db.execute(
                f"CREATE TABLE {table} AS SELECT * FROM read_csv(?, header = true, "
                f"nullstr = '', columns = {given!r})",
                [str(path)],
            )
            path.unlink()
    return time.perf_counter() - start


def run(argv: list[str], *, wall: bool) -> tuple[float, str]:
    """The seconds a process running ``argv`` took (CPU, or wall-clock with ``wall``: a
    PostgreSQL store's work is done in the server's processes), and what it printed."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(argv, check=True, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    used = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return elapsed if wall else used, done.stdout


def dora_figures(out: str, by: str, starts: list[int]) -> dict[tuple[int, str], dict[str, Any]]:
    """dora's figures by (bucket, key): the groups and total of a window (bucket 0), or the
    trend's rows by their bucket's start."""
    data = json.loads(out)
    found = {}
    if data.get("interval"):
        for row in data["trend"]:
            start = datetime.fromisoformat(row["start"].replace("Z", "+00:00"))
            bucket = starts.index(round(start.timestamp() * 1e6) * 1000)
            found[bucket, "null" if row["service"] is None else row["service"]] = row
    elif by == "service":
        for group in data["groups"]:  # an incident of no service: JSON's null key
            found[0, "null" if group["service"] is None else group["service"]] = group
        found[0, "total"] = data["total"]
    else:
        found[0, "all"] = data["total"]
    return found


def duck_figures(out: str) -> dict[tuple[int, str], dict[str, Any]]:
    found: dict[tuple[int, str], dict[str, Any]] = {}
    for bucket, keys in json.loads(out).items():
        for key, got in keys.items():
            resolved, recovered = got.get("resolved", 0), got.get("recovered", 0)
            found[int(bucket), key] = {
                "deployments": got.get("deployments", 0),
                "median_lead_time_seconds": got["lead"] / 1e9 if "lead" in got else None,
                "failures": got.get("failures", 0),
                "resolved_failures": resolved,
                "mttr_seconds": got["mean"] / 1e9 if resolved else None,
                "median_time_to_restore_seconds": got["median"] / 1e9 if resolved else None,
                "p90_time_to_restore_seconds": got["p90"] / 1e9 if resolved else None,
                "open_failures": got.get("open", 0),
                "failed_deployments": got.get("failed", 0),
                "recovered_failed_deployments": recovered,
                "mean_recovery_time_seconds": got["rmean"] / 1e9 if recovered else None,
                "median_recovery_time_seconds": got["rmedian"] / 1e9 if recovered else None,
                "p90_recovery_time_seconds": got["rp90"] / 1e9 if recovered else None,
                "unrecovered_failed_deployments": got.get("unrecovered", 0),
                "rework_deployments": got.get("rework", 0),
            }
    return found


def compare(dora: dict[Any, dict[str, Any]], duck: dict[Any, dict[str, Any]]) -> tuple[int, int]:
    """(figures compared, figures that differ) over the groups either side has."""
    compared = differ = 0
    for key in set(dora) | set(duck):
        mine, theirs = dora.get(key, {}), duck.get(key, {})
        for name in COMPARED:
            missing = None if "seconds" in name else 0  # a group one side does not have
            a, b = mine.get(name, missing), theirs.get(name, missing)
            if "seconds" in name and a is not None and b is not None:
                # within a nanosecond, or 1e-14 of the value (a percentile of weeks, in
                # ns, is near the last digits of a double): the sides interpolate and
                # divide in their own order
                same = math.isclose(a, b, rel_tol=1e-14, abs_tol=1e-9)
            else:
                same = a == b
            compared += 1
            if not same:
                differ += 1
                if differ <= 5:
                    print(f"differs: {key} {name}: dora {a!r}, DuckDB {b!r}", file=sys.stderr)
    return compared, differ


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", type=Path, metavar="PATH")
    parser.add_argument("--rounds", type=int, default=3, metavar="N")
    parser.add_argument("--quick", action="store_true", help="a small store of its own")
    parser.add_argument(
        "--postgres",
        metavar="URL",
        help="also time dora on a copy of the store in PostgreSQL (a database of its own, "
        "made on this server and dropped after)",
    )
    args = parser.parse_args()
    py = sys.executable
    with tempfile.TemporaryDirectory() as tmp_name, contextlib.ExitStack() as stack:
        tmp = Path(tmp_name)
        store = args.store
        if store is None:
            store = tmp / "store.db"
            size = ["--deployments", "20000", "--incidents", "2000"] if args.quick else []
            subprocess.run(
                [py, str(HERE / "make_store.py"), *size, str(store)],
                check=True, stdout=subprocess.DEVNULL,
            )  # fmt: skip
        subprocess.run([py, "-m", "dora", "metrics", "--db", str(store), "--since", "1d"],
                       check=True, capture_output=True)  # migrations, untimed  # fmt: skip
        with closing(sqlite3.connect(store)) as db:
            first, last = db.execute(
                "SELECT MIN(finished_at), MAX(finished_at) + 1 FROM deployments"
            ).fetchone()
            if db.execute("SELECT 1 FROM deployment_marks").fetchone():
                sys.exit("anchor.py: the store has marks, which the DuckDB side does not model")
        engines = {"SQLite": str(store)}
        if args.postgres:
            sys.path.insert(0, str(HERE))
            import to_postgres

            scratch = stack.enter_context(to_postgres.Scratch(args.postgres))
            engines["PostgreSQL"] = scratch.store("anchor")
            to_postgres.copy_store(store, engines["PostgreSQL"])
            to_postgres.vacuum(engines["PostgreSQL"])
        duck_db = tmp / "anchor.duckdb"
        loaded = export(store, duck_db, tmp)
        full, month = (first, last), (last - 30 * DAY_NS, last)
        weeks = [
            (timeparse.to_ns(lo), timeparse.to_ns(hi))
            for lo, hi in metrics.split(timeparse.from_ns(first), timeparse.from_ns(last), "week")
        ]
        shapes = {  # name: (window, --by, --interval)
            "full range, --by service": (full, "service", None),
            "full range, --by none": (full, "none", None),
            "full range, --by service --interval week": (full, "service", "week"),
            "last 30 days, --by service": (month, "service", None),
            "last 30 days, --by none": (month, "none", None),
        }
        times: dict[tuple[str, str], list[float]] = {}
        checked: dict[tuple[str, str], tuple[int, int]] = {}
        for round_ in range(args.rounds + 1):
            for shape, ((lo, hi), by, interval) in shapes.items():
                buckets = weeks if interval else [(lo, hi)]
                starts = [start for start, _ in buckets]
                window_args = ["--since", str(lo), "--until", str(hi), "--by", by]
                if interval:
                    window_args += ["--interval", interval]
                duck_argv = [py, "-c", DUCK, str(duck_db), json.dumps(buckets), by]
                for engine, target in engines.items():
                    dora_argv = [py, "-m", "dora", "metrics", "--db", target, *window_args,
                                 "--format", "json"]  # fmt: skip
                    wall = engine != "SQLite"
                    dora_time, dora_out = run(dora_argv, wall=wall)
                    duck_time, duck_out = run(duck_argv, wall=wall)
                    if not round_:  # the warm-up round checks the figures
                        checked[shape, engine] = compare(
                            dora_figures(dora_out, by, starts), duck_figures(duck_out)
                        )
                        continue
                    times.setdefault((shape, engine), []).append(dora_time)
                    times.setdefault((shape, f"{engine} DuckDB"), []).append(duck_time)
    import duckdb

    print(
        f"Median of {args.rounds} interleaved rounds, each command a process of its own: CPU "
        "seconds beside SQLite, wall-clock seconds (both sides) beside PostgreSQL; Python "
        f"{platform.python_version()}, SQLite {sqlite3.sqlite_version}, DuckDB "
        f"{duckdb.__version__} (1 thread); loading DuckDB once took {loaded:.1f} s\n"
    )
    print("| shape | store | dora | DuckDB | ratio | figures compared | differ |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for shape in shapes:
        for engine in engines:
            mine = statistics.median(times[shape, engine])
            theirs = statistics.median(times[shape, f"{engine} DuckDB"])
            compared, differ = checked[shape, engine]
            print(
                f"| {shape} | {engine} | {mine:.2f} s | {theirs:.2f} s | {mine / theirs:.1f}× | "
                f"{compared:,} | {differ:,} |"
            )
    if any(differ for _, differ in checked.values()):
        sys.exit("anchor.py: dora and DuckDB differ (above)")


if __name__ == "__main__":
    main()
