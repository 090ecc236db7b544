"""Deployments and incidents from GitHub's REST API, as ``dora import`` records.

The token goes in ``Authorization: Bearer ...``, with ``Accept: application/vnd.github+json``
and ``X-GitHub-Api-Version: 2022-11-28``; ``GITHUB_API_URL`` replaces
``https://api.github.com`` (GitHub Enterprise Server's ``https://HOST/api/v3``, a proxy, a
test). Lists are read 100 to a page, following the ``Link`` header's ``rel="next"``.

A rate limit is waited for within the retry budget and is otherwise an error that says
when it resets: a 403 or 429 with ``X-RateLimit-Remaining: 0`` waits until
``X-RateLimit-Reset``; a secondary limit waits for its ``Retry-After``, or a minute.

========================================  =============================================
GitHub                                    dora
========================================  =============================================
deployment ``id``                         ``id``: ``github-deployment-<ID>``
deployment ``created_at``                 ``started_at``
first ``success`` status's ``created_at`` ``finished_at`` (never succeeded: not counted)
deployment ``environment``                ``env``, renamed through ``--env-map``
deployment ``sha``, repository            ``git.commit_sha``, ``git.repository_url``
``html_url``
repository name                           ``service`` (``--service``, ``--service-map``)
compare ``PREVIOUS...SHA``                ``commits``: merges skipped, the newest 5,000
workflow run ``id`` (``--workflow``)      ``id``: ``github-run-<ID>``
run ``run_started_at``, ``updated_at``    ``started_at``, ``finished_at``
run ``head_sha``                          ``git.commit_sha``
issue ``id`` (with ``--incident-label``)  ``id``: ``github-issue-<ID>``
issue ``created_at``, ``closed_at``       ``started_at``, ``finished_at`` (open: none)
issue ``title``                           ``name``
========================================  =============================================
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from dora import fetching
from dora.backends import http
from dora.errors import UsageError
from dora.fetching import ApiClient, Deployed, Fetched, FetchError, Names

if TYPE_CHECKING:
    import httpx

API = fetching.Api(
    name="GitHub",
    auth_variable="GITHUB_TOKEN",
    url_variable="GITHUB_API_URL",
    default_url="https://api.github.com",
    auth_is="a GitHub token that may read the repositories' deployments, actions and issues",
    auth=lambda token: {"Authorization": f"Bearer {token}"},
    headers={"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"},
)
PAGE = "100"
#: A run search answers at most this many runs (GitHub's limit for filtered searches).
MAX_RUNS = 1000
#: Deployments older than the window looked at to find, for each environment, the one
#: before its first (which gives that one its commits).
LOOK_BACK = 100
_REPO = re.compile(r"([A-Za-z0-9_.-]+)/([A-Za-z0-9_.-]+)")
_WORKFLOW = re.compile(r"[A-Za-z0-9_.-]+")
#: How an issue closed as no incident says so (GitHub's state_reason).
_DISMISSED = ("not_planned", "duplicate")
#: A secondary rate limit with no Retry-After: GitHub asks to wait at least a minute.
_SECONDARY_WAIT = 60.0


def describe(response: httpx.Response) -> str:
    """``404 Not Found: Not Found``, from GitHub's ``{"message", "documentation_url"}``."""
    data = http.json_body(response)
    message = data.get("message") if isinstance(data, dict) else None
    detail = str(message) if message else response.text
    return http.status_line(response, http.one_line(detail).rstrip("."))


def limited(response: httpx.Response) -> float | None:
    """The seconds to wait when a 403 or 429 is a rate limit: until ``X-RateLimit-Reset``
    when the limit is spent; ``Retry-After`` (applied by the client) or a minute for a
    secondary limit; None for a 403 that is a refusal."""
    if response.status_code not in (403, 429):
        return None
    if (
        wait := http.until_reset(response, "X-RateLimit-Remaining", "X-RateLimit-Reset")
    ) is not None:
        return wait
    if "Retry-After" in response.headers:
        return 0.0
    data = http.json_body(response)
    message = str(data.get("message", "")) if isinstance(data, dict) else ""
    if response.status_code == 429 or "rate limit" in message.lower():
        return _SECONDARY_WAIT
    return None


def client(env: Mapping[str, str], **kwargs: Any) -> ApiClient:
    return ApiClient(API, fetching.account(API, env), describe=describe, limited=limited, **kwargs)


def repository(value: str) -> tuple[str, str]:
    """``OWNER/NAME`` as its two parts, or a usage error naming --repo."""
    found = _REPO.fullmatch(value.strip().removesuffix(".git"))
    if not found or found[2] in (".", ".."):
        raise UsageError(f"--repo: '{value}' is not OWNER/NAME, such as octo-org/api")
    return found[1], found[2]


def workflow(value: str) -> str:
    if not _WORKFLOW.fullmatch(value):
        raise UsageError(f"--workflow: '{value}' is not a workflow file name or id (deploy.yml)")
    return value


@dataclass(frozen=True)
class Options:
    """What to fetch: deployments (or runs of ``workflow``) and incident issues of each
    repository (``OWNER/NAME``) created in [since, until)."""

    repos: list[tuple[str, str]]
    since: datetime
    until: datetime
    environments: list[str] = field(default_factory=list)  # none: every environment
    workflow: str | None = None
    incident_label: str | None = "incident"  # None: no incidents
    service: str | None = None  # for every repository; else its name
    service_map: Mapping[str, str] = field(default_factory=dict)  # OWNER/NAME -> service
    env_map: Mapping[str, str] = field(default_factory=dict)
    env: str | None = None  # for workflow runs and incidents
    team: str | None = None


def fetch(
    client: ApiClient, options: Options, *, progress: Callable[[int], None] | None = None
) -> Fetched:
    """The deployments and incidents of every repository, as records."""
    fetched = Fetched()
    envs = Names(options.env_map, flag="--env-map", source="GitHub", what="environment")
    mapped = {full.casefold(): service for full, service in options.service_map.items()}
    read: set[str] = set()  # GitHub's full names, in any case
    for owner, name in dict.fromkeys(options.repos):
        reader = _Repository(client, owner, name, options, fetched, progress)
        reader.envs = envs
        reader.read(mapped, read)
    for full in sorted(set(options.service_map)):
        if full.casefold() not in read:
            fetched.warnings.append(f"--service-map: '{full}' is not one of the --repo given")
    fetched.warnings += envs.warnings()
    fetched.requests = client.requests
    return fetched


class _Repository:
    def __init__(
        self,
        client: ApiClient,
        owner: str,
        name: str,
        options: Options,
        fetched: Fetched,
        progress: Callable[[int], None] | None,
    ) -> None:
        self.client, self.options, self.fetched = client, options, fetched
        self.full = f"{owner}/{name}"
        self.path = f"/repos/{quote(owner)}/{quote(name)}"
        self.progress = progress
        self.service = name
        self.envs: Callable[[str], str] = lambda env: env

    def read(self, mapped: Mapping[str, str], read: set[str]) -> None:
        """Read the repository, unless it is among those ``read`` (named twice, in another
        case): its deployments (or runs), their commits, and its incident issues. Its
        service is its name as GitHub spells it, unless mapped or given."""
        what = f"read the repository {self.full}"
        about, _ = self.client.get(self.path, what=what, check="--repo")
        for key in ("html_url", "name", "full_name"):
            if not isinstance(about, dict) or not isinstance(about.get(key), str):
                raise self.client.unexpected(what, f"no {key}")
        if about["full_name"].casefold() in read:
            return
        read.add(about["full_name"].casefold())
        self.full, self.url = about["full_name"], about["html_url"]
        self.service = mapped.get(self.full.casefold()) or self.options.service or about["name"]
        if self.options.workflow:
            branch = about.get("default_branch")
            if not isinstance(branch, str) or not branch:
                raise self.client.unexpected(f"read the repository {self.full}", "no branch")
            deployments = self._runs(self.options.workflow, branch)
        else:
            deployments = self._deployments()
        fetching.ship(deployments, self._compare)
        for deployment in sorted(deployments, key=lambda d: d.finished):
            if deployment.record is not None:
                self._add(deployment.record)
        if self.options.incident_label:
            for record in self._incidents(self.options.incident_label):
                self._add(record)

    def _add(self, record: dict[str, Any]) -> None:
        self.fetched.records.append(record)
        if self.progress:
            self.progress(len(self.fetched.records))

    # deployments

    def _deployments(self) -> list[Deployed]:
        """The deployments created in the window that succeeded, and before them, for each
        environment, the latest that succeeded of the LOOK_BACK created before it."""
        found: list[Deployed] = []
        asked: list[str | None] = [*dict.fromkeys(self.options.environments)] or [None]
        for environment in asked:
            found += self._of_environment(environment)
        return found

    def _of_environment(self, environment: str | None) -> list[Deployed]:
        params = {"per_page": PAGE}
        if environment is not None:
            params["environment"] = environment
        what = f"list the deployments of {self.full}"
        in_window: list[Deployed] = []
        before: dict[str, Deployed] = {}
        looked = 0
        # newest first: those of the window, then older ones, of which the latest that
        # succeeded in each environment of the window is the one before its first
        for page in self.client.pages(
            f"{self.path}/deployments", params, what=what, check="--repo"
        ):
            for item in page:
                created = _time(item, "created_at", what, self.client)
                if created >= self.options.until:
                    continue
                env = item.get("environment")
                if not isinstance(env, str) or not isinstance(item.get("id"), int):
                    raise self.client.unexpected(what, "a deployment without id or environment")
                if created >= self.options.since:
                    finished = self._succeeded(item["id"])
                    if finished is None:
                        continue
                    in_window.append(self._deployment(item, created, finished))
                    continue
                first: dict[str, datetime] = {}  # each environment's first in the window
                for d in in_window:
                    first[d.env] = min(d.finished, first.get(d.env, d.finished))
                envs = set(first)
                looked += 1
                finished = None
                if env in envs and env not in before:
                    finished = self._succeeded(item["id"])
                # created before the window but finished in it, after one of it: not the
                # one before the window's first (nor fetched: it was created before)
                if finished is not None and finished < first[env]:
                    before[env] = Deployed(item.get("sha"), env, finished, None)
                if looked >= LOOK_BACK or envs <= set(before):
                    return list(before.values()) + in_window
        return list(before.values()) + in_window

    def _succeeded(self, deployment_id: int) -> datetime | None:
        """When the deployment first reached ``success``, or None if it never did."""
        what = f"list the statuses of deployment {deployment_id} of {self.full}"
        first = None
        for page in self.client.pages(
            f"{self.path}/deployments/{deployment_id}/statuses",
            {"per_page": PAGE},
            what=what,
            check="--repo",
        ):
            for status in page:
                if isinstance(status, dict) and status.get("state") == "success":
                    at = _time(status, "created_at", what, self.client)
                    first = at if first is None else min(first, at)
        return first

    def _deployment(self, item: dict[str, Any], created: datetime, finished: datetime) -> Deployed:
        env = self.envs(item["environment"])
        record = {
            "type": "deployment",
            "id": fetching.event_id("github-deployment", item["id"]),
            "service": self.service,
            "env": env,
            "team": self.options.team,
            "started_at": fetching.iso(created),
            "finished_at": fetching.iso(finished),
            "git": {"repository_url": self.url, "commit_sha": item.get("sha")},
        }
        return Deployed(item.get("sha"), item["environment"], finished, _clean(record))

    def _runs(self, name: str, branch: str) -> list[Deployed]:
        """The runs of the workflow that succeeded on ``branch``, created in the window, and
        the latest before it."""
        path = f"{self.path}/actions/workflows/{quote(name)}/runs"
        what = f"list the runs of workflow {name} of {self.full}"
        found: dict[int, dict[str, Any]] = {}
        # GitHub's search takes whole seconds: the window widened to them, then cut exactly
        since = self.options.since.replace(microsecond=0)
        until = self.options.until.replace(microsecond=0)
        if until < self.options.until:
            until += timedelta(seconds=1)
        self._runs_in(name, path, what, branch, since, until, found)
        runs = [
            Deployed(
                run.get("head_sha"),
                "",
                _time(run, "updated_at", what, self.client),
                self._run(run, what),
            )
            for run in found.values()
        ]
        params = {"branch": branch, "status": "success", "per_page": "1"}
        params["created"] = f"<{fetching.iso(since)}"
        data, _ = self.client.get(path, params, what=what, check="--workflow")
        earlier = _listed_runs(data, self.client, what)
        if runs and earlier:
            runs.append(Deployed(earlier[0].get("head_sha"), "", self.options.since, None))
        return runs

    def _runs_in(
        self,
        name: str,
        path: str,
        what: str,
        branch: str,
        since: datetime,
        until: datetime,
        found: dict[int, dict[str, Any]],
    ) -> None:
        """Every successful run created in [since, until); a window holding more than a
        search answers is read in halves."""
        last = until - timedelta(seconds=1)  # the range's ends are both included
        params = {
            "branch": branch,
            "status": "success",
            "per_page": PAGE,
            "created": f"{fetching.iso(since)}..{fetching.iso(last)}",
        }
        url: str | None = path
        total = None
        query: dict[str, str] | None = params
        while url is not None:
            data, response = self.client.get(url, query, what=what, check="--workflow")
            runs = _listed_runs(data, self.client, what)
            if total is None:
                total = data.get("total_count")
                if isinstance(total, int) and total > MAX_RUNS:
                    middle = since + (until - since) / 2
                    middle = middle.replace(microsecond=0)
                    if not since < middle < until:
                        raise FetchError(
                            f"GitHub holds more than {MAX_RUNS:,} successful runs of "
                            f"workflow {name} of {self.full} created in one second, more "
                            "than its search lists"
                        )
                    self._runs_in(name, path, what, branch, since, middle, found)
                    self._runs_in(name, path, what, branch, middle, until, found)
                    return
            for run in runs:
                created = _time(run, "created_at", what, self.client)
                if self.options.since <= created < self.options.until and self._own(run):
                    found[run["id"]] = run
            url, query = fetching.next_link(response), None

    def _own(self, run: dict[str, Any]) -> bool:
        """Whether the run is of this repository's own branch: a pull request from a
        fork's branch of the same name is listed too, and deployed nothing."""
        head = run.get("head_repository")
        name = head.get("full_name") if isinstance(head, dict) else None
        return not isinstance(name, str) or name.casefold() == self.full.casefold()

    def _run(self, run: dict[str, Any], what: str) -> dict[str, Any]:
        started = run.get("run_started_at") or run.get("created_at")
        return _clean(
            {
                "type": "deployment",
                "id": fetching.event_id("github-run", run["id"]),
                "service": self.service,
                "env": self.options.env,
                "team": self.options.team,
                "started_at": started,
                "finished_at": run.get("updated_at"),
                "git": {"repository_url": self.url, "commit_sha": run.get("head_sha")},
            }
        )

    # commits

    def _compare(self, base: str, head: str) -> list[dict[str, Any]] | None:
        """The commits reachable from ``head`` and not from ``base``, merges skipped, the
        newest MAX_COMMITS; None (with a warning) when GitHub cannot compare them."""
        from dora.gitmeta import MAX_COMMITS

        what = f"compare {base[:12]}...{head[:12]} of {self.full}"
        path = f"{self.path}/compare/{base}...{head}"
        params = {"per_page": PAGE}
        try:
            data, response = self.client.get(path, params, what=what, check="--repo")
        except FetchError as exc:
            if exc.status in (401, 403):  # the token: every other request fails too
                raise
            self.fetched.warnings.append(fetching.uncompared("GitHub", base, head, self.full, exc))
            return None
        total = data.get("total_commits") if isinstance(data, dict) else None
        if not isinstance(total, int):
            raise self.client.unexpected(what, "no total_commits")
        commits: list[dict[str, Any]] = []
        pages = (total + int(PAGE) - 1) // int(PAGE)
        first = max(1, pages - (MAX_COMMITS + int(PAGE) - 1) // int(PAGE))
        if first > 1:  # only the newest: start at the page where they begin
            params["page"] = str(first)
            data, response = self.client.get(path, params, what=what, check="--repo")
        while True:
            listed = data.get("commits") if isinstance(data, dict) else None
            if not isinstance(listed, list):
                raise self.client.unexpected(what, "no commits list")
            commits += listed
            following = fetching.next_link(response)
            if following is None:
                break
            data, response = self.client.get(following, what=what, check="--repo")
        shipped = []
        for item in commits:
            if not isinstance(item, dict) or len(item.get("parents") or []) > 1:
                continue  # a merge commit: its changes came with the commits it merged
            inner = item.get("commit")
            inner = inner if isinstance(inner, dict) else {}
            committer = inner.get("committer")
            committer = committer if isinstance(committer, dict) else {}
            shipped.append(
                fetching.commit(item.get("sha"), committer.get("date"), inner.get("message"))
            )
        return shipped[-MAX_COMMITS:][::-1]  # newest first, as git lists them

    # incidents

    def _incidents(self, label: str) -> Iterable[dict[str, Any]]:
        """The issues with the label created in the window (pull requests aside)."""
        what = f"list the issues labelled '{label}' of {self.full}"
        params = {
            "labels": label,
            "state": "all",
            "since": fetching.iso(self.options.since),  # updated since: created since too
            "sort": "created",
            "direction": "asc",
            "per_page": PAGE,
        }
        dismissed = 0
        for page in self.client.pages(f"{self.path}/issues", params, what=what, check="--repo"):
            for issue in page:
                if not isinstance(issue, dict) or "pull_request" in issue:
                    continue
                created = _time(issue, "created_at", what, self.client)
                if not self.options.since <= created < self.options.until:
                    continue
                if not isinstance(issue.get("id"), int):
                    raise self.client.unexpected(what, "an issue without an id")
                closed = issue.get("closed_at") if issue.get("state") == "closed" else None
                if closed is not None and issue.get("state_reason") in _DISMISSED:
                    dismissed += 1  # a false alarm, or one told already: no incident
                    continue
                yield _clean(
                    {
                        "type": "incident",
                        "id": fetching.event_id("github-issue", issue["id"]),
                        "services": [self.service],
                        "env": self.options.env,
                        "team": self.options.team,
                        "name": fetching.line(issue.get("title")),
                        "started_at": issue.get("created_at"),
                        "finished_at": closed,
                    }
                )
        if dismissed:
            self.fetched.warnings.append(
                f"skipped {dismissed:,} issue{'s' * (dismissed != 1)} of {self.full} "
                "closed as not planned or as a duplicate: not incidents"
            )


def _listed_runs(data: Any, client: ApiClient, what: str) -> list[dict[str, Any]]:
    runs = data.get("workflow_runs") if isinstance(data, dict) else None
    if not isinstance(runs, list) or not all(
        isinstance(run, dict) and isinstance(run.get("id"), int) for run in runs
    ):
        raise client.unexpected(what, "no workflow_runs list")
    return runs


def _time(item: Any, name: str, what: str, client: ApiClient) -> datetime:
    found = fetching.moment(item.get(name) if isinstance(item, dict) else None)
    if found is None:
        raise client.unexpected(what, f"{name} is not a time")
    return found


def _clean(record: dict[str, Any]) -> dict[str, Any]:
    """The record without its empty fields."""
    return {key: value for key, value in record.items() if value is not None}
