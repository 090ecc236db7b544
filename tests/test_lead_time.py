"""Lead time for changes: the commits each deployment ships, and the median that comes of them.

A deployment recorded inside a repository keeps the commits reachable from its SHA and not
from the previous deployment's SHA (same service and env), merges skipped, with their
committer times; ``dora metrics`` reports the median of (finished_at - commit time).
"""

from __future__ import annotations

import json
import os
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import pytest

from conftest import git, rows
from dora import gitmeta

SINCE, UNTIL = "2026-10-01T00:00:00Z", "2026-11-20T00:00:00Z"
H = 3600
ORIGIN = "https://example.com/acme/api.git"


@pytest.fixture
def db_path(store_db):
    """Every test here runs on both engines."""
    return store_db


def at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(timezone.utc)


def ns(text: str) -> int:
    return int(at(text).timestamp()) * 10**9


IDENTITY = ("-c", "user.name=t", "-c", "user.email=t@example.com")


def dated_git(repo: Path, when: str, *args: str) -> str:
    """Run git in ``repo`` with author and committer dates ``when``; the SHA of HEAD after."""
    stamp = f"@{int(at(when).timestamp())} +0000"
    env = {**os.environ, "GIT_COMMITTER_DATE": stamp, "GIT_AUTHOR_DATE": stamp}
    subprocess.run(["git", *IDENTITY, *args], cwd=repo, env=env, check=True, capture_output=True)
    return git(repo, "rev-parse", "HEAD")


def commit(repo: Path, when: str, message: str = "change") -> str:
    """An empty commit in ``repo`` committed at ``when``; its SHA."""
    return dated_git(repo, when, "commit", "--quiet", "--allow-empty", "-m", message)


def merge_no_ff(repo: Path, branch: str, when: str) -> str:
    """A merge commit of ``branch`` into the current branch, even if it could fast-forward."""
    return dated_git(repo, when, "merge", "--quiet", "--no-ff", "-m", f"merge {branch}", branch)


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A repository with an origin and one commit (2026-11-01T00:00Z), and the working
    directory in it."""
    path = tmp_path / "repo"
    path.mkdir()
    git(path, "init", "--quiet")
    git(path, "remote", "add", "origin", ORIGIN)
    commit(path, "2026-11-01T00:00:00Z", "initial")
    monkeypatch.chdir(path)
    return path


@pytest.fixture(autouse=True)
def _clock(frozen_now: datetime) -> datetime:
    return frozen_now


def deploy(dora, *args: str, service: str = "api", env: str | None = "prod", finished: str):
    """Record a deployment that finished at ``finished`` (started an hour earlier)."""
    started = datetime.fromtimestamp(at(finished).timestamp() - H, timezone.utc)
    flags = ["--service", service, "--started-at", started.isoformat(), "--finished-at", finished]
    if env is not None:
        flags += ["--env", env]
    return dora("deployment", *flags, *args)


def recorded(result) -> str:
    """The id a successful deployment printed."""
    assert result.exit_code == 0, result.stderr
    return result.stdout.strip()


def shipped(db: Path, deployment_id: str) -> list[tuple[str, int]]:
    return [
        (row["sha"], row["committed_at"])
        for row in rows(
            db,
            "SELECT sha, committed_at FROM deployment_commits WHERE deployment_id = ? "
            "ORDER BY committed_at DESC, sha",
            (deployment_id,),
        )
    ]


def all_commit_rows(db: Path) -> list[dict]:
    return rows(db, "SELECT * FROM deployment_commits")


def warnings(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("dora: warning:")]


def lead_time(dora, *args: str) -> tuple[list[float | None], float | None]:
    """The median lead time of each group and of the total, from ``dora metrics``."""
    result = dora("metrics", "--format", "json", "--since", SINCE, "--until", UNTIL, *args)
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    groups = [group["median_lead_time_seconds"] for group in report["groups"]]
    return groups, report["total"]["median_lead_time_seconds"]


# --- the CLI ---------------------------------------------------------------------------


def test_a_first_deployment_records_no_commits_and_no_lead_time(dora, db_path, repo):
    commit(repo, "2026-11-01T06:00:00Z")
    result = deploy(dora, finished="2026-11-02T00:00:00Z")

    assert recorded(result)
    assert warnings(result.stderr) == []
    assert all_commit_rows(db_path) == []
    assert lead_time(dora) == ([None], None)


def test_a_second_deployment_records_the_non_merge_commits_since_the_first(dora, db_path, repo):
    first_sha = git(repo, "rev-parse", "HEAD")
    first = recorded(deploy(dora, finished="2026-11-01T01:00:00Z"))
    trunk = git(repo, "symbolic-ref", "--short", "HEAD")
    git(repo, "checkout", "--quiet", "-b", "side")
    side = commit(repo, "2026-11-02T00:00:00Z", "side")
    git(repo, "checkout", "--quiet", trunk)
    main = commit(repo, "2026-11-02T06:00:00Z", "main")
    merge = merge_no_ff(repo, "side", "2026-11-02T12:00:00Z")

    result = deploy(dora, finished="2026-11-03T00:00:00Z")
    second = recorded(result)

    assert warnings(result.stderr) == []
    assert rows(db_path, "SELECT commit_sha FROM deployments WHERE id = ?", (second,)) == [
        {"commit_sha": merge}
    ]
    assert shipped(db_path, first) == []
    assert shipped(db_path, second) == [
        (main, ns("2026-11-02T06:00:00Z")),
        (side, ns("2026-11-02T00:00:00Z")),
    ]
    assert first_sha not in {sha for sha, _ in shipped(db_path, second)}
    # leads: main 18h, side 24h; the median of two is their mean
    assert lead_time(dora) == ([21 * H], 21 * H)


def test_the_median_lead_time_of_an_odd_number_of_commits_is_the_middle_one(dora, db_path, repo):
    recorded(deploy(dora, finished="2026-11-01T01:00:00Z"))
    commit(repo, "2026-11-02T00:00:00Z")  # 24h before the deployment finished
    commit(repo, "2026-11-02T20:00:00Z")  # 4h
    commit(repo, "2026-11-02T23:00:00Z")  # 1h
    recorded(deploy(dora, finished="2026-11-03T00:00:00Z"))

    assert lead_time(dora) == ([4 * H], 4 * H)


def test_the_median_lead_time_spans_the_commits_of_all_deployments_of_a_group(dora, db_path, repo):
    recorded(deploy(dora, finished="2026-11-01T01:00:00Z"))
    commit(repo, "2026-11-02T00:00:00Z")  # 2h before the second deployment
    recorded(deploy(dora, finished="2026-11-02T02:00:00Z"))
    commit(repo, "2026-11-03T00:00:00Z")  # 10h before the third
    commit(repo, "2026-11-03T08:00:00Z")  # 2h
    recorded(deploy(dora, finished="2026-11-03T10:00:00Z"))

    assert len(all_commit_rows(db_path)) == 3
    assert lead_time(dora) == ([2 * H], 2 * H)  # of 2h, 2h, 10h


def test_a_commit_dated_after_its_deployment_finished_has_zero_lead_time(dora, db_path, repo):
    recorded(deploy(dora, finished="2026-11-01T01:00:00Z"))
    late = commit(repo, "2026-11-05T00:00:00Z")  # a committer clock ahead of the deploy's
    second = recorded(deploy(dora, finished="2026-11-03T00:00:00Z"))

    assert shipped(db_path, second) == [(late, ns("2026-11-05T00:00:00Z"))]
    assert lead_time(dora) == ([0], 0)


def test_a_deployment_to_another_env_is_not_the_previous_deployment(dora, db_path, repo):
    recorded(deploy(dora, env="staging", finished="2026-11-01T01:00:00Z"))
    commit(repo, "2026-11-01T06:00:00Z")
    prod = recorded(deploy(dora, env="prod", finished="2026-11-02T00:00:00Z"))

    assert shipped(db_path, prod) == []
    assert lead_time(dora) == ([None], None)


def test_a_deployment_of_another_service_is_not_the_previous_deployment(dora, db_path, repo):
    recorded(deploy(dora, service="web", finished="2026-11-01T01:00:00Z"))
    commit(repo, "2026-11-01T06:00:00Z")
    api = recorded(deploy(dora, service="api", finished="2026-11-02T00:00:00Z"))

    assert shipped(db_path, api) == []
    assert lead_time(dora, "--service", "api") == ([None], None)


def test_a_deployment_without_env_is_not_the_previous_of_one_with_an_env(dora, db_path, repo):
    recorded(deploy(dora, env=None, finished="2026-11-01T01:00:00Z"))
    commit(repo, "2026-11-01T06:00:00Z")
    prod = recorded(deploy(dora, env="prod", finished="2026-11-02T00:00:00Z"))

    assert shipped(db_path, prod) == []


def test_the_previous_deployment_is_the_latest_of_the_same_service_and_env(dora, db_path, repo):
    recorded(deploy(dora, env="prod", finished="2026-11-01T01:00:00Z"))  # at the initial commit
    c1 = commit(repo, "2026-11-01T06:00:00Z")
    recorded(deploy(dora, env="prod", finished="2026-11-01T12:00:00Z"))
    c2 = commit(repo, "2026-11-01T18:00:00Z")
    recorded(deploy(dora, env="staging", finished="2026-11-01T20:00:00Z"))
    recorded(deploy(dora, service="web", env="prod", finished="2026-11-01T21:00:00Z"))
    c3 = commit(repo, "2026-11-01T22:00:00Z")
    third = recorded(deploy(dora, env="prod", finished="2026-11-02T00:00:00Z"))

    assert [sha for sha, _ in shipped(db_path, third)] == [c3, c2]
    assert c1 not in [sha for sha, _ in shipped(db_path, third)]


def test_a_backfilled_deployment_counts_from_the_one_that_finished_before_it(dora, db_path, repo):
    base = git(repo, "rev-parse", "HEAD")
    c1 = commit(repo, "2026-11-01T06:00:00Z")
    c2 = commit(repo, "2026-11-01T08:00:00Z")
    recorded(deploy(dora, "--git-commit-sha", base, finished="2026-11-01T01:00:00Z"))
    later = recorded(deploy(dora, "--git-commit-sha", c2, finished="2026-11-02T00:00:00Z"))
    assert len(shipped(db_path, later)) == 2
    # recorded last, but finished between the two
    middle = recorded(deploy(dora, "--git-commit-sha", c1, finished="2026-11-01T07:00:00Z"))

    assert shipped(db_path, middle) == [(c1, ns("2026-11-01T06:00:00Z"))]
    assert shipped(db_path, later) == [(c2, ns("2026-11-01T08:00:00Z"))]  # c1 is not counted twice


def test_redeploying_the_same_sha_records_no_commits_and_no_warning(dora, db_path, repo):
    commit(repo, "2026-11-01T06:00:00Z")
    recorded(deploy(dora, finished="2026-11-01T12:00:00Z"))
    result = deploy(dora, finished="2026-11-02T00:00:00Z")

    assert recorded(result)
    assert warnings(result.stderr) == []
    assert all_commit_rows(db_path) == []


def test_a_rollback_to_an_older_sha_records_no_commits(dora, db_path, repo):
    old = git(repo, "rev-parse", "HEAD")
    commit(repo, "2026-11-01T06:00:00Z")
    recorded(deploy(dora, finished="2026-11-01T12:00:00Z"))
    result = deploy(dora, "--git-commit-sha", old, finished="2026-11-02T00:00:00Z")

    assert recorded(result)
    assert warnings(result.stderr) == []
    assert all_commit_rows(db_path) == []


def test_skip_git_records_no_commits(dora, db_path, repo):
    recorded(deploy(dora, finished="2026-11-01T01:00:00Z"))
    head = commit(repo, "2026-11-01T06:00:00Z")
    skipped = recorded(deploy(dora, "--skip-git", finished="2026-11-02T00:00:00Z"))
    given = recorded(
        deploy(dora, "--skip-git", "--git-commit-sha", head, finished="2026-11-03T00:00:00Z")
    )

    assert rows(db_path, "SELECT commit_sha FROM deployments WHERE id = ?", (skipped,)) == [
        {"commit_sha": None}
    ]
    assert rows(db_path, "SELECT commit_sha FROM deployments WHERE id = ?", (given,)) == [
        {"commit_sha": head}
    ]
    assert all_commit_rows(db_path) == []


def test_a_sha_that_is_not_in_the_repository_records_no_commits_and_no_warning(dora, db_path, repo):
    recorded(deploy(dora, finished="2026-11-01T01:00:00Z"))
    commit(repo, "2026-11-01T06:00:00Z")
    result = deploy(dora, "--git-commit-sha", "b" * 40, finished="2026-11-02T00:00:00Z")

    deployment = recorded(result)
    assert warnings(result.stderr) == []
    assert rows(db_path, "SELECT commit_sha FROM deployments WHERE id = ?", (deployment,)) == [
        {"commit_sha": "b" * 40}
    ]
    assert all_commit_rows(db_path) == []


def test_deployments_recorded_outside_any_repository_record_no_commits_and_no_warning(
    dora, db_path
):
    url = ("--git-repository-url", ORIGIN)
    first = deploy(dora, *url, "--git-commit-sha", "a" * 40, finished="2026-11-01T01:00:00Z")
    second = deploy(dora, *url, "--git-commit-sha", "b" * 40, finished="2026-11-02T00:00:00Z")

    assert recorded(first)
    assert recorded(second)
    assert warnings(first.stderr) == warnings(second.stderr) == []
    assert rows(db_path, "SELECT count(*) AS n FROM deployments") == [{"n": 2}]
    assert all_commit_rows(db_path) == []


@pytest.mark.parametrize("first_url", ["unknown", "the same", "the same, as a path"])
def test_a_shallow_clone_without_the_previous_commit_warns_and_records_no_commits(
    dora, db_path, tmp_path, monkeypatch, first_url
):
    source = tmp_path / "source"
    source.mkdir()
    git(source, "init", "--quiet")
    old = commit(source, "2026-11-01T00:00:00Z")
    for hour in (2, 4, 6):
        commit(source, f"2026-11-01T{hour:02}:00:00Z")
    url = {"unknown": [], "the same": [source.as_uri()], "the same, as a path": [str(source)]}
    flags = [arg for given in url[first_url] for arg in ("--git-repository-url", given)]
    recorded(deploy(dora, "--git-commit-sha", old, *flags, finished="2026-11-01T01:00:00Z"))
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "--quiet", "--depth", "1", source.as_uri(), str(clone))
    monkeypatch.chdir(clone)

    result = deploy(dora, finished="2026-11-02T00:00:00Z")

    deployment = recorded(result)
    assert warnings(result.stderr) == [
        f"dora: warning: the previous deployment's commit {old[:12]} is not in this clone "
        "(a shallow clone? fetch with full history), so no lead time is recorded"
    ]
    assert rows(db_path, "SELECT commit_sha FROM deployments WHERE id = ?", (deployment,)) == [
        {"commit_sha": git(clone, "rev-parse", "HEAD")}
    ]
    assert all_commit_rows(db_path) == []
    # the warning comes after the event is kept: the status line says where
    lines = result.stderr.splitlines()
    assert lines[0].startswith("dora: warning:")
    assert lines[1].startswith(f"Recorded deployment {deployment} (api, env prod) in ")


def test_a_deployment_from_another_repository_than_the_previous_one_says_so(
    dora, db_path, repo, tmp_path, monkeypatch
):
    # the service moved to a new repository: its history does not hold the old commits
    git(
        repo,
        "remote",
        "set-url",
        "origin",
        "https://x-access-token:ghs_S3CRET@example.com/acme/api.git",
    )
    recorded(deploy(dora, finished="2026-11-01T01:00:00Z"))
    moved = tmp_path / "moved"
    moved.mkdir()
    git(moved, "init", "--quiet")
    git(moved, "remote", "add", "origin", "https://oauth2:glpat-S3CRET@example.com/acme/api-next")
    commit(moved, "2026-11-01T06:00:00Z", "import")
    monkeypatch.chdir(moved)

    result = deploy(dora, finished="2026-11-02T00:00:00Z")

    deployment = recorded(result)
    assert warnings(result.stderr) == [
        "dora: warning: the previous deployment of this service and env was recorded from "
        "another repository (https://example.com/acme/api.git, not "
        "https://example.com/acme/api-next), so no lead time is recorded"
    ]
    assert "S3CRET" not in result.stderr
    assert shipped(db_path, deployment) == []
    assert all_commit_rows(db_path) == []


def test_a_full_clone_without_the_previous_commit_says_history_may_have_been_rewritten(
    dora, db_path, tmp_path, monkeypatch
):
    source = tmp_path / "source"
    source.mkdir()
    git(source, "init", "--quiet")
    commit(source, "2026-11-01T00:00:00Z", "initial")
    gone = commit(source, "2026-11-01T02:00:00Z", "deployed, then rewritten")
    first = tmp_path / "first"
    git(tmp_path, "clone", "--quiet", source.as_uri(), str(first))
    monkeypatch.chdir(first)
    recorded(deploy(dora, finished="2026-11-01T03:00:00Z"))
    # a force-push: the deployed commit is amended away, and a fresh full clone lacks it
    dated_git(
        source,
        "2026-11-01T04:00:00Z",
        "commit",
        "--quiet",
        "--amend",
        "--allow-empty",
        "-m",
        "amended",
    )
    later = tmp_path / "later"
    git(tmp_path, "clone", "--quiet", source.as_uri(), str(later))
    monkeypatch.chdir(later)

    result = deploy(dora, finished="2026-11-02T00:00:00Z")

    deployment = recorded(result)
    assert warnings(result.stderr) == [
        f"dora: warning: the previous deployment's commit {gone[:12]} is not in this "
        "repository, a full clone (was its history rewritten, by a force-push say, or was "
        "that deployment made from a fork?), so no lead time is recorded"
    ]
    assert shipped(db_path, deployment) == []
    assert all_commit_rows(db_path) == []


def test_a_previous_commit_that_is_here_counts_whatever_url_it_was_recorded_with(
    dora, db_path, repo
):
    # a renamed repository: the URL changed, the history did not
    old_name = ("--git-repository-url", "https://example.com/acme/api-old.git")
    recorded(deploy(dora, *old_name, finished="2026-11-01T01:00:00Z"))
    change = commit(repo, "2026-11-01T06:00:00Z")

    result = deploy(dora, finished="2026-11-02T00:00:00Z")

    deployment = recorded(result)
    assert warnings(result.stderr) == []
    assert shipped(db_path, deployment) == [(change, ns("2026-11-01T06:00:00Z"))]


def test_rerecording_an_id_replaces_its_commits(dora, db_path, repo):
    recorded(deploy(dora, finished="2026-11-01T01:00:00Z"))
    c1 = commit(repo, "2026-11-01T06:00:00Z")
    c2 = commit(repo, "2026-11-01T08:00:00Z")
    the_id = "deploy-0000000000001"

    recorded(deploy(dora, "--id", the_id, finished="2026-11-02T00:00:00Z"))
    assert shipped(db_path, the_id) == [
        (c2, ns("2026-11-01T08:00:00Z")),
        (c1, ns("2026-11-01T06:00:00Z")),
    ]

    recorded(deploy(dora, "--id", the_id, finished="2026-11-02T00:00:00Z"))
    assert len(all_commit_rows(db_path)) == 2

    recorded(deploy(dora, "--id", the_id, "--git-commit-sha", c1, finished="2026-11-02T00:00:00Z"))
    assert shipped(db_path, the_id) == [(c1, ns("2026-11-01T06:00:00Z"))]
    assert len(all_commit_rows(db_path)) == 1
    assert lead_time(dora) == ([18 * H], 18 * H)


def test_recording_an_id_again_from_outside_the_repository_keeps_its_commits(
    dora, db_path, repo, tmp_path, monkeypatch
):
    # a job that records inside the checkout, then updates the event from elsewhere
    recorded(deploy(dora, finished="2026-11-01T01:00:00Z"))
    head = commit(repo, "2026-11-01T06:00:00Z")
    the_id = "deploy-0000000000002"
    recorded(deploy(dora, "--id", the_id, finished="2026-11-02T00:00:00Z"))
    monkeypatch.chdir(tmp_path / "work")

    again = deploy(
        dora, "--id", the_id, "--git-repository-url", ORIGIN, "--git-commit-sha", head,
        "--version", "1.2", finished="2026-11-02T00:00:00Z",
    )  # fmt: skip

    recorded(again)
    assert warnings(again.stderr) == []
    assert shipped(db_path, the_id) == [(head, ns("2026-11-01T06:00:00Z"))]
    assert lead_time(dora) == ([18 * H], 18 * H)


def test_recording_an_id_again_without_a_commit_drops_its_commits(dora, db_path, repo):
    recorded(deploy(dora, finished="2026-11-01T01:00:00Z"))
    commit(repo, "2026-11-01T06:00:00Z")
    the_id = "deploy-0000000000003"
    recorded(deploy(dora, "--id", the_id, finished="2026-11-02T00:00:00Z"))

    recorded(deploy(dora, "--id", the_id, "--skip-git", finished="2026-11-02T00:00:00Z"))

    assert rows(db_path, "SELECT commit_sha FROM deployments WHERE id = ?", (the_id,)) == [
        {"commit_sha": None}
    ]
    assert shipped(db_path, the_id) == []
    assert lead_time(dora) == ([None], None)


def test_at_most_max_commits_are_kept_and_they_are_the_newest(dora, db_path, repo, monkeypatch):
    monkeypatch.setattr(gitmeta, "MAX_COMMITS", 3)
    recorded(deploy(dora, finished="2026-11-01T01:00:00Z"))
    made = [commit(repo, f"2026-11-01T{hour:02}:00:00Z") for hour in (2, 3, 4, 5, 6)]
    deployment = recorded(deploy(dora, finished="2026-11-02T00:00:00Z"))

    assert shipped(db_path, deployment) == [
        (made[4], ns("2026-11-01T06:00:00Z")),
        (made[3], ns("2026-11-01T05:00:00Z")),
        (made[2], ns("2026-11-01T04:00:00Z")),
    ]


def test_an_incident_records_no_commits(dora, db_path, repo):
    recorded(deploy(dora, finished="2026-11-01T01:00:00Z"))
    commit(repo, "2026-11-01T06:00:00Z")
    result = dora(
        "incident", "open", "--service", "api", "--env", "prod",
        "--started-at", "2026-11-02T00:00:00Z",
    )  # fmt: skip

    assert result.exit_code == 0, result.stderr
    assert warnings(result.stderr) == []
    assert rows(db_path, "SELECT commit_sha FROM incidents") == [
        {"commit_sha": git(repo, "rev-parse", "HEAD")}
    ]
    assert all_commit_rows(db_path) == []


def test_a_dry_run_records_no_commits(dora, db_path, repo):
    recorded(deploy(dora, finished="2026-11-01T01:00:00Z"))
    commit(repo, "2026-11-01T06:00:00Z")
    result = deploy(dora, "--dry-run", finished="2026-11-02T00:00:00Z")

    assert result.exit_code == 0, result.stderr
    assert rows(db_path, "SELECT count(*) AS n FROM deployments") == [{"n": 1}]
    assert all_commit_rows(db_path) == []


# --- the library -----------------------------------------------------------------------


def test_shipped_commits_of_a_first_deployment_are_none(repo):
    head = git(repo, "rev-parse", "HEAD")
    assert gitmeta.shipped_commits(head, None, cwd=repo) == ([], None)


def test_shipped_commits_of_the_same_sha_are_none(repo):
    head = git(repo, "rev-parse", "HEAD")
    assert gitmeta.shipped_commits(head, head, cwd=repo) == ([], None)


def test_shipped_commits_are_newest_first_without_merges_with_committer_dates(repo):
    base = git(repo, "rev-parse", "HEAD")
    trunk = git(repo, "symbolic-ref", "--short", "HEAD")
    git(repo, "checkout", "--quiet", "-b", "side")
    side = commit(repo, "2026-11-02T00:00:00Z")
    git(repo, "checkout", "--quiet", trunk)
    main = commit(repo, "2026-11-02T06:00:00Z")
    merge = merge_no_ff(repo, "side", "2026-11-02T12:00:00Z")

    assert gitmeta.shipped_commits(merge, base, cwd=repo) == (
        [
            gitmeta.Commit(main, at("2026-11-02T06:00:00Z"), "change"),
            gitmeta.Commit(side, at("2026-11-02T00:00:00Z"), "change"),
        ],
        None,
    )


def test_shipped_commits_outside_a_repository_are_unknown_without_a_warning(tmp_path):
    assert gitmeta.shipped_commits("a" * 40, "b" * 40, cwd=tmp_path / "work") == (None, None)


def test_shipped_commits_since_a_commit_a_full_clone_lacks_are_unknown_with_a_warning(repo):
    head = git(repo, "rev-parse", "HEAD")
    commits, warning = gitmeta.shipped_commits(head, "c" * 40, cwd=repo)

    assert commits is None
    assert warning == (
        f"the previous deployment's commit {'c' * 12} is not in this repository, a full "
        "clone (was its history rewritten, by a force-push say, or was that deployment made "
        "from a fork?), so no lead time is recorded"
    )


def test_shipped_commits_since_a_commit_of_another_repository_say_so(repo):
    head = git(repo, "rev-parse", "HEAD")
    commits, warning = gitmeta.shipped_commits(
        head,
        "c" * 40,
        cwd=repo,
        repository_url="git@example.com:acme/web.git",
        previous_repository_url="https://example.com/acme/api.git",
    )

    assert commits is None
    assert warning == (
        "the previous deployment of this service and env was recorded from another "
        "repository (https://example.com/acme/api.git, not git@example.com:acme/web.git), "
        "so no lead time is recorded"
    )


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("https://github.com/acme/api.git", "git@github.com:acme/api.git"),
        ("https://github.com/Acme/API", "ssh://git@github.com:22/acme/api.git/"),
        ("https://token@gitlab.com/acme/api.git", "https://gitlab.com/acme/api"),
        ("file:///srv/git/api.git", "/srv/git/api"),
    ],
)
def test_one_repository_under_other_url_forms_is_the_same_repository(one, other):
    assert gitmeta.same_repository(one, other)


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("https://github.com/acme/api.git", "https://github.com/acme/web.git"),
        ("https://github.com/acme/api", "https://gitlab.com/acme/api"),
        ("git@github.com:acme/api.git", "git@github.com:fork/api.git"),
    ],
)
def test_other_repositories_are_not_the_same_repository(one, other):
    assert not gitmeta.same_repository(one, other)


def test_a_commit_git_cannot_date_is_left_out_and_the_deployment_kept(dora, db_path, repo):
    recorded(deploy(dora, finished="2026-11-01T01:00:00Z"))
    dated = commit(repo, "2026-11-01T06:00:00Z")
    tree = git(repo, "rev-parse", "HEAD^{tree}")
    undated = subprocess.run(
        ["git", "hash-object", "-t", "commit", "-w", "--stdin", "--literally"],
        input=f"tree {tree}\nparent {dated}\nauthor t <t@example.com> -86400 +0000\n"
        "committer t <t@example.com> -86400 +0000\n\nbefore 1970\n",
        cwd=repo, capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip

    result = deploy(dora, "--git-commit-sha", undated, finished="2026-11-02T00:00:00Z")

    deployment = recorded(result)
    assert shipped(db_path, deployment) == [(dated, ns("2026-11-01T06:00:00Z"))]


def test_deployments_that_finish_at_the_same_moment_share_no_commit(dora, db_path, repo):
    recorded(deploy(dora, finished="2026-11-01T01:00:00Z"))
    x = commit(repo, "2026-11-02T00:00:00Z")
    y = commit(repo, "2026-11-03T00:00:00Z")
    first = recorded(
        deploy(
            dora,
            "--id",
            "deploy-same-time-1",
            "--git-commit-sha",
            x,
            finished="2026-11-03T01:00:00Z",
        )
    )
    second = recorded(
        deploy(
            dora,
            "--id",
            "deploy-same-time-2",
            "--git-commit-sha",
            y,
            finished="2026-11-03T01:00:00Z",
        )
    )

    assert shipped(db_path, first) == [(x, ns("2026-11-02T00:00:00Z"))]
    assert shipped(db_path, second) == [(y, ns("2026-11-03T00:00:00Z"))]


def test_a_roll_forward_after_a_rollback_does_not_count_a_commit_twice(dora, db_path, repo):
    x = commit(repo, "2026-11-02T00:00:00Z")
    y = commit(repo, "2026-11-03T00:00:00Z")
    recorded(deploy(dora, "--git-commit-sha", x, finished="2026-11-02T01:00:00Z"))
    forward = recorded(deploy(dora, "--git-commit-sha", y, finished="2026-11-03T01:00:00Z"))
    back = recorded(deploy(dora, "--git-commit-sha", x, finished="2026-11-03T02:00:00Z"))
    again = recorded(deploy(dora, "--git-commit-sha", y, finished="2026-11-03T03:00:00Z"))

    assert shipped(db_path, forward) == [(y, ns("2026-11-03T00:00:00Z"))]
    assert shipped(db_path, back) == shipped(db_path, again) == []
    assert lead_time(dora) == ([H], H)  # y reached production after 1h, once


def test_a_backfill_takes_its_commits_from_a_later_deployment_past_one_without_a_sha(
    dora, db_path, repo
):
    base = git(repo, "rev-parse", "HEAD")
    x = commit(repo, "2026-11-02T00:00:00Z")
    y = commit(repo, "2026-11-03T00:00:00Z")
    recorded(deploy(dora, "--git-commit-sha", base, finished="2026-11-01T01:00:00Z"))
    recorded(deploy(dora, "--skip-git", finished="2026-11-03T12:00:00Z"))
    later = recorded(deploy(dora, "--git-commit-sha", y, finished="2026-11-04T00:00:00Z"))
    backfill = recorded(deploy(dora, "--git-commit-sha", x, finished="2026-11-02T01:00:00Z"))

    assert shipped(db_path, backfill) == [(x, ns("2026-11-02T00:00:00Z"))]
    assert shipped(db_path, later) == [(y, ns("2026-11-03T00:00:00Z"))]


def test_shipped_commits_carry_their_subject_and_the_commit_they_revert(repo):
    base = git(repo, "rev-parse", "HEAD")
    feature = commit(repo, "2026-11-02T00:00:00Z", "feat: a cache\n\nwith a body\x1fand odd bytes")
    # the message git revert writes
    revert = commit(
        repo, "2026-11-02T04:00:00Z", f'Revert "feat: a cache"\n\nThis reverts commit {feature}.'
    )
    hotfix = commit(repo, "2026-11-02T08:00:00Z", "Hotfix: checkout 500s")

    commits, warning = gitmeta.shipped_commits(hotfix, base, cwd=repo)

    assert warning is None
    assert [(c.sha, c.subject, c.reverts) for c in commits] == [
        (hotfix, "Hotfix: checkout 500s", None),
        (revert, 'Revert "feat: a cache"', feature),
        (feature, "feat: a cache", None),
    ]


def test_a_subject_in_another_encoding_is_kept_as_text(repo):
    base = git(repo, "rev-parse", "HEAD")
    latin = dated_git(
        repo,
        "2026-11-02T00:00:00Z",
        "-c",
        "i18n.commitEncoding=ISO-8859-1",
        "commit",
        "--quiet",
        "--allow-empty",
        "-m",
        os.fsdecode(b"caf\xe9 fix"),  # the byte 0xE9: Latin-1, as the header says
    )
    undeclared = commit(repo, "2026-11-02T01:00:00Z", os.fsdecode(b"na\xefve"))

    commits, _ = gitmeta.shipped_commits(undeclared, base, cwd=repo)

    undeclared_subject, latin_subject = (c.subject for c in commits)
    assert latin_subject == "caf\u00e9 fix"
    # git may read undeclared bytes as Latin-1 or leave them for dora to replace: text
    assert undeclared_subject in ("na\u00efve", "na\ufffdve")
    assert latin == commits[1].sha


def test_a_deployment_records_the_subject_and_reverted_commit_of_what_it_ships(dora, db_path, repo):
    recorded(deploy(dora, finished="2026-11-01T01:00:00Z"))
    feature = commit(repo, "2026-11-02T00:00:00Z", "feat: a cache")
    revert = commit(
        repo, "2026-11-02T06:00:00Z", f'Revert "feat: a cache"\n\nThis reverts commit {feature}.'
    )

    second = recorded(deploy(dora, finished="2026-11-03T00:00:00Z"))

    assert rows(
        db_path,
        "SELECT sha, subject, reverts FROM deployment_commits WHERE deployment_id = ? "
        "ORDER BY committed_at",
        (second,),
    ) == [
        {"sha": feature, "subject": "feat: a cache", "reverts": None},
        {"sha": revert, "subject": 'Revert "feat: a cache"', "reverts": feature},
    ]
