"""dora fetch gitlab: the installed command against a fake GitLab REST API v4 on 127.0.0.1
that answers as GitLab's documented one does (deployments filtered by status, environment
and finish, incident issues filtered by creation, the compare of two SHAs), two items to a
page with ``X-Next-Page`` and ``Link`` headers, and can answer 429, 401 or 404."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import pytest

from conftest import everything, rows
from fakeapi import Request, link, run_dora, serve

TOKEN = "glpat-5ecr3t0123456789abcdef"
ID = 42
FULL = "acme/platform/api"
WEB = "https://gitlab.example.com/acme/platform/api"
SINCE, UNTIL = "2026-11-01", "2026-11-08"
PER_PAGE = 2  # the fake's pages, whatever is asked: every list takes several


def at(day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(2026, 11, 1, tzinfo=timezone.utc) + timedelta(
        days=day - 1, hours=hour, minutes=minute
    )


def gl(moment: datetime | None) -> str | None:
    """A time as GitLab writes it: milliseconds and Z."""
    return None if moment is None else moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def sha(name: str) -> str:
    return hashlib.sha1(name.encode(), usedforsecurity=False).hexdigest()


def when(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def ns(moment: datetime) -> int:
    return int(moment.timestamp()) * 1_000_000_000


def deployment(
    n: int,
    env: str,
    commit: str,
    finished: datetime,
    *,
    status: str = "success",
    took: timedelta | None = timedelta(minutes=10),
) -> dict[str, Any]:
    """A deployment as GitLab's API gives it; ``took`` None: no job (created by the API)."""
    started = finished - (took or timedelta(minutes=3))
    job = None
    if took is not None:
        job = {
            "id": 9000 + n,
            "name": "deploy",
            "stage": "deploy",
            "status": status,
            "ref": "main",
            "tag": False,
            "created_at": gl(started - timedelta(minutes=1)),
            "started_at": gl(started),
            "finished_at": gl(finished),
            "duration": took.total_seconds(),
        }
    return {
        "id": n,
        "iid": n - 99,
        "ref": "main",
        "sha": sha(commit),
        "created_at": gl(started - timedelta(minutes=1)),
        "updated_at": gl(finished + timedelta(seconds=1) if job else finished),
        "status": status,
        "user": {"id": 1, "username": "deployer"},
        "environment": {"id": {"production": 1, "staging": 2}[env], "name": env},
        "deployable": job,
        # what GitLab filters and sorts on, not in its answer
        "_finished": finished,
    }


def commit(name: str, committed: datetime, *, parents: int = 1, message: str = "") -> dict:
    return {
        "id": sha(name),
        "short_id": sha(name)[:8],
        "title": message or f"Change {name}",
        "message": (message or f"Change {name}") + "\n\nDetails.\n",
        "author_name": "Dev",
        "committed_date": gl(committed),
        "authored_date": gl(committed),
        "parent_ids": [sha(f"{name}-parent-{i}") for i in range(parents)],
    }


def issue(n: int, created: datetime, *, state: str, closed: datetime | None, severity: str):
    return {
        "id": n,
        "iid": n - 9000,
        "project_id": ID,
        "title": f"Checkout errors\n{n}",
        "description": "Customers cannot pay.",
        "state": state,
        "created_at": gl(created),
        "updated_at": gl(closed or created),
        "closed_at": gl(closed),
        "labels": [],
        "issue_type": "incident",
        "type": "INCIDENT",
        "severity": severity,
        "web_url": f"{WEB}/-/issues/{n - 9000}",
    }


@dataclass
class FakeGitLab:
    deployments: list[dict] = field(default_factory=list)
    issues: list[dict] = field(default_factory=list)
    #: (from, to) -> the commits GitLab's compare lists, oldest first
    compares: dict[tuple[str, str], list[dict]] = field(default_factory=dict)
    #: (path, page) -> an answer given once instead of the real one
    script: dict[tuple[str, str], tuple[int, dict, Any]] = field(default_factory=dict)
    url: str = ""
    issues_enabled: bool = True

    def answer(self, request: Request) -> tuple[int, dict, Any]:
        if request.headers.get("private-token") != TOKEN:
            return 401, {}, {"message": "401 Unauthorized"}
        path = request.path.removeprefix("/api/v4")
        if (scripted := self.script.pop((path, request.one("page") or "1"), None)) is not None:
            return scripted
        if path in (f"/projects/{ID}", "/projects/acme%2Fplatform%2Fapi"):
            return 200, {}, self.project()
        if not path.startswith(f"/projects/{ID}/"):
            return 404, {}, {"message": "404 Project Not Found"}
        if path.endswith("/deployments"):
            return self.page(request, path, self.listed_deployments(request))
        if path.endswith("/issues"):
            return self.page(request, path, self.listed_issues(request))
        if path.endswith("/repository/compare"):
            key = (request.one("from"), request.one("to"))
            if key not in self.compares:
                return 404, {}, {"message": "404 Ref Not Found"}
            commits = self.compares[key]
            return (
                200,
                {},
                {
                    "commit": commits[-1] if commits else None,
                    "commits": commits,
                    "diffs": [{"old_path": "app.py", "new_path": "app.py", "diff": "@@ -1 +1 @@"}],
                    "compare_timeout": False,
                    "compare_same_ref": False,
                    "web_url": f"{WEB}/-/compare/{key[0]}...{key[1]}",
                },
            )
        return 404, {}, {"message": "404 Not Found"}

    def project(self) -> dict:
        return {
            "id": ID,
            "name": "API",
            "path": "api",
            "path_with_namespace": FULL,
            "name_with_namespace": "Acme / Platform / API",
            "web_url": WEB,
            "default_branch": "main",
            "issues_enabled": self.issues_enabled,
            "issues_access_level": "enabled" if self.issues_enabled else "disabled",
        }

    def listed_deployments(self, request: Request) -> list[dict]:
        found = self.deployments
        if status := request.one("status"):
            found = [d for d in found if d["status"] == status]
        if env := request.one("environment"):
            found = [d for d in found if d["environment"]["name"] == env]
        if after := request.one("finished_after"):
            found = [d for d in found if d["_finished"] >= when(after)]
        if before := request.one("finished_before"):
            found = [d for d in found if d["_finished"] < when(before)]
        assert request.one("order_by") == "finished_at"
        found = sorted(found, key=lambda d: d["_finished"], reverse=request.one("sort") == "desc")
        return [{k: v for k, v in d.items() if not k.startswith("_")} for d in found]

    def listed_issues(self, request: Request) -> list[dict]:
        found = [i for i in self.issues if i["issue_type"] == request.one("issue_type")]
        if after := request.one("created_after"):  # both ends included, as GitLab's
            found = [i for i in found if when(i["created_at"]) >= when(after)]
        if before := request.one("created_before"):
            found = [i for i in found if when(i["created_at"]) <= when(before)]
        return sorted(found, key=lambda i: i["created_at"])

    def page(self, request: Request, path: str, items: list) -> tuple[int, dict, Any]:
        number = int(request.one("page") or "1")
        size = min(int(request.one("per_page") or "20"), PER_PAGE)
        shown = items[(number - 1) * size : number * size]
        more = number * size < len(items)
        headers = {"X-Page": str(number), "X-Per-Page": str(size), "X-Next-Page": ""}
        if more:
            query = {k: v[0] for k, v in request.query.items()} | {"page": str(number + 1)}
            headers["X-Next-Page"] = str(number + 1)
            headers["Link"] = link(self.url, f"/api/v4{path}", query)
        return 200, headers, shown


def history() -> FakeGitLab:
    """Production: one deployment before the window, four in it (and a failed one); staging:
    two of one SHA. Two incident issues in the window, one reopened; one at its end."""
    fake = FakeGitLab()
    fake.deployments = [
        deployment(100, "production", "S0", at(-1, 12)),  # before the window
        deployment(101, "production", "S1", at(2, 10)),
        deployment(102, "production", "S9", at(3, 10), status="failed"),
        deployment(103, "production", "S2", at(4, 10), took=None),  # no job
        deployment(104, "production", "S3", at(5, 10)),
        deployment(106, "production", "S4", at(7, 10)),
        deployment(200, "staging", "S1", at(2, 9)),
        deployment(201, "staging", "S1", at(3, 9)),
        deployment(300, "production", "S5", at(8)),  # at the window's end: not in it
    ]
    fake.compares = {
        (sha("S0"), sha("S1")): [
            commit("c1", at(1, 10)),
            commit("m1", at(2, 9), parents=2, message="Merge branch 'feature'"),
            commit("c2", at(2, 8)),
        ],
        (sha("S1"), sha("S2")): [commit("c3", at(3, 10))],
        (sha("S2"), sha("S3")): [commit("c4", at(5, 4)), commit("c5", at(5, 8))],
        (sha("S3"), sha("S4")): [commit("c6", at(6, 22))],
    }
    fake.issues = [
        issue(9001, at(5, 11), state="closed", closed=at(5, 13), severity="CRITICAL"),
        # closed, then reopened: GitLab clears closed_at
        issue(9002, at(7, 12), state="opened", closed=None, severity="UNKNOWN"),
        issue(9003, at(8), state="opened", closed=None, severity="LOW"),  # at the end
    ]
    return fake


def fetch(fake: FakeGitLab, db, *args: str, token: str | None = TOKEN):
    with serve(fake.answer) as api:
        fake.url = api.url
        result = run_dora(
            "fetch", "gitlab", "--project", FULL, "--since", SINCE, "--until", UNTIL,
            "--env", "prod", *args,
            env={"GITLAB_TOKEN": token, "GITLAB_URL": api.url, "DORA_DB": str(db)},
        )  # fmt: skip
    return result, api.requests


@pytest.fixture
def db_path(store_db):
    """Every test here that reads the store runs on both engines."""
    return store_db


#: HTTP behaviour, not the store's: one engine is enough
ONE_ENGINE = pytest.mark.parametrize("store_db", ["sqlite"], indirect=True)


def test_deployments_commits_and_incidents_are_stored_across_pages(db_path):
    fake = history()
    fake.script = {(f"/projects/{ID}/deployments", "2"): (429, {"Retry-After": "1"}, {})}

    result, requests = fetch(fake, db_path, "--env-map", "production=prod")

    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert lines[0] == (
        "dora: warning: GitLab environment 'staging' is not in --env-map; its 2 events keep "
        "that name"
    )
    assert lines[1].startswith("Fetched 6 deployments and 2 incidents from GitLab in ")
    assert (
        lines[-1] == f"Imported 8 events from GitLab into {db_path}: 8 new, 0 updated, 0 unchanged."
    )
    # the project by its path, as one segment; then by its id
    assert requests[0].path == "/api/v4/projects/acme%2Fplatform%2Fapi"
    listed = [r for r in requests if r.path == f"/api/v4/projects/{ID}/deployments"]
    window = [r for r in listed if r.one("finished_after")]
    # three pages, the second asked again after its 429
    assert [r.one("page") for r in window] == [None, "2", "2", "3"]
    assert all(
        (r.one("status"), r.one("order_by"), r.one("sort"), r.one("per_page"))
        == ("success", "finished_at", "asc", "100")
        for r in window
    )
    assert window[0].one("finished_after") == "2026-11-01T00:00:00Z"
    assert window[0].one("finished_before") == "2026-11-08T00:00:00Z"
    assert window[0].one("environment") is None
    # one request per environment for the deployment before the window
    before = [r for r in listed if not r.one("finished_after")]
    assert sorted(
        (r.one("environment"), r.one("sort"), r.one("per_page"), r.one("finished_before"))
        for r in before
    ) == [
        ("production", "desc", "1", "2026-11-01T00:00:00Z"),
        ("staging", "desc", "1", "2026-11-01T00:00:00Z"),
    ]
    assert all(r.headers["private-token"] == TOKEN for r in requests)

    deployments = rows(
        db_path, "SELECT id, service, env, started_at, finished_at, commit_sha, repository_url "
        "FROM deployments ORDER BY finished_at",
    )  # fmt: skip
    assert [d["id"] for d in deployments] == [
        "gitlab-deployment-200", "gitlab-deployment-101", "gitlab-deployment-201",
        "gitlab-deployment-103", "gitlab-deployment-104", "gitlab-deployment-106",
    ]  # fmt: skip
    assert {d["service"] for d in deployments} == {"api"}
    assert [d["env"] for d in deployments] == ["staging", "prod", "staging", "prod", "prod", "prod"]
    first = deployments[1]
    assert (first["started_at"], first["finished_at"]) == (ns(at(2, 9, 50)), ns(at(2, 10)))
    assert (first["commit_sha"], first["repository_url"]) == (sha("S1"), WEB)
    # no job: created_at and updated_at
    assert (deployments[3]["started_at"], deployments[3]["finished_at"]) == (
        ns(at(4, 9, 56)),
        ns(at(4, 10)),
    )

    shipped = rows(
        db_path, "SELECT deployment_id, sha, committed_at FROM deployment_commits "
        "ORDER BY deployment_id, committed_at",
    )  # fmt: skip
    assert [(c["deployment_id"], c["sha"], c["committed_at"]) for c in shipped] == [
        # the first of the window: from the one before it, the merge skipped
        ("gitlab-deployment-101", sha("c1"), ns(at(1, 10))),
        ("gitlab-deployment-101", sha("c2"), ns(at(2, 8))),
        ("gitlab-deployment-103", sha("c3"), ns(at(3, 10))),
        ("gitlab-deployment-104", sha("c4"), ns(at(5, 4))),
        ("gitlab-deployment-104", sha("c5"), ns(at(5, 8))),
        ("gitlab-deployment-106", sha("c6"), ns(at(6, 22))),
    ]  # staging: its first has nothing before it, its second the same SHA
    compared = [r for r in requests if r.path.endswith("/repository/compare")]
    assert len(compared) == 4
    assert all(r.one("straight") is None for r in compared)

    incidents = rows(
        db_path, "SELECT id, name, severity, env, started_at, finished_at FROM incidents "
        "ORDER BY started_at",
    )  # fmt: skip
    assert incidents == [
        {
            "id": "gitlab-issue-9001",
            "name": "Checkout errors 9001",
            "severity": "CRITICAL",
            "env": "prod",
            "started_at": ns(at(5, 11)),
            "finished_at": ns(at(5, 13)),
        },
        {  # reopened: open
            "id": "gitlab-issue-9002",
            "name": "Checkout errors 9002",
            "severity": None,
            "env": "prod",
            "started_at": ns(at(7, 12)),
            "finished_at": None,
        },
    ]
    assert rows(db_path, "SELECT DISTINCT service FROM incident_services") == [{"service": "api"}]
    issues = [r for r in requests if r.path.endswith("/issues")]
    assert [r.one("page") for r in issues] == [None, "2"]
    assert {
        k: issues[0].one(k)
        for k in ("issue_type", "scope", "state", "created_after", "created_before", "order_by")
    } == {
        "issue_type": "incident",
        "scope": "all",
        "state": "all",
        "created_after": "2026-11-01T00:00:00Z",
        "created_before": "2026-11-08T00:00:00Z",
        "order_by": "created_at",
    }

    again, _ = fetch(history(), db_path, "--env-map", "production=prod")

    assert again.returncode == 0, again.stderr
    assert again.stderr.splitlines()[-1] == (
        f"Imported 8 events from GitLab into {db_path}: 0 new, 0 updated, 8 unchanged."
    )


def test_metrics_of_the_fetched_history(db_path):
    fetched, _ = fetch(history(), db_path, "--env-map", "production=prod", "--team", "core")
    assert fetched.returncode == 0, fetched.stderr

    result = run_dora(
        "metrics", "--since", SINCE, "--until", UNTIL, "--env", "prod", "--by", "none",
        "--format", "json", env={"DORA_DB": str(db_path)},
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    total = json.loads(result.stdout)["total"]
    hour = 3600.0
    # production: 101, 103, 104 and 106 finished in the 7 days (the failed one is not asked
    # for, 300 finished at the end); staging is filtered out
    assert total["deployments"] == 4
    assert total["deployment_frequency_per_day"] == pytest.approx(4 / 7)
    # commit -> finish: 101: c1 24h, c2 2h (the merge skipped); 103: c3 24h; 104: c4 6h,
    # c5 2h; 106: c6 12h. Sorted 2, 2, 6, 12, 24, 24: the median is (6 + 12) / 2
    assert total["median_lead_time_seconds"] == 9 * hour
    # issue 9001 (11-05 11:00) follows 104 (11-05 10:00); 9002 (11-07 12:00) follows 106
    assert (total["failed_deployments"], total["change_failure_rate"]) == (2, 0.5)
    # 104 recovered when 9001 closed at 13:00; 106's incident was reopened: still open
    assert total["recovered_failed_deployments"] == 1
    assert total["median_recovery_time_seconds"] == 3 * hour
    assert total["unrecovered_failed_deployments"] == 1
    assert (total["failures"], total["resolved_failures"], total["open_failures"]) == (2, 1, 1)
    assert total["mttr_seconds"] == 2 * hour  # 11:00 to 13:00
    assert total["oldest_open_failure_age_seconds"] == 12 * hour  # 11-07 12:00 to the end
    assert total["rework_deployments"] == 0


@ONE_ENGINE
def test_a_dry_run_prints_the_records_and_writes_nothing(db_path):
    result, _ = fetch(history(), db_path, "--dry-run")

    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["id"] for r in records] == [
        "gitlab-deployment-200", "gitlab-deployment-101", "gitlab-deployment-201",
        "gitlab-deployment-103", "gitlab-deployment-104", "gitlab-deployment-106",
        "gitlab-issue-9001", "gitlab-issue-9002",
    ]  # fmt: skip
    assert records[1] == {
        "type": "deployment",
        "id": "gitlab-deployment-101",
        "service": "api",
        "env": "production",
        "started_at": "2026-11-02T09:50:00Z",
        "finished_at": "2026-11-02T10:00:00Z",
        "git": {"repository_url": WEB, "commit_sha": sha("S1")},
        "commits": [
            {"sha": sha("c2"), "committed_at": "2026-11-02T08:00:00.000Z", "subject": "Change c2"},
            {"sha": sha("c1"), "committed_at": "2026-11-01T10:00:00.000Z", "subject": "Change c1"},
        ],
    }
    assert result.stderr.splitlines()[-1] == "Dry run: nothing was written."
    assert rows(db_path, "SELECT id FROM deployments") == []


@ONE_ENGINE
def test_a_refused_token_is_one_line_naming_the_variable(db_path):
    result, requests = fetch(history(), db_path, token="glpat-wrong0123456789")

    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        "dora: error: GitLab refused the token (401 Unauthorized); check GITLAB_TOKEN"
    ]
    assert len(requests) == 1


def test_the_token_is_in_no_output_and_no_store_file(db_path):
    fake = history()
    fake.compares.pop((sha("S1"), sha("S2")))  # a warning that names the project
    result, _ = fetch(fake, db_path, "-v")
    refused = history()
    refused.script = {("/projects/acme%2Fplatform%2Fapi", "1"): (403, {}, {"message": TOKEN})}
    failed, _ = fetch(refused, db_path, "-v")

    assert result.returncode == 0, result.stderr
    assert failed.returncode == 1
    assert "dora: warning: GitLab cannot compare " in result.stderr
    assert "GitLab did not let the token read the project acme/platform/api" in failed.stderr
    for output in (result.stdout, result.stderr, failed.stdout, failed.stderr):
        assert TOKEN not in output
    assert "gitlab-deployment-101" in everything(db_path)
    assert TOKEN not in everything(db_path)


def test_a_project_gitlab_does_not_find_names_the_option(isolated):
    with serve(history().answer) as api:
        result = run_dora(
            "fetch", "gitlab", "--project", "acme/other", "--dry-run",
            env={"GITLAB_TOKEN": TOKEN, "GITLAB_URL": api.url},
        )  # fmt: skip

    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "dora: error: GitLab found nothing when asked to read the project acme/other (404 Not "
        "Found: Project Not Found); check --project and that GITLAB_TOKEN may read it"
    ]
    assert api.requests[0].path == "/api/v4/projects/acme%2Fother"


def test_a_service_map_names_the_service_and_warns_of_unknown_paths(isolated):
    # the project named by id and by path: read once; issues turned off: no incidents
    fake = history()
    fake.issues_enabled = False
    with serve(fake.answer) as api:
        fake.url = api.url
        result = run_dora(
            "fetch", "gitlab", "--project", str(ID), "--project", FULL,  # one, twice
            "--since", SINCE, "--until", UNTIL,
            "--environment", "production", "--service-map", f"{FULL}=checkout",
            "--service-map", "acme/typo=web", "--dry-run",
            env={"GITLAB_TOKEN": TOKEN, "GITLAB_URL": api.url},
        )  # fmt: skip

    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert {r["service"] for r in records} == {"checkout"}
    assert {r["env"] for r in records} == {"production"}
    assert len(records) == 4  # read once
    assert result.stderr.splitlines()[:2] == [
        "dora: warning: GitLab project acme/platform/api has issues turned off: no incidents "
        "from it",
        "dora: warning: --service-map: 'acme/typo' is not the path of a --project given",
    ]
    assert all(r.one("environment") == "production" for r in api.requests if "deploy" in r.path)
    assert not [r for r in api.requests if r.path.endswith("/issues")]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--project", FULL, "--service-map", "acme/api"],
            "--service-map: 'acme/api' is not 'PATH=SERVICE'",
        ),
        (
            ["--project", "api"],
            "--project: 'api' is not a project id or path, such as 42 or group/api",
        ),
    ],
)
def test_usage_errors_are_one_line_and_exit_2(isolated, args, message):
    result = run_dora(
        "fetch", "gitlab", *args, env={"GITLAB_TOKEN": TOKEN, "GITLAB_URL": "http://127.0.0.1:9"}
    )

    assert result.returncode == 2
    assert result.stderr.splitlines() == [f"dora: error: {message}"]


def test_a_missing_token_is_a_usage_error_naming_the_variable(isolated):
    result = run_dora("fetch", "gitlab", "--project", FULL, env={"GITLAB_TOKEN": None})

    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "dora: error: GITLAB_TOKEN is not set: give it a GitLab token with the read_api scope "
        "that may read the projects"
    ]


# --- the pieces ------------------------------------------------------------------------------


def response(status: int, body: Any = None, **headers: str) -> httpx.Response:
    return httpx.Response(
        status, json=body, headers=headers, request=httpx.Request("GET", "https://gitlab.com")
    )


def test_a_429_without_retry_after_waits_until_the_limit_resets():
    import time

    from dora import gitlab

    spent = {"RateLimit-Remaining": "0", "RateLimit-Reset": str(int(time.time()) + 30)}

    assert 28 < gitlab.limited(response(429, {}, **spent)) <= 30
    assert gitlab.limited(response(429, {}, **spent, **{"Retry-After": "5"})) is None
    assert gitlab.limited(response(429, {})) is None  # GitLab.com at times: the backoff
    assert gitlab.limited(response(403, {}, **spent)) is None


@pytest.mark.parametrize(
    ("status", "body", "line"),
    [
        (404, {"message": "404 Project Not Found"}, "404 Not Found: Project Not Found"),
        (401, {"message": "401 Unauthorized"}, "401 Unauthorized"),
        (400, {"message": {"from": ["is missing"]}}, "400 Bad Request: from: is missing"),
        (
            401,
            {"error": "invalid_token", "error_description": "Token is expired."},
            "401 Unauthorized: Token is expired.",
        ),
        (403, {"error": "insufficient_scope"}, "403 Forbidden: insufficient_scope"),
    ],
)
def test_gitlab_errors_are_one_line(status, body, line):
    from dora import gitlab

    assert gitlab.describe(response(status, body)) == line
