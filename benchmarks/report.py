"""What ``dora report`` costs beside ``dora metrics``: time, the chart library's import, and
the page's size, on the same store, side by side.

    python benchmarks/report.py                       # a generated store (~1 minute)
    python benchmarks/report.py --store store.db --since 2024-11-01 --until 2026-11-01

Each round runs, in turn and each in a fresh process: ``python -c "import dora.cli"`` (the
floor), ``python -c "import matplotlib.pyplot"`` (the chart library alone),
``dora metrics --format json`` and ``dora report`` with and without its events, over the
same window; the median of ``--rounds`` rounds is printed, after one warm-up round, with
each page's size in bytes and gzipped (as a mail or a CI artifact store would carry it).
Without ``--store``, a store of 20,000 deployments of 12 services over 120 days is made
with ``make_store.py`` in a temporary directory, and reported over its last 90 days.
"""

from __future__ import annotations

import argparse
import gzip
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def timed(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", type=Path, metavar="PATH")
    parser.add_argument("--since", default="90d", metavar="TIME")
    parser.add_argument("--until", default="2026-12-06", metavar="TIME")
    parser.add_argument("--rounds", type=int, default=5, metavar="N")
    args = parser.parse_args()
    py = sys.executable
    with tempfile.TemporaryDirectory() as tmp:
        store = args.store
        if store is None:
            store = Path(tmp) / "store.db"
            subprocess.run(
                [py, str(HERE / "make_store.py"), "--deployments", "20000", "--incidents",
                 "2000", "--services", "12", "--days", "120", "--end", "2026-12-06T00:00:00Z",
                 str(store)],
                check=True, stdout=subprocess.DEVNULL,
            )  # fmt: skip
        window = ["--db", str(store), "--since", args.since, "--until", args.until]
        pages = {"with events": Path(tmp) / "a.html", "--no-events": Path(tmp) / "b.html"}
        commands = {
            'python -c "import dora.cli" (floor)': [py, "-c", "import dora.cli"],
            'python -c "import matplotlib.pyplot"': [py, "-c", "import matplotlib.pyplot"],
            "dora metrics --format json": [py, "-m", "dora", "metrics", *window, "--format",
                                           "json"],
            "dora report": [py, "-m", "dora", "report", *window, "-o", str(pages["with events"])],
            "dora report --no-events": [py, "-m", "dora", "report", *window, "--no-events", "-o",
                                        str(pages["--no-events"])],
        }  # fmt: skip
        times: dict[str, list[float]] = {name: [] for name in commands}
        for round_ in range(args.rounds + 1):
            for name, argv in commands.items():
                took = timed(argv)
                if round_:
                    times[name].append(took)
        metrics_time = statistics.median(times["dora metrics --format json"])
        print(
            f"Median of {args.rounds} interleaved rounds; Python {platform.python_version()}, "
            f"{platform.machine()}; store {store.name}, window {args.since} to {args.until}\n"
        )
        print("| command | median s | × dora metrics |")
        print("|---|---:|---:|")
        for name, found in times.items():
            median = statistics.median(found)
            print(f"| `{name}` | {median:.3f} | {median / metrics_time:.2f} |")
        print("\n| page | bytes | gzipped |")
        print("|---|---:|---:|")
        for name, path in pages.items():
            data = path.read_bytes()
            print(f"| {name} | {len(data):,} | {len(gzip.compress(data)):,} |")


if __name__ == "__main__":
    main()
