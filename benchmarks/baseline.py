"""Time ``dora.metrics.report`` of this checkout against an earlier checkout's, side by side.

A change that adds to reports (change failures on deployments, say) must not make them
slower than before; this answers how much, on one store, in one run:

    python benchmarks/make_store.py store.db        # 1,000,000 deployments (~60 s)
    git worktree add /tmp/before 7ee2436            # the dora to compare with
    python benchmarks/baseline.py --store store.db --baseline /tmp/before
    python benchmarks/baseline.py --store store.db --baseline /tmp/before \
        --postgres postgresql://postgres@127.0.0.1:5432/postgres

Each checkout gets its own copy of the store, opened once untimed so that its migrations
run (an earlier dora refuses a store a later one has migrated); with ``--postgres``, that
copy is then copied into a schema of its own on the server, by the checkout's own
``benchmarks/to_postgres.py`` (in a database made for the run and dropped at its end, as
``benchmarks/metrics.py`` does), vacuumed again by this checkout's (so that every copy
has its visibility map set, as a real store's would be), and the reports run there. Each
round then runs, in turn, the full-range report and the last 30 days' report, grouped by
service, once per checkout, each in a fresh process (the store opened, reported, closed);
the median of ``--repeat`` rounds is reported, after one warm-up round: the report's
time, the CPU time of its process (on PostgreSQL, the client's alone), and the process's
peak RSS. The output is a Markdown table for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
from contextlib import ExitStack, closing
from pathlib import Path

from to_postgres import Scratch, describe, vacuum  # beside this script

HERE = Path(__file__).resolve().parent.parent

# One report in a process of its own: the code of the checkout given, the store given.
REPORT = """
import resource, sys, time
sys.path.insert(0, sys.argv[1])
from dora import metrics, timeparse
from dora.store import open_store
since, until = (timeparse.from_ns(int(value)) for value in sys.argv[3:5])
start, cpu = time.perf_counter(), time.process_time()
with open_store(sys.argv[2], create=False) as store:
    report = metrics.report(store, since, until, group_by=("service",))
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(time.perf_counter() - start, time.process_time() - cpu, peak, report.total.deployments)
"""

# Copy a migrated SQLite store into PostgreSQL with a checkout's own script and schema.
COPY = """
import sys
sys.path.insert(0, sys.argv[1])
sys.path.insert(0, sys.argv[2])
import to_postgres
to_postgres.copy_store(__import__("pathlib").Path(sys.argv[3]), sys.argv[4])
"""

OPEN = """
import sys
sys.path.insert(0, sys.argv[1])
from dora.store import open_store
open_store(sys.argv[2], create=False).close()
"""


def run(source: Path, store: str, lo: int, hi: int) -> tuple[tuple[float, float, float], int]:
    """(seconds, CPU seconds, peak RSS in MiB) of one report, and its deployments."""
    argv = [sys.executable, "-c", REPORT, str(source), store, str(lo), str(hi)]
    out = subprocess.run(argv, check=True, capture_output=True, text=True).stdout.split()
    return (float(out[0]), float(out[1]), float(out[2])), int(out[3])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", type=Path, required=True, metavar="PATH")
    parser.add_argument("--baseline", type=Path, required=True, metavar="CHECKOUT")
    parser.add_argument("--repeat", type=int, default=3, metavar="N")
    parser.add_argument("--postgres", metavar="URL", help="report on PostgreSQL copies instead")
    args = parser.parse_args()

    with closing(sqlite3.connect(args.store)) as db:
        lo, hi = db.execute(
            "SELECT MIN(finished_at), MAX(finished_at) + 1 FROM deployments"
        ).fetchone()
    windows = {"full range": (lo, hi), "last 30 days": (hi - 30 * 86_400 * 10**9, hi)}
    checkouts = {"this checkout": HERE, "baseline": args.baseline.resolve()}
    times: dict[tuple[str, str], list[tuple[float, float, float]]] = {}
    counts: dict[str, int] = {}
    with tempfile.TemporaryDirectory(dir=args.store.parent) as tmp, ExitStack() as stack:
        scratch = stack.enter_context(Scratch(args.postgres)) if args.postgres else None
        stores: dict[str, str] = {}
        for name, checkout in checkouts.items():
            path = Path(tmp) / f"{name.replace(' ', '-')}.db"
            shutil.copy(args.store, path)
            source = str(checkout / "src")
            subprocess.run([sys.executable, "-c", OPEN, source, str(path)], check=True)
            stores[name] = str(path)
            if scratch is not None:
                stores[name] = scratch.store(name.replace(" ", "_"))
                copy = [COPY, source, str(checkout / "benchmarks"), str(path), stores[name]]
                subprocess.run([sys.executable, "-c", *copy], check=True)
                # the same state for every copy, whatever its checkout's script left: an
                # earlier to_postgres.py committed asynchronously, which left most pages
                # out of the visibility map (index-only reads then visit the table too)
                vacuum(stores[name])
                path.unlink()
        for round_ in range(args.repeat + 1):
            for window, (start, end) in windows.items():
                for name, checkout in checkouts.items():
                    measured, deployments = run(checkout / "src", stores[name], start, end)
                    if round_:  # the first round warms the caches
                        times.setdefault((window, name), []).append(measured)
                    counts[window] = deployments

    commit = subprocess.run(
        ["git", "-C", str(args.baseline), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    engine = describe(args.postgres) if args.postgres else f"SQLite {sqlite3.sqlite_version}"
    print(
        f"Median of {args.repeat} interleaved rounds; Python {platform.python_version()}, "
        f"{engine}, {os.cpu_count()} CPUs; baseline: {commit or args.baseline.name}\n"
    )
    print(
        "| window | deployments | this checkout | baseline | × baseline | CPU, this | "
        "CPU, baseline | peak RSS, this | peak RSS, baseline |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for window in windows:
        new, old = (
            [statistics.median(m[k] for m in times[window, name]) for k in range(3)]
            for name in checkouts
        )
        print(
            f"| {window} | {counts[window]:,} | {new[0]:.3f} s | {old[0]:.3f} s | "
            f"{new[0] / old[0]:.2f} | {new[1]:.3f} s | {old[1]:.3f} s | "
            f"{new[2]:.1f} MiB | {old[2]:.1f} MiB |"
        )


if __name__ == "__main__":
    main()
