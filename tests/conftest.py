"""Every test runs isolated: its own config, data dir and store, a clean environment,
a pinned clock where it asks for one, and no network."""

from __future__ import annotations

import itertools
import os
import re
import shutil
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
import respx
from typer.testing import CliRunner

from dora import timeparse
from dora.cli import _runtime, app
from dora.gitmeta import CI_PROVIDERS
from dora.store import is_postgres

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
    for name in ("NO_COLOR", "FORCE_COLOR"):  # colour is a test's own choice
        monkeypatch.delenv(name, raising=False)
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


#: The PostgreSQL server the tests of both engines use: each test gets a schema of its own in
#: a database made for the run. Without one, those tests skip, unless DORA_TEST_POSTGRES_REQUIRED
#: is set (as CI sets it), when they fail.
POSTGRES = os.environ.get("DORA_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
_REQUIRED = os.environ.get("DORA_TEST_POSTGRES_REQUIRED", "") not in ("", "0")
_schemas = itertools.count()


#: Chromium for the browser tests: DORA_TEST_CHROMIUM, else the distribution's package on the
#: PATH (``.ci/run`` installs it). Without it those tests skip, unless
#: DORA_TEST_BROWSER_REQUIRED is set (as CI sets it), when they fail.
CHROMIUM = (
    os.environ.get("DORA_TEST_CHROMIUM")
    or shutil.which("chromium")
    or shutil.which("chromium-browser")
)
_BROWSER_REQUIRED = os.environ.get("DORA_TEST_BROWSER_REQUIRED", "") not in ("", "0")

#: Mermaid's browser bundle (``dist/mermaid.min.js`` of the version ``.ci/run`` pins), for
#: the tests that parse and draw the Markdown's charts. Read here, at import, because the
#: ``isolated`` fixture clears DORA_* variables. Without it those tests skip, unless
#: DORA_TEST_BROWSER_REQUIRED is set, when they fail.
MERMAID_JS = os.environ.get("DORA_TEST_MERMAID_JS", "")


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Headless Chromium, driven by Playwright, with no way out to the network: nothing in
    the background, no component updates (this machine's network is closed anyway)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _no_browser("playwright is not installed (pip install -e '.[test]')")
    if not CHROMIUM:
        _no_browser("no Chromium: install the distribution's package or set DORA_TEST_CHROMIUM")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="session")
def mermaid_js() -> Path:
    """The path of mermaid.min.js to load into a page."""
    if not MERMAID_JS:
        _no_browser(
            "no Mermaid: npm install mermaid and set DORA_TEST_MERMAID_JS to its mermaid.min.js"
        )
    path = Path(MERMAID_JS)
    if not path.is_file():
        _no_browser(f"DORA_TEST_MERMAID_JS names no file: {MERMAID_JS}")
    return path


def _no_browser(reason: str) -> None:
    if _BROWSER_REQUIRED:
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


class PostgresTarget(str):
    """A PostgreSQL store URL that answers ``exists()`` as a store file's path does: whether
    a store was made there."""

    def exists(self) -> bool:
        return bool(pg_rows(self, "SELECT to_regclass('dora_migrations') IS NOT NULL AS x")[0]["x"])


def pg_connect(url: str):
    import psycopg
    from psycopg.rows import dict_row

    return psycopg.connect(url, autocommit=True, row_factory=dict_row, connect_timeout=5)


def pg_rows(url: str, sql: str, params: tuple = ()) -> list[dict]:
    with pg_connect(url) as conn:
        return conn.execute(sql.replace("?", "%s"), params).fetchall()


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """A database of its own for this test run on the PostgreSQL server; dropped at the end."""
    try:
        import psycopg  # noqa: F401 - only whether it is installed
    except ImportError:
        _no_postgres("psycopg is not installed (pip install -e '.[test]')")
    try:
        admin = pg_connect(POSTGRES)
    except Exception as exc:  # whatever stops a connection, the reason is shown
        reason = " ".join(str(exc).split())
        _no_postgres(
            f"no PostgreSQL server answers at {POSTGRES} ({reason}); set DORA_TEST_POSTGRES"
        )
    name = f"dora_test_{os.getpid()}"
    with admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name}")
        admin.execute(f"CREATE DATABASE {name}")
        try:
            yield POSTGRES.rsplit("/", 1)[0] + f"/{name}"
        finally:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def _no_postgres(reason: str) -> None:
    if _REQUIRED:
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


@pytest.fixture(params=["sqlite", "postgres"])
def store_db(request: pytest.FixtureRequest, isolated: Path, monkeypatch: pytest.MonkeyPatch):
    """The store of the test on each engine: an SQLite file, or an empty schema of its own
    on the PostgreSQL server (``DORA_DB`` points at it either way)."""
    if request.param == "sqlite":
        return isolated / "dora.db"
    database = request.getfixturevalue("postgres_database")
    schema = f"test_{next(_schemas)}"
    with pg_connect(database) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    # the role and password come from libpq's variables, as a team's CI would pass them: a
    # URL without them is shown as it is in dora's messages
    from psycopg.conninfo import conninfo_to_dict

    given = conninfo_to_dict(database)
    for name, variable in (("user", "PGUSER"), ("password", "PGPASSWORD")):
        if given.get(name):
            monkeypatch.setenv(variable, str(given[name]))
    where = f"{given.get('host') or '127.0.0.1'}:{given.get('port') or 5432}"
    url = PostgresTarget(f"postgresql://{where}/{given['dbname']}?options=-csearch_path%3D{schema}")
    monkeypatch.setenv("DORA_DB", url)
    return url


def rows(db: Path | str, sql: str, params: tuple = ()) -> list[dict]:
    """What is in the store, read with plain sqlite3 (or psycopg); nothing if there is none."""
    if is_postgres(db):
        return pg_rows(str(db), sql, params) if PostgresTarget(db).exists() else []
    if not Path(db).exists():
        return []
    with closing(sqlite3.connect(db)) as conn, conn:
        conn.row_factory = sqlite3.Row
        return [dict(row) for row in conn.execute(sql, params)]


def execute(db: Path | str, sql: str, params: tuple = ()) -> None:
    """Change the store behind dora's back, as another program would."""
    if is_postgres(db):
        with pg_connect(str(db)) as conn:
            conn.execute(sql.replace("?", "%s"), params)
        return
    with closing(sqlite3.connect(db)) as conn, conn:
        conn.execute(sql, params)


def everything(db: Path | str) -> str:
    """All that the store holds, as text: every row of every table (PostgreSQL), or the
    bytes of the database and its journal files (SQLite)."""
    if is_postgres(db):
        tables = rows(db, "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
        return "\n".join(
            str(row) for t in tables for row in rows(db, f"SELECT * FROM {t['tablename']}")
        )
    files = Path(db).parent.glob(Path(db).name + "*")
    return "\n".join(path.read_bytes().decode("latin-1") for path in files)


def count(db: Path | str, table: str) -> int:
    found = rows(db, f"SELECT count(*) AS n FROM {table}")
    return found[0]["n"] if found else 0


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
