"""Where an event's repository URL and commit SHA come from, one field at a time."""

from __future__ import annotations

import itertools
import logging
import subprocess
from pathlib import Path

import pytest

import conftest
from conftest import git
from dora import gitmeta
from dora.gitmeta import CI_PROVIDERS, GitMeta, detect_ci, resolve

SECRET = "secret"
ORIGIN = f"https://user:{SECRET}@example.com/o/r.git"
ORIGIN_STRIPPED = "https://example.com/o/r.git"

FLAG_URL = "https://flag.example.com/o/r.git"
FLAG_SHA = "f" * 40
DD_URL = "https://dd.example.com/o/r.git"
DD_SHA = "d" * 40
CI_URL = "https://github.com/ci/r.git"
CI_SHA = "c" * 40


def make_repo(path: Path, *, commit: bool = True, origin: str | None = ORIGIN) -> Path:
    return conftest.make_repo(path, commit=commit, origin=origin)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A git repository with one commit and an origin whose URL carries a password."""
    return make_repo(tmp_path / "repo")


@pytest.fixture
def head(repo: Path) -> str:
    return git(repo, "rev-parse", "HEAD")


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch):
    """caplog for dora.gitmeta, even after the CLI turned off propagation on 'dora'."""
    monkeypatch.setattr(logging.getLogger("dora"), "propagate", True)
    caplog.set_level(logging.DEBUG, logger="dora.gitmeta")
    return caplog


def values(meta: GitMeta) -> tuple[str | None, str | None]:
    return meta.repository_url, meta.commit_sha


def values_of(
    repository_url: str | None = None, commit_sha: str | None = None
) -> tuple[str | None, str | None]:
    return repository_url, commit_sha


# --- precedence -----------------------------------------------------------------------

LEVELS = ("flag", "dd", "ci", "git")


@pytest.mark.parametrize(
    ("url_level", "sha_level"),
    list(itertools.product(LEVELS, LEVELS)),
    ids=[f"url-{u}-sha-{s}" for u, s in itertools.product(LEVELS, LEVELS)],
)
def test_each_field_takes_its_own_first_source(repo, head, logs, url_level, sha_level):
    """flag > DD_GIT_* > CI provider > git, each field on its own.

    A field at level L has every source from L down available, so the higher one must win.
    """
    url_rank, sha_rank = LEVELS.index(url_level), LEVELS.index(sha_level)
    env = {}
    if url_rank <= LEVELS.index("dd"):
        env["DD_GIT_REPOSITORY_URL"] = DD_URL
    if sha_rank <= LEVELS.index("dd"):
        env["DD_GIT_COMMIT_SHA"] = DD_SHA
    env["GITHUB_ACTIONS"] = "true"
    if url_rank <= LEVELS.index("ci"):
        env["GITHUB_SERVER_URL"] = "https://github.com"
        env["GITHUB_REPOSITORY"] = "ci/r"
    if sha_rank <= LEVELS.index("ci"):
        env["GITHUB_SHA"] = CI_SHA

    result = resolve(
        FLAG_URL if url_level == "flag" else None,
        FLAG_SHA if sha_level == "flag" else None,
        env=env,
        cwd=repo,
    )

    urls = {"flag": FLAG_URL, "dd": DD_URL, "ci": CI_URL, "git": ORIGIN_STRIPPED}
    shas = {"flag": FLAG_SHA, "dd": DD_SHA, "ci": CI_SHA, "git": head}
    assert values(result) == values_of(repository_url=urls[url_level], commit_sha=shas[sha_level])
    assert result.warnings == ()
    assert SECRET not in logs.text


def test_only_the_sha_flag_still_fills_the_url_from_the_environment(tmp_path):
    env = {"DD_GIT_REPOSITORY_URL": DD_URL, "DD_GIT_COMMIT_SHA": DD_SHA}

    result = resolve(None, FLAG_SHA, env=env, cwd=tmp_path)

    assert values(result) == values_of(repository_url=DD_URL, commit_sha=FLAG_SHA)


def test_only_the_url_flag_still_fills_the_sha_from_the_environment(tmp_path):
    env = {"DD_GIT_REPOSITORY_URL": DD_URL, "DD_GIT_COMMIT_SHA": DD_SHA}

    result = resolve(FLAG_URL, None, env=env, cwd=tmp_path)

    assert values(result) == values_of(repository_url=FLAG_URL, commit_sha=DD_SHA)


def test_only_the_sha_flag_still_fills_the_url_from_git(repo, logs):
    result = resolve(None, FLAG_SHA, env={}, cwd=repo)

    assert values(result) == values_of(repository_url=ORIGIN_STRIPPED, commit_sha=FLAG_SHA)
    assert result.warnings == ()


def test_only_the_url_flag_still_fills_the_sha_from_git(repo, head, logs):
    result = resolve(FLAG_URL, None, env={}, cwd=repo)

    assert values(result) == values_of(repository_url=FLAG_URL, commit_sha=head)
    assert result.warnings == ()


def test_both_flags_never_run_git(monkeypatch, tmp_path):
    def no_git(*args, **kwargs):
        raise AssertionError("git must not run when both values are given")

    monkeypatch.setattr(subprocess, "run", no_git)

    result = resolve(FLAG_URL, FLAG_SHA, env={}, cwd=tmp_path)

    assert values(result) == values_of(repository_url=FLAG_URL, commit_sha=FLAG_SHA)


@pytest.mark.parametrize("blank", ["", "  "])
def test_blank_variables_count_as_unset(repo, head, blank):
    env = {"DD_GIT_REPOSITORY_URL": blank, "DD_GIT_COMMIT_SHA": blank}

    result = resolve(env=env, cwd=repo)

    assert values(result) == values_of(repository_url=ORIGIN_STRIPPED, commit_sha=head)


def test_an_empty_flag_is_returned_for_validation_to_refuse(repo):
    result = resolve("", "", env={}, cwd=repo)

    assert values(result) == ("", "")
    assert (result.repository_url_source, result.commit_sha_source) == ("flag", "flag")


@pytest.mark.parametrize(
    "source",
    ["flag", "dd", "ci"],
)
def test_credentials_are_stripped_from_every_source(tmp_path, logs, source):
    url = f"https://x-access-token:{SECRET}@example.com/o/r.git"
    env = {"DD_GIT_COMMIT_SHA": DD_SHA}
    if source == "dd":
        env["DD_GIT_REPOSITORY_URL"] = url
    if source == "ci":
        env.update({"GITLAB_CI": "true", "CI_REPOSITORY_URL": url})

    result = resolve(url if source == "flag" else None, None, env=env, cwd=tmp_path)

    assert result.repository_url == ORIGIN_STRIPPED
    assert SECRET not in logs.text


def test_resolve_reads_os_environ_and_the_working_directory_by_default(repo, head, monkeypatch):
    monkeypatch.setenv("DD_GIT_COMMIT_SHA", DD_SHA)
    monkeypatch.chdir(repo)

    result = resolve()

    assert values(result) == values_of(repository_url=ORIGIN_STRIPPED, commit_sha=DD_SHA)


# --- CI providers ---------------------------------------------------------------------

SHA = "0123456789abcdef0123456789abcdef01234567"

CI_CASES = {
    "GitHub Actions": (
        {
            "GITHUB_ACTIONS": "true",
            "GITHUB_SERVER_URL": "https://github.com",
            "GITHUB_REPOSITORY": "o/r",
            "GITHUB_SHA": SHA,
        },
        "https://github.com/o/r.git",
    ),
    "GitLab CI": (
        {
            "GITLAB_CI": "true",
            "CI_REPOSITORY_URL": f"https://gitlab-ci-token:glcbt-{SECRET}@gitlab.com/g/p.git",
            "CI_COMMIT_SHA": SHA,
        },
        "https://gitlab.com/g/p.git",
    ),
    "CircleCI": (
        {
            "CIRCLECI": "true",
            "CIRCLE_REPOSITORY_URL": "git@github.com:o/r.git",
            "CIRCLE_SHA1": SHA,
        },
        "git@github.com:o/r.git",
    ),
    "Jenkins": (
        {
            "JENKINS_URL": "https://jenkins.example.com/",
            "GIT_URL": f"https://jenkins:{SECRET}@git.example.com/o/r.git",
            "GIT_COMMIT": SHA,
        },
        "https://git.example.com/o/r.git",
    ),
    "Buildkite": (
        {
            "BUILDKITE": "true",
            "BUILDKITE_REPO": "https://github.com/o/r.git",
            "BUILDKITE_COMMIT": SHA,
        },
        "https://github.com/o/r.git",
    ),
    "Azure Pipelines": (
        {
            "TF_BUILD": "True",
            "BUILD_REPOSITORY_URI": "https://dev.azure.com/org/p/_git/r",
            "BUILD_SOURCEVERSION": SHA,
        },
        "https://dev.azure.com/org/p/_git/r",
    ),
    "Bitbucket Pipelines": (
        {
            "BITBUCKET_COMMIT": SHA,
            "BITBUCKET_GIT_HTTP_ORIGIN": "http://bitbucket.org/o/r",
        },
        "http://bitbucket.org/o/r",
    ),
}


def test_every_ci_provider_has_a_case():
    assert {provider.name for provider in CI_PROVIDERS} == set(CI_CASES)


@pytest.mark.parametrize(("name", "case"), list(CI_CASES.items()), ids=list(CI_CASES))
def test_a_ci_provider_supplies_url_and_sha(tmp_path, logs, name, case):
    env, expected_url = case

    assert detect_ci(env).name == name
    result = resolve(env=env, cwd=tmp_path)  # tmp_path is not a repository: git is not needed

    assert values(result) == values_of(repository_url=expected_url, commit_sha=SHA)
    assert result.warnings == ()
    assert SECRET not in logs.text
    assert SECRET not in repr(result)


def test_github_actions_defaults_to_github_com_and_trims_the_server_slash(tmp_path):
    base = {"GITHUB_ACTIONS": "true", "GITHUB_REPOSITORY": "o/r", "GITHUB_SHA": SHA}

    default = resolve(env=base, cwd=tmp_path)
    enterprise = resolve(
        env={**base, "GITHUB_SERVER_URL": "https://ghe.example.com/"}, cwd=tmp_path
    )

    assert default.repository_url == "https://github.com/o/r.git"
    assert enterprise.repository_url == "https://ghe.example.com/o/r.git"


def test_azure_pipelines_prefers_the_pull_request_source(tmp_path):
    env = {
        "TF_BUILD": "True",
        "BUILD_REPOSITORY_URI": "https://dev.azure.com/org/p/_git/target",
        "BUILD_SOURCEVERSION": "1" * 40,
        "SYSTEM_PULLREQUEST_SOURCEREPOSITORYURI": "https://dev.azure.com/org/p/_git/fork",
        "SYSTEM_PULLREQUEST_SOURCECOMMITID": "2" * 40,
    }

    result = resolve(env=env, cwd=tmp_path)

    assert values(result) == values_of("https://dev.azure.com/org/p/_git/fork", "2" * 40)


def test_jenkins_falls_back_to_the_first_numbered_git_url(tmp_path):
    env = {"JENKINS_URL": "https://j/", "GIT_URL_1": "https://git.example.com/r.git"}

    result = resolve(None, FLAG_SHA, env=env, cwd=tmp_path)

    assert result.repository_url == "https://git.example.com/r.git"


def test_ci_variables_are_ignored_without_the_provider_marker(tmp_path, logs):
    env = {"GITHUB_REPOSITORY": "o/r", "GITHUB_SHA": SHA, "CI_COMMIT_SHA": SHA}

    assert detect_ci(env) is None
    result = resolve(env=env, cwd=tmp_path)

    assert values(result) == values_of(None, None)


def test_a_ci_provider_missing_one_value_falls_back_to_git_for_it(repo, logs):
    env = {"GITHUB_ACTIONS": "true", "GITHUB_SHA": SHA}

    result = resolve(env=env, cwd=repo)

    assert values(result) == values_of(repository_url=ORIGIN_STRIPPED, commit_sha=SHA)
    assert result.warnings == ()


# --- git in the working directory -----------------------------------------------------


def test_git_gives_head_and_origin_without_credentials(repo, head, logs):
    result = resolve(env={}, cwd=repo)

    assert values(result) == values_of(repository_url=ORIGIN_STRIPPED, commit_sha=head)
    assert len(head) == 40
    assert result.warnings == ()
    assert SECRET not in repr(result)
    assert SECRET not in logs.text


def test_git_works_from_a_subdirectory(repo, head):
    sub = repo / "a" / "b"
    sub.mkdir(parents=True)

    result = resolve(env={}, cwd=sub)

    assert values(result) == values_of(repository_url=ORIGIN_STRIPPED, commit_sha=head)


def test_a_repository_without_commits_warns_once_and_has_no_sha(tmp_path, logs):
    empty = make_repo(tmp_path / "empty", commit=False)

    result = resolve(env={}, cwd=empty)

    assert values(result) == values_of(repository_url=ORIGIN_STRIPPED, commit_sha=None)
    [warning] = result.warnings
    assert "no commit" in warning
    assert SECRET not in logs.text


def test_a_repository_without_origin_warns_once_and_has_no_url(tmp_path, logs):
    local = make_repo(tmp_path / "local", origin=None)
    head = git(local, "rev-parse", "HEAD")

    result = resolve(env={}, cwd=local)

    assert values(result) == values_of(repository_url=None, commit_sha=head)
    [warning] = result.warnings
    assert "origin" in warning


def test_a_directory_that_is_not_a_repository_warns_once(tmp_path, logs):
    plain = tmp_path / "plain"
    plain.mkdir()

    result = resolve(env={}, cwd=plain)

    assert values(result) == values_of(repository_url=None, commit_sha=None)
    [warning] = result.warnings
    assert "not a git repository" in warning


def test_the_default_working_directory_is_not_a_repository(logs):
    # the isolated fixture chdirs into an empty directory that is not a repository
    result = resolve(env={})

    assert values(result) == values_of(None, None)
    [warning] = result.warnings
    assert "not a git repository" in warning


def test_a_missing_git_binary_warns_once_and_raises_nothing(repo, tmp_path, logs, monkeypatch):
    no_tools = tmp_path / "empty-path"
    no_tools.mkdir()
    monkeypatch.setenv("PATH", str(no_tools))

    result = resolve(env={}, cwd=repo)

    assert values(result) == values_of(repository_url=None, commit_sha=None)
    [warning] = result.warnings
    assert "git is not installed" in warning


def test_a_git_binary_that_cannot_be_started_warns_once(repo, logs, monkeypatch):
    def missing(*args, **kwargs):
        raise FileNotFoundError(2, "No such file or directory", "git")

    monkeypatch.setattr(gitmeta.subprocess, "run", missing)

    result = resolve(None, FLAG_SHA, env={}, cwd=repo)

    assert values(result) == values_of(repository_url=None, commit_sha=FLAG_SHA)
    [warning] = result.warnings
    assert "git is not installed" in warning


def test_a_git_that_hangs_warns_once(repo, logs, monkeypatch):
    def hangs(cmd, *args, **kwargs):
        raise subprocess.TimeoutExpired(cmd, kwargs.get("timeout", 0))

    monkeypatch.setattr(gitmeta.subprocess, "run", hangs)

    result = resolve(env={}, cwd=repo)

    assert values(result) == values_of(None, None)
    [warning] = result.warnings
    assert "did not answer" in warning


def test_a_ci_value_that_is_no_full_sha_falls_back_to_git(repo, head):
    env = {"BUILDKITE": "true", "BUILDKITE_COMMIT": "HEAD", "BUILDKITE_REPO": CI_URL}

    result = resolve(env=env, cwd=repo)

    assert values(result) == (CI_URL, head)
    assert (result.repository_url_source, result.commit_sha_source) == ("BUILDKITE_REPO", "git")
    assert result.warnings == (
        "BUILDKITE_COMMIT is 'HEAD', not a full commit SHA; asking git instead",
    )


def test_explicit_values_are_returned_with_their_source_for_the_caller_to_check(tmp_path):
    result = resolve(
        env={"DD_GIT_COMMIT_SHA": "abc", "DD_GIT_REPOSITORY_URL": DD_URL}, cwd=tmp_path
    )

    assert values(result) == (DD_URL, "abc")
    assert (result.repository_url_source, result.commit_sha_source) == (
        "DD_GIT_REPOSITORY_URL",
        "DD_GIT_COMMIT_SHA",
    )
    assert result.warnings == ()


def test_no_commit_and_no_remote_is_one_warning(tmp_path):
    empty = make_repo(tmp_path / "empty", commit=False, origin=None)

    result = resolve(env={}, cwd=empty)

    assert values(result) == (None, None)
    assert result.warnings == (
        "the git repository has no commit yet and git has no remote named 'origin', "
        "so the event has no git data",
    )


def test_a_detached_head_still_gives_its_sha(repo, head):
    git(repo, "commit", "--quiet", "--allow-empty", "-m", "second")
    git(repo, "checkout", "--quiet", "--detach", head)

    result = resolve(env={}, cwd=repo)

    assert values(result) == (ORIGIN_STRIPPED, head)
    assert result.warnings == ()


def test_a_worktree_gives_its_own_head(repo, head, tmp_path):
    git(repo, "commit", "--quiet", "--allow-empty", "-m", "second")
    worktree = tmp_path / "wt"
    git(repo, "worktree", "add", "--quiet", "--detach", str(worktree), head)

    result = resolve(env={}, cwd=worktree)

    assert values(result) == (ORIGIN_STRIPPED, head)


def test_a_shallow_clone_gives_head_and_its_origin(repo, tmp_path):
    git(repo, "commit", "--quiet", "--allow-empty", "-m", "second")
    tip = git(repo, "rev-parse", "HEAD")
    clone = tmp_path / "shallow"
    git(tmp_path, "clone", "--quiet", "--depth", "1", f"file://{repo}", str(clone))

    result = resolve(env={}, cwd=clone)

    assert values(result) == (f"file://{repo}", tip)
