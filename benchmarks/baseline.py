"""Time ``dora.metrics.report`` of this checkout against an earlier checkout's, side by side.

A change that adds to reports (change failures on deployments, say) must not make them
slower than before; this answers how much, on one store, in one run:

    python benchmarks/make_store.py store.db        # 1,000,000 deployments (~60 s)
    git worktree add /tmp/before 7ee2436            # the dora to compare with
    python benchmarks/baseline.py --store store.db --baseline /tmp/before

Each checkout gets its own copy of the store, opened once untimed so that its migrations
run (an earlier dora refuses a store a later one has migrated). Each round then runs, in
turn, the full-range report and the last 30 days' report, grouped by service, once per
checkout, each in a fresh process (the store opened, reported, closed); the median of
``--repeat`` rounds is reported, after one warm-up round. The output is a Markdown table
for BENCHMARKS.md.
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
from contextlib import closing
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent

# One report in a process of its own: the code of the checkout given, the store given.
REPORT = """
import sys, time
sys.path.insert(0, sys.argv[1])
from dora import metrics, timeparse
from dora.store import open_store
since, until = (timeparse.from_ns(int(value)) for value in sys.argv[3:5])
start = time.perf_counter()
with open_store(sys.argv[2], create=False) as store:
    report = metrics.report(store, since, until, group_by=("service",))
print(time.perf_counter() - start, report.total.deployments)
"""

OPEN = """
import sys
sys.path.insert(0, sys.argv[1])
from dora.store import open_store
open_store(sys.argv[2], create=False).close()
"""


def run(source: Path, store: Path, lo: int, hi: int) -> tuple[float, int]:
    argv = [sys.executable, "-c", REPORT, str(source), str(store), str(lo), str(hi)]
    out = subprocess.run(argv, check=True, capture_output=True, text=True).stdout.split()
    return float(out[0]), int(out[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", type=Path, required=True, metavar="PATH")
    parser.add_argument("--baseline", type=Path, required=True, metavar="CHECKOUT")
    parser.add_argument("--repeat", type=int, default=3, metavar="N")
    args = parser.parse_args()

    with closing(sqlite3.connect(args.store)) as db:
        lo, hi = db.execute(
            "SELECT MIN(finished_at), MAX(finished_at) + 1 FROM deployments"
        ).fetchone()
    windows = {"full range": (lo, hi), "last 30 days": (hi - 30 * 86_400 * 10**9, hi)}
    checkouts = {"this checkout": HERE / "src", "baseline": args.baseline.resolve() / "src"}
    times: dict[tuple[str, str], list[float]] = {}
    counts: dict[str, int] = {}
    with tempfile.TemporaryDirectory(dir=args.store.parent) as tmp:
        stores = {}
        for name, source in checkouts.items():
            stores[name] = Path(tmp) / f"{name.replace(' ', '-')}.db"
            shutil.copy(args.store, stores[name])
            subprocess.run([sys.executable, "-c", OPEN, str(source), str(stores[name])], check=True)
        for round_ in range(args.repeat + 1):
            for window, (start, end) in windows.items():
                for name, source in checkouts.items():
                    seconds, deployments = run(source, stores[name], start, end)
                    if round_:  # the first round warms the caches
                        times.setdefault((window, name), []).append(seconds)
                    counts[window] = deployments

    commit = subprocess.run(
        ["git", "-C", str(args.baseline), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    print(
        f"Median of {args.repeat} interleaved rounds; Python {platform.python_version()}, "
        f"SQLite {sqlite3.sqlite_version}, {os.cpu_count()} CPUs; baseline: "
        f"{commit or args.baseline.name}\n"
    )
    print("| window | deployments | this checkout | baseline | × baseline |")
    print("|---|---:|---:|---:|---:|")
    for window in windows:
        new = statistics.median(times[window, "this checkout"])
        old = statistics.median(times[window, "baseline"])
        print(f"| {window} | {counts[window]:,} | {new:.3f} s | {old:.3f} s | {new / old:.2f} |")


if __name__ == "__main__":
    main()
