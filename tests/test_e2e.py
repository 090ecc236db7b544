"""The installed ``dora`` command, run as a CI step would run it: a real process, a real git
repository, a real environment."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import git, make_repo, rows
from dora import __version__


def dora_command() -> list[str]:
    """The console script installed beside this interpreter (the README's install puts it
    there)."""
    script = Path(sys.executable).parent / ("dora.exe" if os.name == "nt" else "dora")
    if not script.exists():
        pytest.fail(
            f"the dora command is not installed beside {sys.executable}: run the README's install"
        )
    return [str(script)]


def run(
    *args: str, cwd: Path | None = None, env: dict | None = None
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*dora_command(), *args],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_version_of_the_installed_command():
    done = run("--version")

    assert (done.returncode, done.stdout, done.stderr) == (0, f"dora {__version__}\n", "")


def test_python_dash_m_runs_the_same_cli():
    done = subprocess.run(
        [sys.executable, "-m", "dora", "--version"], capture_output=True, text=True, check=False
    )

    assert (done.returncode, done.stdout) == (0, f"dora {__version__}\n")


def test_a_ci_step_records_a_deployment_from_a_real_repository(tmp_path, db_path):
    repo = make_repo(tmp_path / "repo", origin="https://ci-bot:ghp_T0KEN@github.com/acme/api.git")
    head = git(repo, "rev-parse", "HEAD")

    done = run(
        "deployment",
        "--service",
        "api",
        "--env",
        "prod",
        "--started-at",
        "-3m",
        "--verbose",
        cwd=repo,
    )

    assert done.returncode == 0, done.stderr
    [row] = rows(db_path, "SELECT id, repository_url, commit_sha FROM deployments")
    assert done.stdout == f"{row['id']}\n"
    assert row["repository_url"] == "https://github.com/acme/api.git"
    assert row["commit_sha"] == head
    assert done.stderr.splitlines()[-1] == (
        f"Recorded deployment {row['id']} (api, env prod) in {db_path}"
    )
    assert "ghp_T0KEN" not in done.stdout + done.stderr
    assert b"ghp_T0KEN" not in db_path.read_bytes()


def test_an_incident_round_trip(db_path):
    opened = run("incident", "open", "--service", "api", "--started-at", "-1h", "--skip-git")
    incident_id = opened.stdout.strip()
    resolved = run("incident", "resolve", incident_id[:22])
    listed = run("incident", "list", "--format", "json")

    assert (opened.returncode, resolved.returncode, listed.returncode) == (0, 0, 0)
    [incident] = json.loads(listed.stdout)
    assert incident["id"] == incident_id
    assert incident["finished_at"] is not None
    assert resolved.stderr.startswith(f"Resolved incident {incident_id} after 1h")


def test_usage_error_in_a_real_process_is_one_line_and_exit_2(db_path):
    done = run("deployment", "--service", "api", "--started-at", "tomorrow")

    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.startswith("dora: error: --started-at: 'tomorrow' is not a timestamp")
    assert done.stderr.count("\n") == 1
    assert "Traceback" not in done.stderr
    assert not db_path.exists()


@pytest.mark.parametrize("format", ["json", "table"])
def test_a_reader_that_goes_away_ends_dora_quietly(db_path, format):
    from dora.events import Incident, build
    from dora.store import open_store

    with open_store(db_path) as store:  # more JSON than a pipe buffers
        for n in range(1500):
            store.save(build(Incident, {"services": [f"service-{n}"], "started_at": "-1h"}))
    command = " ".join(dora_command()) + f" incident list --limit 0 --format {format} | head -c 1"

    done = subprocess.run(
        ["bash", "-c", f"set -o pipefail; {command}"], capture_output=True, text=True, check=False
    )

    # Typer and rich each end their own way (1 or 0); what matters is no traceback, no noise
    assert done.returncode in (0, 1)
    assert (len(done.stdout), done.stderr) == (1, "")


def test_a_full_disk_on_stdout_is_one_line_after_the_event_is_kept(db_path):
    with open("/dev/full", "w") as full:
        done = subprocess.run(
            [
                *dora_command(),
                "deployment",
                "--service",
                "api",
                "--started-at",
                "-1m",
                "--skip-git",
            ],
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            check=False,
        )

    assert done.returncode == 1
    recorded, error = done.stderr.splitlines()
    assert recorded.startswith("Recorded deployment ")
    assert error == "dora: error: cannot write the output: No space left on device"
    assert len(rows(db_path, "SELECT id FROM deployments")) == 1


def test_recording_loads_neither_http_nor_table_code_nor_other_commands(db_path):
    # A CI step pays for every import on every deploy: httpx and rich stay unloaded, and so
    # do the other commands (their modules, and the options Typer would build for them).
    probe = (
        "import sys\n"
        "from dora.cli import main\n"
        "try:\n"
        "    main()\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'httpx', 'rich', 'matplotlib'})\n"
        "print('loaded:', heavy, file=sys.stderr)\n"
        "cli = sorted(m for m in sys.modules if m.startswith('dora.cli.'))\n"
        "print('commands:', cli, file=sys.stderr)\n"
    )
    argv = ["dora", "deployment", "--service", "api", "--started-at", "-1m", "--skip-git"]

    done = subprocess.run(
        [sys.executable, "-c", f"import sys; sys.argv = {argv!r}\n{probe}"],
        capture_output=True,
        text=True,
        check=False,
    )

    assert done.stderr.splitlines()[-2] == "loaded: []"
    assert done.stderr.splitlines()[-1] == (
        "commands: ['dora.cli._common', 'dora.cli._help', 'dora.cli._runtime', "
        "'dora.cli.deployment', 'dora.cli.deployment.record']"
    )
    assert len(rows(db_path, "SELECT id FROM deployments")) == 1


def test_a_ci_pipeline_records_deployments_in_a_repository_and_reports_lead_time(tmp_path, db_path):
    repo = make_repo(tmp_path / "repo", origin="https://github.com/acme/api.git")
    first = run(
        "deployment", "--service", "api", "--env", "prod", "--started-at", "-2h",
        "--finished-at", "-90m", cwd=repo,
    )  # fmt: skip
    git(repo, "commit", "--quiet", "--allow-empty", "-m", "fix checkout")
    git(repo, "commit", "--quiet", "--allow-empty", "-m", "faster cart")
    second = run("deployment", "--service", "api", "--env", "prod", "--started-at", "-1m", cwd=repo)
    opened = run(
        "incident", "open", "--service", "api", "--env", "prod", "--started-at", "-30m", cwd=repo
    )
    report = run("metrics", "--format", "json", "--by", "service,env")

    assert [d.returncode for d in (first, second, opened, report)] == [0, 0, 0, 0]
    assert report.stderr == ""
    [group] = json.loads(report.stdout)["groups"]
    assert (group["service"], group["env"], group["deployments"]) == ("api", "prod", 2)
    assert (group["failures"], group["change_failure_rate"], group["open_failures"]) == (1, 0.5, 1)
    # the incident started after the first deployment finished, before the second did
    assert (group["failed_deployments"], group["unrecovered_failed_deployments"]) == (1, 1)
    assert group["median_lead_time_seconds"] is not None  # the two new commits, just made
    assert 0 <= group["median_lead_time_seconds"] < 60
    assert len(rows(db_path, "SELECT sha FROM deployment_commits")) == 2


def closed_stdout(*args: str) -> subprocess.CompletedProcess:
    """The installed command run as ``dora ARGS >&-``: with no standard output at all."""
    return subprocess.run(
        ["bash", "-c", 'exec "$@" >&-', "dora", *dora_command(), *args],
        stdout=None,
        stderr=subprocess.PIPE,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_closed_stdout_is_a_one_line_failure_and_the_deployment_is_kept(db_path):
    done = closed_stdout("deployment", "--service", "api", "--started-at", "-3m", "--skip-git")

    [row] = rows(db_path, "SELECT id FROM deployments")
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        f"Recorded deployment {row['id']} (api) in {db_path}",
        "dora: error: cannot write the output: standard output is closed",
    ]


def test_a_closed_stdout_still_lets_the_report_fail_cleanly(db_path):
    assert (
        run("deployment", "--service", "api", "--started-at", "-3m", "--skip-git").returncode == 0
    )

    done = closed_stdout("metrics")

    assert (done.returncode, done.stderr) == (
        1,
        "dora: error: cannot write the output: standard output is closed\n",
    )
