"""Time ``dora deployment`` end to end against the floor of ``python -c "import typer"``.

A CI step pays dora's start-up on every deploy. This script runs each command in turn,
interleaved round by round so that both see the same machine load, and prints a Markdown
table of wall-clock times and each one's ratio to the floor.

    python benchmarks/startup.py            # 40 rounds
    python benchmarks/startup.py --rounds 100

It records into a throw-away store inside a throw-away git repository (with a commit and an
``origin`` remote), as a CI job would.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def dora() -> str:
    return str(Path(sys.executable).parent / "dora")


# A Typer app with two string options and nothing else: what Typer itself costs per command
# (from Typer 0.29 on it builds a pydantic TypeAdapter for every option it parses).
TYPER_APP = """
import typer
app = typer.Typer()
@app.command()
def f(x: str = "a", y: str = "b"):
    pass
app(["--x", "b"])
"""

# pydantic imported and one small model validated: the price of validation at all.
PYDANTIC_MODEL = """
import typer
from datetime import datetime
from pydantic import BaseModel
class Event(BaseModel):
    service: str
    started_at: datetime
Event.model_validate({"service": "api", "started_at": "2026-11-24T10:00:00Z"})
"""


def commands(db: Path) -> dict[str, list[str]]:
    deploy = [dora(), "deployment", "--service", "bench", "--env", "ci", "--started-at", "-5m"]
    return {
        'python -c "import typer" (floor)': [sys.executable, "-c", "import typer"],
        "reference: a 2-option Typer app": [sys.executable, "-c", TYPER_APP],
        "reference: import typer + 1 pydantic model": [sys.executable, "-c", PYDANTIC_MODEL],
        "dora --version": [dora(), "--version"],
        "dora deployment (git lookup)": [*deploy, "--db", str(db)],
        "dora deployment --skip-git": [*deploy, "--skip-git", "--db", str(db)],
        "dora deployment --dry-run": [*deploy, "--dry-run", "--skip-git"],
    }


def make_repo(path: Path) -> None:
    def git(*args: str) -> None:
        subprocess.run(
            ["git", "-c", "user.name=b", "-c", "user.email=b@example.com", *args],
            cwd=path,
            check=True,
            capture_output=True,
        )

    git("init", "-q")
    git("commit", "-q", "--allow-empty", "-m", "bench")
    git("remote", "add", "origin", "https://github.com/acme/bench.git")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=40)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp) / "repo"
        repo.mkdir()
        make_repo(repo)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DD_", "DORA_"))}
        runs = commands(Path(tmp) / "bench.db")
        times: dict[str, list[float]] = {name: [] for name in runs}
        for argv in runs.values():  # warm the OS caches and .pyc files once
            subprocess.run(argv, cwd=repo, env=env, check=True, capture_output=True)
        for _ in range(args.rounds):
            for name, argv in runs.items():
                start = time.perf_counter()
                subprocess.run(argv, cwd=repo, env=env, check=True, capture_output=True)
                times[name].append(time.perf_counter() - start)

    floor = statistics.median(next(iter(times.values())))
    print(
        f"{args.rounds} interleaved rounds; Python {platform.python_version()}, "
        f"{platform.machine()}, {os.cpu_count()} CPUs\n"
    )
    print("| command | median ms | p90 ms | × floor (median) |")
    print("|---|---:|---:|---:|")
    for name, samples in times.items():
        median = statistics.median(samples)
        p90 = statistics.quantiles(samples, n=10)[-1]
        print(f"| `{name}` | {median * 1000:.1f} | {p90 * 1000:.1f} | {median / floor:.2f} |")


if __name__ == "__main__":
    main()
