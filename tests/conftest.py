"""Every test runs isolated: its own config, data dir and store, a clean environment,
a pinned clock where it asks for one, and no network."""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import pytest
import respx
from typer.testing import CliRunner

from dora import timeparse
from dora.cli import _runtime, app
from dora.gitmeta import CI_PROVIDERS

FIXED_NOW = datetime(2026, 11, 24, 12, 0, 0, tzinfo=timezone.utc)

_CLEARED = re.compile(
    r"^(DD_|DORA_|DATADOG_|GIT_|GITHUB_|GITLAB_|CI_|CIRCLE|BUILDKITE|BITBUCKET_|"
    r"SYSTEM_|BUILD_|TF_BUILD$|JENKINS_URL$|CI$)"
)


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Point config, data and store at tmp_path; clear DD_*, DORA_* and CI variables."""
    for name in list(os.environ):
        if _CLEARED.match(name):
            monkeypatch.delenv(name)
    for provider in CI_PROVIDERS:
        monkeypatch.delenv(provider.detect, raising=False)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / ".local" / "share"))
    monkeypatch.setenv("DORA_DB", str(tmp_path / "dora.db"))
    monkeypatch.setenv("COLUMNS", "120")
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)  # not a git repository unless a test makes it one
    monkeypatch.setattr(_runtime.state, "reraise", True)  # a bug is a traceback, not exit 1
    yield tmp_path
    time.tzset()


@pytest.fixture(autouse=True)
def respx_router() -> Iterator[respx.MockRouter]:
    """No test reaches the network: a request no route matches fails the test. Add routes
    with ``respx_router.post(url).mock(...)``."""
    with respx.mock(assert_all_mocked=True, assert_all_called=False) as router:
        yield router


@pytest.fixture
def frozen_now(monkeypatch: pytest.MonkeyPatch) -> datetime:
    """Pin dora's clock at FIXED_NOW."""
    monkeypatch.setattr(timeparse, "now", lambda: FIXED_NOW)
    return FIXED_NOW


@pytest.fixture
def db_path(isolated: Path) -> Path:
    return isolated / "dora.db"


@dataclass
class FakeTime:
    """A monotonic clock that moves only when something sleeps (or a test moves it)."""

    now: float = 1000.0
    sleeps: list[float] = field(default_factory=list)

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@dataclass
class Result:
    exit_code: int
    stdout: str
    stderr: str


@pytest.fixture
def dora():
    """Run the CLI in-process: ``dora("deployment", "--service", "api", ...)``."""
    runner = CliRunner()

    def run(*args: str, input: str | None = None) -> Result:
        result = runner.invoke(app, list(args), input=input, catch_exceptions=False)
        return Result(result.exit_code, result.stdout, result.stderr)

    return run


def rows(db: Path, sql: str, params: tuple = ()) -> list[dict]:
    """What is in the store, read with plain sqlite3."""
    if not db.exists():
        return []
    with closing(sqlite3.connect(db)) as conn, conn:
        conn.row_factory = sqlite3.Row
        return [dict(row) for row in conn.execute(sql, params)]


def count(db: Path, table: str) -> int:
    if not db.exists():
        return 0
    with closing(sqlite3.connect(db)) as conn, conn:
        return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def git(cwd: Path, *args: str) -> str:
    """Run git in ``cwd`` with a throw-away identity; return its output."""
    done = subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


def make_repo(path: Path, *, commit: bool = True, origin: str | None = None) -> Path:
    """A real git repository at ``path``: one empty commit, and an origin if given."""
    path.mkdir(exist_ok=True)
    git(path, "init", "--quiet")
    if commit:
        git(path, "commit", "--quiet", "--allow-empty", "-m", "x")
    if origin is not None:
        git(path, "remote", "add", "origin", origin)
    return path
