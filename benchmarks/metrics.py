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

The store is made by ``benchmarks/make_store.py`` (in a temporary directory, or at
``--cache`` to be reused by the next run; ``--cache`` does not change the figures). Each
round runs every measurement in turn, after one warm-up round that also checks that dora
and the hand-written SQL agree on every figure they share; the median of ``--repeat`` rounds
is reported. The output is a Markdown section for ``BENCHMARKS.md``.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

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


def cli(path: Path, lo: int, hi: int) -> list[str]:
    window = ["--since", iso(lo), "--until", iso(hi)]
    return [sys.executable, "-m", "dora", "metrics", "--db", str(path), *window, "--format", "json"]


# What is timed. Each returns what it computed, for the warm-up round's cross-check.


def run_library(path: Path, lo: int, hi: int) -> Any:
    from dora import metrics, timeparse
    from dora.store import open_store

    store = open_store(path, create=False)
    try:
        since, until = timeparse.from_ns(lo), timeparse.from_ns(hi)
        return metrics.report(store, since, until, group_by=("service",))
    finally:
        store.close()


def run_cli(path: Path, lo: int, hi: int) -> None:
    done = subprocess.run(
        cli(path, lo, hi), env=clean_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
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


LIBRARY_LABEL = "`dora.metrics.report(..., group_by=('service',))`"
CLI_LABEL = "`dora metrics --format json` (whole CLI process)"
HAND = "hand-written SQL, per service"
MEASURES: dict[str, Callable[[Path, int, int], Any]] = {
    LIBRARY_LABEL: run_library,
    CLI_LABEL: run_cli,
    HAND: run_sql(PER_SERVICE),
    "hand-written SQL, per service and in total": run_both,
    "floor: `SELECT service, COUNT(*) ... GROUP BY service`": run_floor,
}


def check(report: Any, hand: dict[str, list[Any]]) -> None:
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
                    f"dora and the hand-written SQL disagree on {name} of {service}: "
                    f"{ours[name]!r} against {hands[name]!r}"
                )


def same(a: Any, b: Any) -> bool:
    if isinstance(a, tuple):
        return all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) or isinstance(b, float):
        return a is not None and b is not None and abs(a - b) <= 1e-6 * max(abs(a), abs(b), 1)
    return bool(a == b)


def timings(
    store: Store, windows: dict[str, tuple[int, int]], repeat: int
) -> dict[tuple[str, str], float | None]:
    """Median seconds per (measure, window), rounds interleaved; None where it failed."""
    runs: dict[tuple[str, str], list[float]] = {(m, w): [] for m in MEASURES for w in windows}
    broken: set[str] = set()
    for lo, hi in windows.values():  # warm-up, and the cross-check
        results = {}
        for name, measure in MEASURES.items():
            try:
                results[name] = measure(store.path, lo, hi)
            except RuntimeError as exc:
                print(f"{name}: failed, left out: {exc}", file=sys.stderr)
                broken.add(name)
        check(results[LIBRARY_LABEL], results[HAND])
    for round_ in range(repeat):
        print(f"round {round_ + 1}/{repeat}", file=sys.stderr)
        for window, (lo, hi) in windows.items():
            for name, measure in MEASURES.items():
                if name in broken:
                    continue
                start = time.perf_counter()
                measure(store.path, lo, hi)
                runs[name, window].append(time.perf_counter() - start)
    return {key: statistics.median(times) if times else None for key, times in runs.items()}


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


def show_plans(store: Store, windows: dict[str, tuple[int, int]]) -> None:
    """Each query ``dora.metrics.report`` runs, timed, with SQLite's plan for it."""
    from dora import metrics, timeparse
    from dora.store import open_store

    opened = open_store(store.path, create=False)
    rows = opened.rows
    seen: list[tuple[float, int, str, Sequence[Any]]] = []

    def timed(sql: str, params: Sequence[Any] = ()) -> Iterator[Sequence[Any]]:
        start, n = time.perf_counter(), 0
        for row in rows(sql, params):
            n += 1
            yield row
        seen.append((time.perf_counter() - start, n, sql, params))

    opened.rows = timed  # type: ignore[method-assign]
    try:
        for window, (lo, hi) in windows.items():
            seen.clear()
            metrics.report(opened, timeparse.from_ns(lo), timeparse.from_ns(hi))
            print(f"\n#### Queries of `dora.metrics.report`, {window}\n")
            for took, n, sql, params in seen:
                print(f"{took:.3f} s, {n} rows:\n```sql\n{sql}\n```\n```")
                depth = {0: -1}
                for step_id, parent, _, detail in list(rows(f"EXPLAIN QUERY PLAN {sql}", params)):
                    depth[step_id] = depth.get(parent, -1) + 1
                    print(f"{'  ' * depth[step_id]}{detail}")
                print("```")
    finally:
        opened.close()


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
    args = parser.parse_args()
    if args.store and args.deployments:
        parser.error("--deployments sizes a generated store; not with --store")
    size = args.deployments or (20_000 if args.quick else 1_000_000)
    repeat = 3 if args.quick and "--repeat" not in sys.argv else args.repeat
    sizes_text = args.memory_sizes or (
        "5000,10000,20000" if args.quick else "100000,300000,1000000"
    )
    sizes = [int(n) for n in sizes_text.split(",")]

    with tempfile.TemporaryDirectory(prefix="dora-bench-") as tmp:
        if args.store:
            store = inspect(args.store)
        else:
            store = make_store(args.cache or Path(tmp) / "store.db", size)
        since, until = store.since, store.until
        recent = max(since, until - args.window_days * DAY_NS)
        full_days = (until - since) // DAY_NS
        windows = {
            f"full range ({full_days} days)": (since, until),
            f"last {args.window_days} days": (recent, until),
        }
        figures = timings(store, windows, repeat)

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
            cli_peak = (
                None
                if figures[CLI_LABEL, next(iter(windows))] is None
                else peak_rss_mib(cli(one.path, one.since, one.until))
            )
            lib_peak = peak_rss_mib(
                [sys.executable, "-c", LIBRARY, str(one.path), str(one.since), str(one.until)]
            )
            series.append((one, cli_peak, lib_peak))
        baseline = peak_rss_mib([sys.executable, "-c", "import dora.cli"])
        lib_baseline = peak_rss_mib(
            [sys.executable, "-c", "import dora.metrics, dora.store.sqlite"]
        )

        shown = list(sys.argv[1:])
        if "--cache" in shown:  # where the store is kept changes no figure
            at = shown.index("--cache")
            del shown[at : at + 2]
        shown = [a for a in shown if not a.startswith("--cache=")]
        command = shlex.join(["python", "benchmarks/metrics.py", *shown])
        in_window = {w: count_deployments(store, lo, hi) for w, (lo, hi) in windows.items()}

        print(f"Measured {date.today().isoformat()}: {machine()}.\n")
        print("```sh")
        print(command)
        if not args.store:
            extra = "" if size == 1_000_000 else f" --deployments {size} --incidents {size // 10}"
            print(f"# its store on its own: python benchmarks/make_store.py store.db{extra}")
        print("```\n")
        print(
            f"Store: {store.deployments:,} deployments ({store.commits:,} commits), "
            f"{store.incidents:,} incidents, {iso(since)[:10]} to {iso(until)[:10]}, "
            f"{store.mib:,.0f} MiB. Median of {repeat} interleaved rounds; "
            f'"× hand" is the ratio to `{HAND}`.\n'
        )
        full, part = windows
        hand_full, hand_part = figures[HAND, full], figures[HAND, part]
        print(f"| | {full} | × hand | {part} | × hand | {part} ÷ full |")
        print("|---|---:|---:|---:|---:|---:|")
        for name in MEASURES:
            a, b = figures[name, full], figures[name, part]
            print(
                f"| {name} | {seconds(a)} | {ratio(a, hand_full)} | {seconds(b)} | "
                f"{ratio(b, hand_part)} | {ratio(b, a)} |"
            )
        a, b = in_window[full], in_window[part]
        print(f"| deployments in the window | {a:,} | | {b:,} | | {ratio(b, a)} |")

        print("\nPeak RSS of one full-range report, grouped by service, per store size:\n")
        print("| store | file | `dora metrics` (CLI) | `dora.metrics.report` (library) |")
        print("|---|---:|---:|---:|")
        print(
            f'| baseline: `python -c "import dora.cli"` / `"import dora.metrics, '
            f'dora.store.sqlite"` | | {baseline:.1f} MiB | {lib_baseline:.1f} MiB |'
        )
        for one, cli_peak, lib_peak in series:
            cli_text = "n/a" if cli_peak is None else f"{cli_peak:.1f} MiB"
            print(
                f"| {one.deployments:,} deployments, {one.incidents:,} incidents | "
                f"{one.mib:,.0f} MiB | {cli_text} | {lib_peak:.1f} MiB |"
            )
        if args.plans:
            show_plans(store, windows)


if __name__ == "__main__":
    main()
