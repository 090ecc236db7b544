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
import re
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

from dora.redact import scrub, strip_credentials

log = logging.getLogger(__name__)

#: A full commit SHA: SHA-1 (40) or SHA-256 (64) hex digits, or any length from 40 up.
SHA_PATTERN = re.compile(r"[0-9a-fA-F]{40,}")

Env = Mapping[str, str]


@dataclass(frozen=True)
class GitMeta:
    """The two values, where each came from (``flag``, a variable's name, or ``git``), and
    the warnings to show once the event is known to be valid."""

    repository_url: str | None = None
    commit_sha: str | None = None
    repository_url_source: str | None = None
    commit_sha_source: str | None = None
    warnings: tuple[str, ...] = ()


Found = tuple[str, str]  # (value, the variable it came from)


def _first(*names: str) -> Callable[[Env], Found | None]:
    def read(env: Env) -> Found | None:
        return next(((env[name], name) for name in names if env.get(name, "").strip()), None)

    return read


def _github_repository(env: Env) -> Found | None:
    if not env.get("GITHUB_REPOSITORY", "").strip():
        return None
    server = (env.get("GITHUB_SERVER_URL") or "https://github.com").rstrip("/")
    return f"{server}/{env['GITHUB_REPOSITORY']}.git", "GITHUB_REPOSITORY"


@dataclass(frozen=True)
class CIProvider:
    name: str
    detect: str  # the variable whose presence says we run on this provider
    repository_url: Callable[[Env], Found | None]
    commit_sha: Callable[[Env], Found | None]


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
    """Fill whichever of the two values is missing, each from its own first source.

    Explicit values (flags, ``DD_GIT_*``) are returned as given, for the caller to validate.
    A CI variable that holds no full commit SHA (Buildkite's ``HEAD`` on a manual build) is
    passed over with a warning, and git is asked instead.
    """
    env = os.environ if env is None else env
    warnings: list[str] = []
    url = _flag(repository_url) or _variable(env, "DD_GIT_REPOSITORY_URL")
    sha = _flag(commit_sha) or _variable(env, "DD_GIT_COMMIT_SHA")
    if (url is None or sha is None) and (ci := detect_ci(env)):
        url = url or ci.repository_url(env)
        if sha is None and (ci_sha := ci.commit_sha(env)):
            if SHA_PATTERN.fullmatch(ci_sha[0].strip()):
                sha = ci_sha
            else:
                warnings.append(
                    f"{ci_sha[1]} is '{ci_sha[0]}', not a full commit SHA; asking git instead"
                )
    if url is None or sha is None:
        git_url, git_sha, warning = _from_git(cwd, want_url=url is None, want_sha=sha is None)
        url, sha = url or git_url, sha or git_sha
        warnings += [warning] if warning else []
    if url is not None:
        url = (strip_credentials(url[0]), url[1])
        log.debug("git repository URL %s (from %s)", url[0], url[1])
    if sha is not None:
        log.debug("git commit SHA %s (from %s)", sha[0], sha[1])
    return GitMeta(
        repository_url=url[0] if url else None,
        commit_sha=sha[0] if sha else None,
        repository_url_source=url[1] if url else None,
        commit_sha_source=sha[1] if sha else None,
        warnings=("; ".join(warnings),) if warnings else (),
    )


def _flag(value: str | None) -> Found | None:
    """A flag counts when given at all, even empty: validation then says what is wrong."""
    return None if value is None else (value, "flag")


def _variable(env: Env, name: str) -> Found | None:
    """A variable counts when set to something other than blanks."""
    value = env.get(name, "")
    return (value, name) if value.strip() else None


def _from_git(
    cwd: str | os.PathLike[str] | None, *, want_url: bool, want_sha: bool
) -> tuple[Found | None, Found | None, str | None]:
    """Ask git for what is wanted: (URL, SHA, at most one warning for what it lacks)."""
    url = sha = None
    reasons = []
    try:
        if want_sha:
            if head := _git(cwd, "rev-parse", "--verify", "--quiet", "HEAD^{commit}"):
                sha = (head, "git")
            else:
                _git_checked(cwd, "rev-parse", "--git-dir")  # raises if not a repository
                reasons.append("the git repository has no commit yet")
        if want_url:
            if origin := _git(cwd, "remote", "get-url", "origin"):
                url = (origin, "git")
            else:
                _git_checked(cwd, "rev-parse", "--git-dir")
                reasons.append("git has no remote named 'origin'")
    except FileNotFoundError:
        reasons = ["git is not installed"]
    except _GitFailed as exc:
        reasons = [str(exc)]
    wanted = (("repository URL", want_url, url), ("commit SHA", want_sha, sha))
    lacking = [name for name, want, got in wanted if want and not got]
    if not lacking:
        return url, sha, None
    what = "git data" if len(lacking) == 2 else lacking[0]
    return url, sha, f"{' and '.join(reasons)}, so the event has no {what}"


#: The most commits one deployment records; a longer history is cut to the newest ones.
MAX_COMMITS = 5000


class Commit(NamedTuple):
    sha: str
    committed_at: datetime  # the committer date: when the change landed on its branch
    #: its message's first line, for the hotfix rule and for people (at most SUBJECT chars)
    subject: str | None = None
    #: the commit it reverts, when its message says so (``git revert`` writes it)
    reverts: str | None = None


#: The longest commit subject kept; a longer one is cut (it is a line, not a report).
SUBJECT = 1024


def shipped_commits(
    sha: str,
    previous: str | None,
    *,
    cwd: str | os.PathLike[str] | None = None,
    repository_url: str | None = None,
    previous_repository_url: str | None = None,
) -> tuple[list[Commit] | None, str | None]:
    """The commits a deployment of ``sha`` ships after one of ``previous``: reachable from
    ``sha`` and not from ``previous``, merges skipped, newest first, at most MAX_COMMITS.

    Returns the commits and at most one warning. With no ``previous`` (a first deployment)
    there is nothing to measure against: no commits. When they cannot be listed, the
    commits are None (unknown, as opposed to none): when ``sha`` is not in the repository at
    ``cwd`` or there is none (the deployment was recorded from elsewhere; no warning), or
    when the repository lacks ``previous`` (a warning saying why, as far as can be told:
    ``previous`` was recorded from another repository than ``repository_url``, this is a
    shallow clone, or the history was rewritten).
    """
    from dora import timeparse

    if previous is None or previous == sha:
        return [], None
    try:
        if not _has_commit(cwd, sha):
            log.debug("commit %s is not in this repository: no commits recorded", sha)
            return None, None
        if not _has_commit(cwd, previous):
            return None, _lacking(cwd, previous, repository_url, previous_repository_url)
        listing = _git_checked(
            cwd,
            "log",
            "--no-merges",
            f"--max-count={MAX_COMMITS}",
            "--encoding=UTF-8",
            "-z",  # entries end in NUL: a message may hold any other character
            "--format=%H %ct%x1f%s%x1f%b",
            sha,
            f"^{previous}",
            "--",
        )
    except FileNotFoundError:
        return None, None
    except _GitFailed as exc:
        return None, f"cannot list the commits deployed ({exc}), so no lead time is recorded"
    from dora.failures import reverted_sha

    commits = []
    for entry in listing.split("\0"):
        head, _, message = entry.strip("\n").partition("\x1f")
        subject, _, body = message.partition("\x1f")
        commit_sha, _, stamp = head.partition(" ")
        if not commit_sha:
            continue
        try:  # %ct is whole seconds; a commit git cannot date (empty, negative) is left out
            seconds = int(stamp)
            if seconds < 0:
                raise ValueError(stamp)
            when = timeparse.from_ns(seconds * 10**9)
        except (ValueError, OverflowError):
            log.debug("commit %s has no usable commit date (%r); left out", commit_sha, stamp)
            continue
        shown = subject.strip()[:SUBJECT] or None
        commits.append(Commit(commit_sha, when, shown, reverted_sha(body)))
    if len(commits) == MAX_COMMITS:
        log.debug("the deployment ships more than %d commits; the newest are kept", MAX_COMMITS)
    return commits, None


def _has_commit(cwd: str | os.PathLike[str] | None, sha: str) -> bool:
    return _run_git(cwd, "cat-file", "-e", f"{sha}^{{commit}}").returncode == 0


def _lacking(
    cwd: str | os.PathLike[str] | None,
    previous: str,
    repository_url: str | None,
    previous_repository_url: str | None,
) -> str:
    """Why the repository at ``cwd`` lacks the previous deployment's commit, as a warning."""
    if (
        repository_url
        and previous_repository_url
        and not same_repository(repository_url, previous_repository_url)
    ):
        return (
            "the previous deployment of this service and env was recorded from another "
            f"repository ({strip_credentials(previous_repository_url)}, not "
            f"{strip_credentials(repository_url)}), so no lead time is recorded"
        )
    if _git(cwd, "rev-parse", "--is-shallow-repository") == "true":
        return (
            f"the previous deployment's commit {previous[:12]} is not in this clone "
            "(a shallow clone? fetch with full history), so no lead time is recorded"
        )
    return (
        f"the previous deployment's commit {previous[:12]} is not in this repository, "
        "a full clone (was its history rewritten, by a force-push say, or was that "
        "deployment made from a fork?), so no lead time is recorded"
    )


_SCP_LIKE = re.compile(r"(?:[^@/]+@)?([^/:]+):(.*)")


def same_repository(one: str, other: str) -> bool:
    """Whether two repository URLs name the same repository, whatever the form: https or
    SSH (``git@host:org/repo``), with or without ``.git``, user or port; host and path
    compared without regard to case (as GitHub and GitLab treat them). A local path is the
    same as its ``file://`` URL."""
    return _repository_key(one) == _repository_key(other)


def _repository_key(url: str) -> tuple[str, str]:
    text = strip_credentials(url.strip())
    scheme, sep, rest = text.partition("://")
    if sep and scheme.lower() != "file":
        authority, _, path = rest.partition("/")
        host = authority.rpartition("@")[2]
        host = host.partition("]")[0] if host.startswith("[") else host.partition(":")[0]
    elif sep:
        host, path = "", rest
    elif (scp := _SCP_LIKE.fullmatch(text)) and "/" not in text.partition(":")[0]:
        host, path = scp[1], scp[2]
    else:
        host, path = "", text
    path = path.strip("/").removesuffix(".git").strip("/")
    return host.lower(), path.lower()


class _GitFailed(Exception):
    pass


_GIT_TIMEOUT = 10.0


def _run_git(cwd: str | os.PathLike[str] | None, *args: str) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            ["git", *args],
            cwd=cwd,
            capture_output=True,
            encoding="utf-8",
            errors="replace",  # a message in another encoding is not a reason to fail
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
        elif "dubious ownership" in message:
            message += " (mark it safe with: git config --global --add safe.directory DIR)"
        raise _GitFailed(scrub(message))
    return done.stdout.strip()
