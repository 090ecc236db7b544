"""Time ``dora deployment`` end to end against the floor of ``python -c "import typer"``.

A CI step pays dora's start-up on every deploy. This script runs each command in turn,
interleaved round by round so that both see the same machine load, and prints a Markdown
table of wall-clock times and each one's ratio to the floor.

    python benchmarks/startup.py            # 40 rounds
    python benchmarks/startup.py --rounds 100
    git worktree add /tmp/before v0.1.0     # an earlier dora, measured side by side
    python benchmarks/startup.py --baseline /tmp/before

It records into a throw-away store inside a throw-away git repository (with a commit and an
``origin`` remote), as a CI job would. Each store first holds ``--history`` deployments of
the service benchmarked (default 1000), so that what recording looks up in the history
(the previous commit, the change-failure rules) is paid as on a store in use. With
``--baseline CHECKOUT``, the same ``dora deployment`` rows run on that checkout's code too
(its ``src`` first on the module path, its own store), interleaved with this one's.
"""

from __future__ import annotations

import argparse
import json
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


def at_checkout(checkout: Path) -> list[str]:
    """A command line that runs the dora of ``checkout`` (its ``src`` first on the path)."""
    code = f"import sys; sys.path.insert(0, {str(checkout / 'src')!r}); "
    code += "from dora.cli import main; sys.argv[0] = 'dora'; main()"
    return [sys.executable, "-c", code]


DEPLOY = ["deployment", "--service", "bench", "--env", "ci", "--started-at", "-5m"]


def commands(db: Path, baseline: Path | None, baseline_db: Path) -> dict[str, list[str]]:
    deploy = [dora(), *DEPLOY]
    runs = {
        'python -c "import typer" (floor)': [sys.executable, "-c", "import typer"],
        'python -c "import typer, pydantic"': [sys.executable, "-c", "import typer, pydantic"],
        "reference: a 2-option Typer app": [sys.executable, "-c", TYPER_APP],
        "reference: import typer + 1 pydantic model": [sys.executable, "-c", PYDANTIC_MODEL],
        "dora --version": [dora(), "--version"],
        "dora deployment (git lookup)": [*deploy, "--db", str(db)],
        "dora deployment --skip-git": [*deploy, "--skip-git", "--db", str(db)],
        "dora deployment --dry-run": [*deploy, "--dry-run", "--skip-git"],
    }
    if baseline is not None:
        before = [*at_checkout(baseline), *DEPLOY]
        runs["baseline: dora deployment (git lookup)"] = [*before, "--db", str(baseline_db)]
        runs["baseline: dora deployment --skip-git"] = [
            *before, "--skip-git", "--db", str(baseline_db),
        ]  # fmt: skip
    return runs


def history(path: Path, size: int) -> None:
    """``size`` deployments of the benchmarked service, a minute apart, with commit SHAs and
    versions as a CI pipeline records them, as NDJSON for ``dora import``."""
    with path.open("w") as out:
        for n in range(size):
            finished = 1_700_000_000 + 60 * n
            record = {
                "type": "deployment",
                "service": "bench",
                "env": "ci",
                "version": f"1.{n}.0",
                "started_at": finished - 30,
                "finished_at": finished,
                "git": {
                    "repository_url": "https://github.com/acme/bench.git",
                    "commit_sha": f"{n:040x}",
                },
            }
            out.write(json.dumps(record) + "\n")


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
    parser.add_argument("--history", type=int, default=1000, metavar="N")
    parser.add_argument("--baseline", type=Path, metavar="CHECKOUT")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp) / "repo"
        repo.mkdir()
        make_repo(repo)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DD_", "DORA_"))}
        db, baseline_db = Path(tmp) / "bench.db", Path(tmp) / "baseline.db"
        runs = commands(db, args.baseline, baseline_db)
        if args.history:
            backfill = Path(tmp) / "history.ndjson"
            history(backfill, args.history)
            stores = [([dora()], db)]
            if args.baseline is not None:
                stores.append((at_checkout(args.baseline), baseline_db))
            for program, store in stores:
                argv = [*program, "import", str(backfill), "--db", str(store)]
                subprocess.run(argv, env=env, check=True, capture_output=True)
        times: dict[str, list[float]] = {name: [] for name in runs}
        for argv in runs.values():  # warm the OS caches and .pyc files once
            subprocess.run(argv, cwd=repo, env=env, check=True, capture_output=True)
        for _ in range(args.rounds):
            for name, argv in runs.items():
                start = time.perf_counter()
                subprocess.run(argv, cwd=repo, env=env, check=True, capture_output=True)
                times[name].append(time.perf_counter() - start)

    floor, second = (statistics.median(samples) for samples in list(times.values())[:2])
    print(
        f"{args.rounds} interleaved rounds; Python {platform.python_version()}, "
        f"{platform.machine()}, {os.cpu_count()} CPUs; stores holding {args.history} "
        "deployments of the service to begin with\n"
    )
    print("| command | median ms | p90 ms | × typer | × typer, pydantic |")
    print("|---|---:|---:|---:|---:|")
    for name, samples in times.items():
        median = statistics.median(samples)
        p90 = statistics.quantiles(samples, n=10)[-1]
        print(
            f"| `{name}` | {median * 1000:.1f} | {p90 * 1000:.1f} | {median / floor:.2f} | "
            f"{median / second:.2f} |"
        )


if __name__ == "__main__":
    main()
