"""Deployments and incidents from GitLab's REST API (v4), as ``dora import`` records.

The token goes in ``PRIVATE-TOKEN``; ``GITLAB_URL`` replaces ``https://gitlab.com`` with a
self-managed instance's address (the API is under its ``/api/v4``). A project is named
by its numeric id or its path (``group/sub/project``, sent as one encoded segment); once
read, it is asked by its id. Lists are read 100 to a page, following ``X-Next-Page``
(empty on the last page) rather than the ``Link`` header, so that the token goes to
GITLAB_URL only even when GitLab's own address differs from it (an internal address, a
proxy); ``Link`` is followed only when ``X-Next-Page`` is absent.

A 429 is waited for within the retry budget: for its ``Retry-After``, else until
``RateLimit-Reset`` when ``RateLimit-Remaining`` is 0, else (GitLab.com sometimes sends
neither) with the usual backoff.

GitLab filters deployments by when they finished, so the window holds the successful
deployments that finished in [since, until): one that started before the window and
finished in it counts, and asking for the same window again gives the same ones.

=========================================  ============================================
GitLab                                     dora
=========================================  ============================================
deployment ``id``                          ``id``: ``gitlab-deployment-<ID>``
deployable ``started_at`` (else            ``started_at``
deployment ``created_at``)
deployable ``finished_at`` (else           ``finished_at`` (``status=success`` only:
deployment ``updated_at``)                 failed and canceled ones are not counted)
deployment ``environment.name``            ``env``, renamed through ``--env-map``
deployment ``sha``, project ``web_url``    ``git.commit_sha``, ``git.repository_url``
project ``path``                           ``service`` (``--service``, ``--service-map``
                                           on ``path_with_namespace``)
compare ``from=PREVIOUS&to=SHA``           ``commits``: merges skipped, the newest 5,000
incident issue ``id``                      ``id``: ``gitlab-issue-<ID>``
issue ``created_at``, ``closed_at``        ``started_at``, ``finished_at`` (open: none)
issue ``title``                            ``name``
issue ``severity`` (not ``UNKNOWN``)       ``severity``, as GitLab writes it (``HIGH``)
=========================================  ============================================
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from dora import fetching
from dora.backends import http
from dora.errors import UsageError
from dora.fetching import ApiClient, Deployed, Fetched, FetchError, Names

if TYPE_CHECKING:
    import httpx

API = fetching.Api(
    name="GitLab",
    auth_variable="GITLAB_TOKEN",
    url_variable="GITLAB_URL",
    default_url="https://gitlab.com",
    auth_is="a GitLab token with the read_api scope that may read the projects",
    auth=lambda token: {"PRIVATE-TOKEN": token},
    root="/api/v4",
)
PAGE = "100"
_ID = re.compile(r"[1-9][0-9]*")
_SEGMENT = re.compile(r"[A-Za-z0-9_.-]+")
_STATUS = re.compile(r"(\d{3})\b\s*")


def describe(response: httpx.Response) -> str:
    """``404 Not Found: Project Not Found``, from GitLab's ``{"message": "..."}``,
    ``{"message": {"field": ["..."]}}`` or ``{"error": "...", "error_description": ...}``."""
    data = http.json_body(response)
    detail = ""
    if isinstance(data, dict):
        message = data.get("message")
        if isinstance(message, dict):
            detail = "; ".join(
                f"{name}: {', '.join(map(str, value)) if isinstance(value, list) else value}"
                for name, value in message.items()
            )
        elif message:
            detail = str(message)
        elif data.get("error"):
            detail = str(data.get("error_description") or data["error"])
    elif not response.headers.get("Content-Type", "").startswith("text/html"):
        detail = response.text
    detail = http.one_line(detail)
    # GitLab repeats the status in its messages ("404 Project Not Found"): say it once
    if (found := _STATUS.match(detail)) and found[1] == str(response.status_code):
        detail = detail[found.end() :]
    if detail.lower() == response.reason_phrase.lower():
        detail = ""
    return http.status_line(response, detail)


def limited(response: httpx.Response) -> float | None:
    """The seconds to wait after a 429 that has no ``Retry-After`` (which the client
    applies itself): until ``RateLimit-Reset`` when ``RateLimit-Remaining`` is 0; None
    otherwise, when the usual backoff applies."""
    if response.status_code != 429 or "Retry-After" in response.headers:
        return None
    return http.until_reset(response, "RateLimit-Remaining", "RateLimit-Reset")


def client(env: Mapping[str, str], **kwargs: Any) -> ApiClient:
    return ApiClient(API, fetching.account(API, env), describe=describe, limited=limited, **kwargs)


def project(value: str) -> str:
    """A project's numeric id, or its path (``group/sub/project``), or a usage error naming
    --project."""
    given = value.strip().strip("/").removesuffix(".git")
    if _ID.fullmatch(given):
        return given
    parts = given.split("/")
    if len(parts) >= 2 and all(
        _SEGMENT.fullmatch(part) and part not in (".", "..") for part in parts
    ):
        return given
    raise UsageError(f"--project: '{value}' is not a project id or path, such as 42 or group/api")


@dataclass(frozen=True)
class Options:
    """What to fetch: of each project (an id or a path), the successful deployments that
    finished in [since, until) and the incident issues opened in it."""

    projects: list[str]
    since: datetime
    until: datetime
    environments: list[str] = field(default_factory=list)  # none: every environment
    service: str | None = None  # for every project; else its path's last part
    service_map: Mapping[str, str] = field(default_factory=dict)  # path_with_namespace -> ...
    env_map: Mapping[str, str] = field(default_factory=dict)
    env: str | None = None  # for incidents
    team: str | None = None


def fetch(
    client: ApiClient, options: Options, *, progress: Callable[[int], None] | None = None
) -> Fetched:
    """The deployments and incidents of every project, as records."""
    fetched = Fetched()
    envs = Names(options.env_map, flag="--env-map", source="GitLab", what="environment")
    read: dict[int, str] = {}  # id -> path_with_namespace
    for given in options.projects:
        reader = _Project(client, given, options, fetched, progress, envs)
        reader.read(read)
    for full in sorted(set(options.service_map) - set(read.values())):
        fetched.warnings.append(f"--service-map: '{full}' is not the path of a --project given")
    fetched.warnings += envs.warnings()
    fetched.requests = client.requests
    return fetched


class _Project:
    def __init__(
        self,
        client: ApiClient,
        given: str,
        options: Options,
        fetched: Fetched,
        progress: Callable[[int], None] | None,
        envs: Callable[[str], str],
    ) -> None:
        self.client, self.options, self.fetched = client, options, fetched
        self.given, self.full = given, given
        self.path = f"/projects/{quote(given, safe='')}"
        self.progress, self.envs = progress, envs
        self.service = ""
        self.url = ""

    def read(self, read: dict[int, str]) -> None:
        """Read the project, then its deployments and incidents, unless it is among those
        ``read`` (named twice, by id and by path): add it to them."""
        what = f"read the project {self.given}"
        about, _ = self.client.get(self.path, what=what, check="--project")
        if not isinstance(about, dict) or not isinstance(about.get("id"), int):
            raise self.client.unexpected(what, "no id")
        for name in ("path_with_namespace", "path", "web_url"):
            if not isinstance(about.get(name), str) or not about[name]:
                raise self.client.unexpected(what, f"no {name}")
        self.full, self.url = about["path_with_namespace"], about["web_url"]
        if about["id"] in read:
            return
        read[about["id"]] = self.full
        self.path = f"/projects/{about['id']}"  # the id stays when a project moves
        self.service = (
            self.options.service_map.get(self.full) or self.options.service or about["path"]
        )
        deployments = self._deployments()
        fetching.ship(deployments, self._compare)
        for deployment in deployments:
            if deployment.record is not None:
                self._add(deployment.record)
        if about.get("issues_enabled") is False or about.get("issues_access_level") == "disabled":
            self.fetched.warnings.append(
                f"GitLab project {self.full} has issues turned off: no incidents from it"
            )
        else:
            for record in self._incidents():
                self._add(record)

    def _add(self, record: dict[str, Any]) -> None:
        self.fetched.records.append(record)
        if self.progress:
            self.progress(len(self.fetched.records))

    def _pages(self, path: str, params: dict[str, str], what: str) -> Iterator[list[Any]]:
        """The items of each page of a list, following ``X-Next-Page`` (``Link`` when an
        answer has no such header)."""
        url = self.path + path
        query: dict[str, str] | None = params
        while True:
            data, response = self.client.get(url, query, what=what, check="--project")
            if not isinstance(data, list):
                raise self.client.unexpected(what, "not a list")
            yield data
            following = response.headers.get("X-Next-Page")
            if following is None:
                link = fetching.next_link(response)
                if link is None:
                    return
                url, query = link, None
                continue
            if not following.strip():
                return
            if not _ID.fullmatch(following.strip()):
                raise self.client.unexpected(what, "X-Next-Page is not a page number")
            url, query = self.path + path, {**params, "page": following.strip()}

    # deployments

    def _deployments(self) -> list[Deployed]:
        """The successful deployments that finished in the window, in the order they
        finished, each environment's preceded by the latest that finished before it."""
        found: list[Deployed] = []
        asked: list[str | None] = [*self.options.environments] or [None]
        for environment in asked:
            found += self._of_environment(environment)
        before = [
            earlier
            for env in dict.fromkeys(d.env for d in found)
            if (earlier := self._before(env)) is not None
        ]
        return before + found

    def _query(self, environment: str | None, **more: str) -> dict[str, str]:
        params = {"status": "success", "order_by": "finished_at", **more}
        if environment is not None:
            params["environment"] = environment
        return params

    def _of_environment(self, environment: str | None) -> list[Deployed]:
        what = f"list the deployments of {self.full}"
        params = self._query(
            environment,
            sort="asc",
            finished_after=fetching.iso(self.options.since),
            finished_before=fetching.iso(self.options.until),
            per_page=PAGE,
        )
        found = []
        for page in self._pages("/deployments", params, what):
            for item in page:
                found.append(self._deployment(item, what))
        return found

    def _before(self, env: str) -> Deployed | None:
        """The latest successful deployment to ``env`` that finished before the window: it
        gives the first of the window its commits, and is not stored."""
        what = f"list the deployments of {self.full}"
        params = self._query(
            env, sort="desc", finished_before=fetching.iso(self.options.since), per_page="1"
        )
        data, _ = self.client.get(f"{self.path}/deployments", params, what=what, check="--project")
        if not isinstance(data, list):
            raise self.client.unexpected(what, "not a list")
        if not data:
            return None
        item = data[0]
        sha = item.get("sha") if isinstance(item, dict) else None
        # it finished before the window: it comes before every deployment of it
        return Deployed(sha if isinstance(sha, str) else None, env, self.options.since, None)

    def _deployment(self, item: Any, what: str) -> Deployed:
        if not isinstance(item, dict) or not isinstance(item.get("id"), int):
            raise self.client.unexpected(what, "a deployment without an id")
        environment = item.get("environment")
        name = environment.get("name") if isinstance(environment, dict) else None
        if not isinstance(name, str) or not name:
            raise self.client.unexpected(what, "a deployment without an environment")
        job = item.get("deployable")
        job = job if isinstance(job, dict) else {}
        # no finished_at of its own: its job's, else its last update (a successful
        # deployment is not updated after it finished)
        moment = fetching.moment
        started = moment(job.get("started_at")) or moment(item.get("created_at"))
        finished = moment(job.get("finished_at")) or moment(item.get("updated_at"))
        if finished is None:
            raise self.client.unexpected(what, f"deployment {item['id']} has no finish time")
        sha = item.get("sha") if isinstance(item.get("sha"), str) else None
        record = {
            "type": "deployment",
            "id": fetching.event_id("gitlab-deployment", item["id"]),
            "service": self.service,
            "env": self.envs(name),
            "team": self.options.team,
            "started_at": fetching.iso(started or finished),
            "finished_at": fetching.iso(finished),
            "git": {"repository_url": self.url, "commit_sha": sha},
        }
        return Deployed(sha, name, finished, _clean(record))

    # commits

    def _compare(self, base: str, head: str) -> list[dict[str, Any]] | None:
        """The commits reachable from ``head`` and not from ``base`` (from their merge
        base), merges skipped, the newest MAX_COMMITS; None (with a warning) when GitLab
        cannot compare them."""
        from dora.gitmeta import MAX_COMMITS

        what = f"compare {base[:12]}...{head[:12]} of {self.full}"
        try:
            data, _ = self.client.get(
                f"{self.path}/repository/compare",
                {"from": base, "to": head},
                what=what,
                check="--project",
            )
        except FetchError as exc:
            if exc.status in (401, 403):  # the token: every other request fails too
                raise
            self.fetched.warnings.append(fetching.uncompared("GitLab", base, head, self.full, exc))
            return None
        listed = data.get("commits") if isinstance(data, dict) else None
        if not isinstance(listed, list):
            raise self.client.unexpected(what, "no commits list")
        shipped = [
            fetching.commit(item.get("id"), item.get("committed_date"), item.get("message"))
            for item in listed  # oldest first
            if isinstance(item, dict) and len(item.get("parent_ids") or []) <= 1
        ]  # a merge commit is skipped: its changes came with the commits it merged
        return shipped[-MAX_COMMITS:][::-1]  # newest first, as git lists them

    # incidents

    def _incidents(self) -> Iterator[dict[str, Any]]:
        """The incident issues opened in the window (GitLab's ends are both included)."""
        what = f"list the incident issues of {self.full}"
        params = {
            "issue_type": "incident",
            "scope": "all",
            "state": "all",
            "created_after": fetching.iso(self.options.since),
            "created_before": fetching.iso(self.options.until),
            "order_by": "created_at",
            "sort": "asc",
            "per_page": PAGE,
        }
        for page in self._pages("/issues", params, what):
            for issue in page:
                if not isinstance(issue, dict) or not isinstance(issue.get("id"), int):
                    raise self.client.unexpected(what, "an issue without an id")
                created = fetching.moment(issue.get("created_at"))
                if created is None:
                    raise self.client.unexpected(what, f"issue {issue['id']} has no created_at")
                if not self.options.since <= created < self.options.until:
                    continue
                # a reopened issue is "opened" again, its closed_at cleared: open
                closed = issue.get("closed_at") if issue.get("state") == "closed" else None
                if (closed_at := fetching.moment(closed)) is not None:
                    closed = fetching.iso(closed_at)
                severity = issue.get("severity")
                yield _clean(
                    {
                        "type": "incident",
                        "id": fetching.event_id("gitlab-issue", issue["id"]),
                        "services": [self.service],
                        "env": self.options.env,
                        "team": self.options.team,
                        "name": fetching.line(issue.get("title")),
                        "severity": None if severity == "UNKNOWN" else severity,
                        "started_at": fetching.iso(created),
                        "finished_at": closed,
                    }
                )


def _clean(record: dict[str, Any]) -> dict[str, Any]:
    """The record without its empty fields."""
    return {key: value for key, value in record.items() if value is not None}
