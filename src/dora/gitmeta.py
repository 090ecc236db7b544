"""The git repository URL and commit SHA of an event, from wherever they can be found.

Each of the two values is looked up on its own, first hit wins:

1. the explicit value (a flag);
2. ``DD_GIT_REPOSITORY_URL`` / ``DD_GIT_COMMIT_SHA``, as datadog-ci reads them;
3. the CI provider's own variables (GitHub Actions, GitLab CI, CircleCI, Jenkins, Buildkite,
   Azure Pipelines, Bitbucket Pipelines);
4. ``git`` in the working directory: ``origin``'s URL and ``HEAD``.

Credentials in URLs are stripped before a value leaves this module. A missing git binary,
repository, commit or remote is logged as one warning and the value stays unset.
"""

from __future__ import annotations

import logging
import os
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from dora.redact import scrub, strip_credentials

log = logging.getLogger(__name__)

Env = Mapping[str, str]


@dataclass(frozen=True)
class GitMeta:
    repository_url: str | None = None
    commit_sha: str | None = None


def _first(*names: str) -> Callable[[Env], str | None]:
    def read(env: Env) -> str | None:
        return next((env[name] for name in names if env.get(name)), None)

    return read


def _github_repository(env: Env) -> str | None:
    if not env.get("GITHUB_REPOSITORY"):
        return None
    server = (env.get("GITHUB_SERVER_URL") or "https://github.com").rstrip("/")
    return f"{server}/{env['GITHUB_REPOSITORY']}.git"


@dataclass(frozen=True)
class CIProvider:
    name: str
    detect: str  # the variable whose presence says we run on this provider
    repository_url: Callable[[Env], str | None]
    commit_sha: Callable[[Env], str | None]


CI_PROVIDERS: tuple[CIProvider, ...] = (
    CIProvider("GitHub Actions", "GITHUB_ACTIONS", _github_repository, _first("GITHUB_SHA")),
    CIProvider("GitLab CI", "GITLAB_CI", _first("CI_REPOSITORY_URL"), _first("CI_COMMIT_SHA")),
    CIProvider("CircleCI", "CIRCLECI", _first("CIRCLE_REPOSITORY_URL"), _first("CIRCLE_SHA1")),
    CIProvider("Jenkins", "JENKINS_URL", _first("GIT_URL", "GIT_URL_1"), _first("GIT_COMMIT")),
    CIProvider("Buildkite", "BUILDKITE", _first("BUILDKITE_REPO"), _first("BUILDKITE_COMMIT")),
    CIProvider(
        "Azure Pipelines",
        "TF_BUILD",
        _first("SYSTEM_PULLREQUEST_SOURCEREPOSITORYURI", "BUILD_REPOSITORY_URI"),
        _first("SYSTEM_PULLREQUEST_SOURCECOMMITID", "BUILD_SOURCEVERSION"),
    ),
    CIProvider(
        "Bitbucket Pipelines",
        "BITBUCKET_COMMIT",
        _first("BITBUCKET_GIT_HTTP_ORIGIN", "BITBUCKET_GIT_SSH_ORIGIN"),
        _first("BITBUCKET_COMMIT"),
    ),
)


def detect_ci(env: Env) -> CIProvider | None:
    """The CI provider this process runs on, if any."""
    return next((ci for ci in CI_PROVIDERS if env.get(ci.detect)), None)


def resolve(
    repository_url: str | None = None,
    commit_sha: str | None = None,
    *,
    env: Env | None = None,
    cwd: str | os.PathLike[str] | None = None,
) -> GitMeta:
    """Fill whichever of the two values is missing, each from its own first source."""
    env = os.environ if env is None else env
    url, url_from = repository_url or None, "flag"
    sha, sha_from = commit_sha or None, "flag"
    if url is None:
        url, url_from = env.get("DD_GIT_REPOSITORY_URL") or None, "DD_GIT_REPOSITORY_URL"
    if sha is None:
        sha, sha_from = env.get("DD_GIT_COMMIT_SHA") or None, "DD_GIT_COMMIT_SHA"
    if (url is None or sha is None) and (ci := detect_ci(env)):
        if url is None:
            url, url_from = ci.repository_url(env), ci.name
        if sha is None:
            sha, sha_from = ci.commit_sha(env), ci.name
    if url is None or sha is None:
        local = _from_git(cwd, want_url=url is None, want_sha=sha is None)
        if url is None:
            url, url_from = local.repository_url, "git"
        if sha is None:
            sha, sha_from = local.commit_sha, "git"
    if url is not None:
        url = strip_credentials(url)
        log.debug("git repository URL %s (from %s)", url, url_from)
    if sha is not None:
        log.debug("git commit SHA %s (from %s)", sha, sha_from)
    return GitMeta(repository_url=url, commit_sha=sha)


def _from_git(cwd: str | os.PathLike[str] | None, *, want_url: bool, want_sha: bool) -> GitMeta:
    sha = url = None
    try:
        if want_sha:
            sha = _git(cwd, "rev-parse", "--verify", "--quiet", "HEAD^{commit}")
            if sha is None:
                _git_checked(cwd, "rev-parse", "--git-dir")  # raises if not a repository
                log.warning("the git repository has no commit yet; recording without a commit SHA")
        if want_url:
            url = _git(cwd, "remote", "get-url", "origin")
            if url is None:
                _git_checked(cwd, "rev-parse", "--git-dir")
                log.warning("git has no remote named 'origin'; recording without a repository URL")
    except FileNotFoundError:
        log.warning("git is not installed; recording without git data")
    except _GitFailed as exc:
        log.warning("%s; recording without git data", exc)
    return GitMeta(repository_url=url, commit_sha=sha)


class _GitFailed(Exception):
    pass


_GIT_TIMEOUT = 10.0


def _run_git(cwd: str | os.PathLike[str] | None, *args: str) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            ["git", *args],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=_GIT_TIMEOUT,
            env={**os.environ, "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"},
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise _GitFailed(f"git {args[0]} did not answer within {_GIT_TIMEOUT:.0f}s") from None
    except NotADirectoryError:
        raise _GitFailed("the working directory is gone") from None


def _git(cwd: str | os.PathLike[str] | None, *args: str) -> str | None:
    """Output of a git command, or None when it fails (the caller says why)."""
    done = _run_git(cwd, *args)
    return (done.stdout.strip() or None) if done.returncode == 0 else None


def _git_checked(cwd: str | os.PathLike[str] | None, *args: str) -> str:
    done = _run_git(cwd, *args)
    if done.returncode != 0:
        message = next((line for line in done.stderr.splitlines() if line.strip()), "")
        message = message.removeprefix("fatal: ").strip() or f"git {args[0]} failed"
        if "not a git repository" in message:
            message = "not a git repository"
        raise _GitFailed(scrub(message))
    return done.stdout.strip()
