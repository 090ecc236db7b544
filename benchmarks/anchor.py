"""``dora metrics`` beside DuckDB: the same figures from the same rows, side by side.

DuckDB is the anchor of issue 15 ("metrics at the speed of an analytical engine"): an
in-process analytical engine, given the store's rows once, computes the figures dora's
report gives, and each shape is timed on both, in CPU seconds of a process of its own, in
rounds that interleave them. Every figure both give is compared, exactly.

    python benchmarks/anchor.py --store store.db   # a store made by make_store.py
    python benchmarks/anchor.py --quick            # a small store of its own (a smoke test)

DuckDB is a benchmark-only dependency (``pip install duckdb``). It reads the rows dora
reads: deployments, their commits, incidents and their services, exported from the store
once (through CSV files, into a DuckDB database in a temporary directory; the time that
takes is reported apart). DuckDB runs on one thread, as dora's SQLite store does.

The figures compared, per group and in total: deployments, median lead time, incidents
started, incidents resolved with their mean, median and 90th percentile time to restore,
and incidents open at the window's end. (Change failures, recovery and rework are not
computed on the DuckDB side yet.)
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import resource
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import closing
from pathlib import Path
from typing import Any

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
)

#: The DuckDB side, run in a process of its own: argv = database, lo, hi, by (service|none).
DUCK = r"""
import json, sys
import duckdb
path, lo, hi, by = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
db = duckdb.connect(path, read_only=True)
db.execute("SET threads = 1")
grouped = by == "service"
key = "d.service" if grouped else "'all'"
ikey = "s.service" if grouped else "'all'"
join = "LEFT JOIN incident_services s ON s.incident_id = i.id" if grouped else ""
out = {}
def put(rows, *names):
    for row in rows:
        entry = out.setdefault(row[0], {})
        for name, value in zip(names, row[1:]):
            entry[name] = value
for scope, k, ik, j in [("groups", key, ikey, join), ("total", "'total'", "'total'", "")]:
    if scope == "total" and not grouped:
        continue
    put(db.execute(f"SELECT {k}, COUNT(*) FROM deployments d WHERE d.finished_at >= ? "
                   f"AND d.finished_at < ? GROUP BY 1", [lo, hi]).fetchall(), "deployments")
    put(db.execute(f"SELECT {k}, median(GREATEST(d.finished_at - c.committed_at, 0)) "
                   f"FROM deployments d JOIN deployment_commits c ON c.deployment_id = d.id "
                   f"WHERE d.finished_at >= ? AND d.finished_at < ? GROUP BY 1",
                   [lo, hi]).fetchall(), "lead")
    put(db.execute(f"SELECT {ik}, COUNT(*) FROM incidents i {j} WHERE i.started_at >= ? "
                   f"AND i.started_at < ? GROUP BY 1", [lo, hi]).fetchall(), "failures")
    put(db.execute(f"SELECT {ik}, COUNT(*), avg(i.finished_at - i.started_at), "
                   f"median(i.finished_at - i.started_at), "
                   f"quantile_cont(i.finished_at - i.started_at, 0.9) FROM incidents i {j} "
                   f"WHERE i.finished_at >= ? AND i.finished_at < ? GROUP BY 1",
                   [lo, hi]).fetchall(), "resolved", "mean", "median", "p90")
    put(db.execute(f"SELECT {ik}, COUNT(*) FROM incidents i {j} WHERE i.started_at < ? "
                   f"AND (i.finished_at IS NULL OR i.finished_at >= ?) GROUP BY 1",
                   [hi, hi]).fetchall(), "open")
print(json.dumps(out, default=float))
"""


def export(store: Path, target: Path, tmp: Path) -> float:
    """The store's rows into a DuckDB database at ``target``; the seconds it took."""
    import duckdb

    start = time.perf_counter()
    tables = {
        "deployments": "SELECT id, service, finished_at FROM deployments",
        "deployment_commits": "SELECT deployment_id, committed_at FROM deployment_commits",
        "incidents": "SELECT id, started_at, finished_at FROM incidents",
        "incident_services": "SELECT incident_id, service FROM incident_services",
    }
    with closing(sqlite3.connect(store)) as source, closing(duckdb.connect(str(target))) as db:
        for table, query in tables.items():
            path = tmp / f"{table}.csv"
            with path.open("w", newline="") as out:
                cursor = source.execute(query)
                writer = csv.writer(out)
                writer.writerow([column[0] for column in cursor.description])
                writer.writerows(cursor)
            db.execute(
                f"CREATE TABLE {table} AS SELECT * FROM read_csv(?, header = true, nullstr = '')",
                [str(path)],
            )
            path.unlink()
    return time.perf_counter() - start


def cpu(argv: list[str]) -> tuple[float, str]:
    """The CPU seconds of a process running ``argv``, and what it printed."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(argv, check=True, capture_output=True, text=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    used = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return used, done.stdout


def dora_figures(out: str, by: str) -> dict[str, dict[str, Any]]:
    data = json.loads(out)
    found = {}
    if by == "service":
        for group in data["groups"]:  # an incident of no service: JSON's null key
            found["null" if group["service"] is None else group["service"]] = group
        found["total"] = data["total"]
    else:
        found["all"] = data["total"]
    return found


def duck_figures(out: str) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for key, got in json.loads(out).items():
        resolved = got.get("resolved", 0)
        found[key] = {
            "deployments": got.get("deployments", 0),
            "median_lead_time_seconds": got["lead"] / 1e9 if "lead" in got else None,
            "failures": got.get("failures", 0),
            "resolved_failures": resolved,
            "mttr_seconds": got["mean"] / 1e9 if resolved else None,
            "median_time_to_restore_seconds": got["median"] / 1e9 if resolved else None,
            "p90_time_to_restore_seconds": got["p90"] / 1e9 if resolved else None,
            "open_failures": got.get("open", 0),
        }
    return found


def compare(dora: dict[str, dict[str, Any]], duck: dict[str, dict[str, Any]]) -> tuple[int, int]:
    """(figures compared, figures that differ) over the groups either side has."""
    compared = differ = 0
    for key in set(dora) | set(duck):
        mine, theirs = dora.get(key, {}), duck.get(key, {})
        for name in COMPARED:
            missing = None if "seconds" in name else 0  # a group one side does not have
            a, b = mine.get(name, missing), theirs.get(name, missing)
            if "seconds" in name and a is not None and b is not None:
                same = abs(a - b) <= 1e-9  # within a nanosecond: both sides divide doubles
            else:
                same = a == b
            compared += 1
            differ += not same
    return compared, differ


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", type=Path, metavar="PATH")
    parser.add_argument("--rounds", type=int, default=3, metavar="N")
    parser.add_argument("--quick", action="store_true", help="a small store of its own")
    args = parser.parse_args()
    py = sys.executable
    with tempfile.TemporaryDirectory() as tmp_name:
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
        duck_db = tmp / "anchor.duckdb"
        loaded = export(store, duck_db, tmp)
        with closing(sqlite3.connect(store)) as db:
            first, last = db.execute(
                "SELECT MIN(finished_at), MAX(finished_at) + 1 FROM deployments"
            ).fetchone()
        windows = {"full range": (first, last), "last 30 days": (last - 30 * DAY_NS, last)}
        shapes = [(w, by) for w in windows for by in ("service", "none")]
        times: dict[tuple[str, str, str], list[float]] = {}
        checked: dict[tuple[str, str], tuple[int, int]] = {}
        for round_ in range(args.rounds + 1):
            for window, by in shapes:
                lo, hi = windows[window]
                window_args = ["--since", str(lo), "--until", str(hi), "--by", by]
                dora_argv = [py, "-m", "dora", "metrics", "--db", str(store), *window_args,
                             "--format", "json"]  # fmt: skip
                duck_argv = [py, "-c", DUCK, str(duck_db), str(lo), str(hi), by]
                dora_cpu, dora_out = cpu(dora_argv)
                duck_cpu, duck_out = cpu(duck_argv)
                if not round_:  # the warm-up round checks the figures
                    checked[window, by] = compare(
                        dora_figures(dora_out, by), duck_figures(duck_out)
                    )
                    continue
                times.setdefault((window, by, "dora"), []).append(dora_cpu)
                times.setdefault((window, by, "duckdb"), []).append(duck_cpu)
    import duckdb

    print(
        f"Median of {args.rounds} interleaved rounds, CPU seconds of each process; Python "
        f"{platform.python_version()}, SQLite {sqlite3.sqlite_version}, DuckDB "
        f"{duckdb.__version__} (1 thread); loading DuckDB once took {loaded:.1f} s\n"
    )
    print("| window | --by | dora | DuckDB | ratio | figures compared | differ |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for window, by in shapes:
        mine = statistics.median(times[window, by, "dora"])
        theirs = statistics.median(times[window, by, "duckdb"])
        compared, differ = checked[window, by]
        print(
            f"| {window} | {by} | {mine:.2f} s | {theirs:.2f} s | {mine / theirs:.1f}× | "
            f"{compared:,} | {differ:,} |"
        )


if __name__ == "__main__":
    main()
