"""Time ``dora import`` and ``dora export`` on a 100,000-event file, and measure memory.

Answered in one run, so that the ratios are measured side by side:

* how long a backfill of 100,000 events takes (NDJSON and CSV, into an empty store), and
  again when every event is already stored (a re-import: all unchanged);
* how that compares with a floor: a bare script that parses the same NDJSON and writes the
  same rows in one transaction, with no validation, no id check, no outbox: with
  ``sqlite3``'s ``executemany``, and with PostgreSQL's ``COPY`` (``--postgres``);
* how long ``dora export`` takes to write the store back out;
* peak memory of an import as the file grows: does it stay flat?

    python benchmarks/interchange.py            # 100,000 events, 3 rounds
    python benchmarks/interchange.py --quick    # a few thousand, a few seconds (CI smoke)
    python benchmarks/interchange.py --postgres postgresql://postgres@127.0.0.1:5432/postgres

Events: 90 % deployments of 200 services (with a commit SHA, three shipped commits and a
tag each), 10 % incidents naming one or two services, 1 % of them open; in time order over
two years. The output is a Markdown section for ``BENCHMARKS.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from metrics import clean_env, machine, peak_rss_mib, ratio, seconds
from to_postgres import shown

START = 1_730_419_200  # 2024-11-01T00:00:00Z
SPAN = 730 * 86_400

# The floor: parse NDJSON, and write the rows as dora's schema holds them (times as integer
# nanoseconds; a commit with its deployment's service, team, env, finish and lead time) in one
# transaction: with sqlite3's executemany, or with PostgreSQL's COPY. What dora adds on top
# is validation, the comparison with what is stored, services, change failures, the outbox
# and the spool.
FLOOR_READ = """
import json, sys
from datetime import datetime, timezone

def ns(text):
    return int(datetime.fromisoformat(text[:-1]).replace(tzinfo=timezone.utc).timestamp()) * 10**9

deployments, incidents, commits = [], [], []
with open(sys.argv[1], encoding="utf-8") as f:
    for line in f:
        r = json.loads(line)
        git = r.get("git", {})
        finished = ns(r["finished_at"]) if "finished_at" in r else None
        row = (r["id"], r.get("env"), r.get("version"), r.get("team"), ns(r["started_at"]),
               finished, git.get("repository_url"), git.get("commit_sha"),
               json.dumps(r.get("custom_tags", [])), 0)
        if r["type"] == "deployment":
            deployments.append((r["service"], *row))
            for c in r.get("commits", []):
                at = ns(c["committed_at"])
                commits.append((r["id"], c["sha"], at, r["service"], r.get("team"),
                                r.get("env"), finished, max(0, finished - at)))
        else:
            incidents.append((r.get("name"), r.get("severity"), *row))
COMMON = ("id, env, version, team, started_at, finished_at, repository_url, commit_sha, "
          "custom_tags, recorded_at")
TABLES = (
    ("deployments", "service, " + COMMON, deployments),
    ("incidents", "name, severity, " + COMMON, incidents),
    ("deployment_commits", "deployment_id, sha, committed_at, service, team, env, "
                           "finished_at, lead_time", commits),
)
"""
FLOOR = (
    FLOOR_READ
    + """
import sqlite3
db = sqlite3.connect(sys.argv[2], isolation_level=None)
db.execute("BEGIN")
for table, columns, rows in TABLES:
    marks = ", ".join("?" * len(columns.split(",")))
    db.executemany(f"INSERT INTO {table} ({columns}) VALUES ({marks})", rows)
db.execute("COMMIT")
"""
)
COPY_FLOOR = (
    FLOOR_READ
    + """
import psycopg
with psycopg.connect(sys.argv[2]) as conn, conn.cursor() as cursor:
    for table, columns, rows in TABLES:
        with cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
"""
)


def records(n: int, seed: int = 1, *, commits: bool = False) -> Iterator[dict[str, Any]]:
    rng = random.Random(seed)
    services = [f"service-{i:03d}" for i in range(200)]
    for i in range(n):
        started = START + SPAN * i // n
        iso = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started))
        if i % 10:
            service = services[rng.randrange(200)]
            shipped = [
                {
                    "sha": f"{rng.getrandbits(160):040x}",
                    "committed_at": time.strftime(
                        "%Y-%m-%dT%H:%M:%SZ", time.gmtime(started - rng.randrange(60, 86_400))
                    ),
                }
                for _ in range(3)
            ]
            deployment = {
                "type": "deployment",
                "id": f"deploy-{i:012d}",
                "service": service,
                "env": "prod",
                "version": f"1.{i // 1000}.{i % 1000}",
                "started_at": iso,
                "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started + 300)),
                "git": {
                    "repository_url": f"https://github.com/acme/{service}",
                    "commit_sha": f"{rng.getrandbits(160):040x}",
                },
                "custom_tags": ["source:benchmark"],
            }
            if commits:
                deployment["commits"] = shipped
            yield deployment
        else:
            named = rng.sample(services, 2 if rng.random() < 0.1 else 1)
            record = {
                "type": "incident",
                "id": f"incident-{i:012d}",
                "services": named,
                "name": "checkout errors",
                "severity": "SEV-2",
                "started_at": iso,
            }
            if rng.random() >= 0.01:
                end = started + rng.randrange(300, 86_400)
                record["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(end))
            yield record


def write_files(directory: Path, n: int) -> tuple[Path, Path, Path]:
    """The events as NDJSON and CSV, and as NDJSON with three shipped commits each."""
    from dora import interchange

    ndjson, csv = directory / f"events-{n}.ndjson", directory / f"events-{n}.csv"
    with_commits = directory / f"events-{n}-commits.ndjson"
    with ndjson.open("w", encoding="utf-8") as out:
        interchange.write_ndjson(records(n), out)
    with csv.open("w", encoding="utf-8", newline="") as out:
        interchange.write_csv(records(n), out)
    with with_commits.open("w", encoding="utf-8") as out:
        interchange.write_ndjson(records(n, commits=True), out)
    return ndjson, csv, with_commits


def dora(*args: str | Path, db: Path | str) -> list[str]:
    return [sys.executable, "-m", "dora", *map(str, args), "--db", str(db)]


def run(argv: list[str]) -> None:
    subprocess.run(argv, env=clean_env(), check=True, capture_output=True)


def empty_store(target: Path | str) -> Path | str:
    """A store with dora's schema and nothing in it (for a floor, which cannot make one)."""
    from dora.store import open_store

    if isinstance(target, Path):
        target.unlink(missing_ok=True)
    open_store(target).close()
    return target


#: A row of the table: what is timed, and the name of the floor it is compared with.
Step = tuple[Callable[[], None], str]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000, metavar="N")
    parser.add_argument("--repeat", type=int, default=3, metavar="N", help="rounds (median)")
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke test")
    parser.add_argument(
        "--postgres",
        metavar="URL",
        help="also import into PostgreSQL (a scratch database made and dropped on the server "
        "at URL), beside a floor that COPYs the same rows",
    )
    options = parser.parse_args()
    n = 2_000 if options.quick else options.events
    repeat = 1 if options.quick else options.repeat

    with tempfile.TemporaryDirectory(prefix="dora-bench-") as tmp, contextlib.ExitStack() as stack:
        work = Path(tmp)
        ndjson, csv, with_commits = write_files(work, n)
        full, scratch = work / "full.db", work / "scratch.db"

        def fresh(argv: Callable[[Path], list[str]]) -> Callable[[], None]:
            def step() -> None:
                scratch.unlink(missing_ok=True)
                run(argv(scratch))

            return step

        def floor(script: str, file: Path, target: Callable[[], Path | str]) -> Callable[[], None]:
            def step() -> None:
                run([sys.executable, "-c", script, str(file), str(empty_store(target()))])

            return step

        run(dora("import", with_commits, db=full))  # exports include the commits

        plain, commits = "floor: NDJSON into SQLite", "floor: NDJSON with commits into SQLite"
        steps: dict[str, Step] = {
            f"`dora import` {n:,} events, NDJSON, into an empty store": (
                fresh(lambda db: dora("import", ndjson, db=db)),
                plain,
            ),
            f"`dora import` {n:,} events, CSV, into an empty store": (
                fresh(lambda db: dora("import", csv, db=db)),
                plain,
            ),
            f"`dora import` {n:,} events, NDJSON, deployments with 3 commits each": (
                fresh(lambda db: dora("import", with_commits, db=db)),
                commits,
            ),
            f"`dora import` the same NDJSON again (all {n:,} unchanged)": (
                lambda: run(dora("import", ndjson, db=full)),
                plain,
            ),
            f"`dora export` {n:,} events, NDJSON": (lambda: run(dora("export", db=full)), plain),
            f"`dora export` {n:,} events, CSV": (
                lambda: run(dora("export", "--format", "csv", db=full)),
                plain,
            ),
            plain: (floor(FLOOR, ndjson, lambda: scratch), plain),
            commits: (floor(FLOOR, with_commits, lambda: scratch), commits),
        }
        if options.postgres:
            sys.path.insert(0, str(Path(__file__).parent))
            from to_postgres import Scratch

            server = stack.enter_context(Scratch(options.postgres))
            names = itertools.count()

            def schema() -> str:
                return server.store(f"import_{next(names)}")

            pg_plain = "floor: NDJSON into PostgreSQL, `COPY`"
            pg_commits = "floor: NDJSON with commits into PostgreSQL, `COPY`"
            steps |= {
                f"`dora import` {n:,} events, NDJSON, into an empty PostgreSQL store": (
                    lambda: run(dora("import", ndjson, db=schema())),
                    pg_plain,
                ),
                f"`dora import` {n:,} events with 3 commits each, into PostgreSQL": (
                    lambda: run(dora("import", with_commits, db=schema())),
                    pg_commits,
                ),
                pg_plain: (floor(COPY_FLOOR, ndjson, schema), pg_plain),
                pg_commits: (floor(COPY_FLOOR, with_commits, schema), pg_commits),
            }
        times: dict[str, list[float]] = {name: [] for name in steps}
        for _ in range(repeat):
            for name, (step, _) in steps.items():
                started = time.perf_counter()
                step()
                times[name].append(time.perf_counter() - started)
        medians = {name: statistics.median(found) for name, found in times.items()}

        sizes = [n // 10, n] if options.quick else [n, 3 * n]
        memory = []
        for size in sizes:
            file = with_commits if size == n else write_files(work, size)[2]
            scratch.unlink(missing_ok=True)
            memory.append(
                (size, file.stat().st_size, peak_rss_mib(dora("import", file, db=scratch)))
            )
        scratch.unlink(missing_ok=True)
        baseline = peak_rss_mib([sys.executable, "-c", "import dora.cli"])

    print(f"Measured {time.strftime('%Y-%m-%d')}: {machine()}.\n")
    command = "python benchmarks/interchange.py"
    if options.postgres:
        command += f" --postgres {shown(options.postgres)}"
    print(f"```sh\n{command}\n```\n")
    print(
        f"Median of {repeat} interleaved rounds, each command a whole process (wall-clock "
        'time, the server\'s included); "× floor" is the ratio to the floor named beside it: '
        "a bare script that parses the same file and writes the same rows.\n"
    )
    print("| | time | × floor | floor | events per second |\n|---|---:|---:|---|---:|")
    for name, took in medians.items():
        compared = steps[name][1]
        print(
            f"| {name} | {seconds(took)} | {ratio(took, medians[compared])} | "
            f"{'—' if compared == name else compared} | {n / took:,.0f} |"
        )
    print("\nPeak RSS of `dora import` (deployments with 3 commits each) into an empty store:\n")
    print("| events | file | peak RSS |\n|---:|---:|---:|")
    print(f'| baseline: `python -c "import dora.cli"` | | {baseline:.1f} MiB |')
    for size, file_size, peak in memory:
        print(f"| {size:,} | {file_size / 2**20:.0f} MiB | {peak:.1f} MiB |")


if __name__ == "__main__":
    main()
