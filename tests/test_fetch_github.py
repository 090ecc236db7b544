"""dora fetch github: the installed command against a fake GitHub REST API on 127.0.0.1.

``FakeGitHub`` answers as GitHub documents: a repository, its deployments newest first
with their statuses, workflow runs filtered by branch, status and a ``created`` range,
compare between two commits of one linear history (oldest first, paged), issues by label
with pull requests among them, ``Link`` headers for the next page (two items to a page,
whatever ``per_page`` asks, so that paging is exercised), and a rate limit when told.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from conftest import everything
from fakeapi import Request, link, run_dora, serve

TOKEN = "ghp_5ecr3tT0kenV4lue0123456789abcdefABCD"  # the shape of a classic token
T0 = datetime(2026, 10, 1, tzinfo=timezone.utc)
WINDOW = ("--since", "2026-10-01", "--until", "2026-11-01")
PAGE = 2


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def sha(n: int) -> str:
    return f"{n:040x}"


@dataclass
class FakeGitHub:
    """One repository, octo-org/api, with a linear history of commits 1..n (commit n
    landed at T0 - 1 day + n hours) and merge commits where told."""

    commits: int = 20
    merges: set[int] = field(default_factory=set)
    deployments: list[dict[str, Any]] = field(default_factory=list)
    statuses: dict[int, list[str]] = field(default_factory=dict)
    runs: list[dict[str, Any]] = field(default_factory=list)
    issues: list[dict[str, Any]] = field(default_factory=list)
    #: answers to give instead of the real one, by request number (1 is the first)
    script: dict[int, tuple[int, dict[str, str], Any]] = field(default_factory=dict)
    url: str = ""
    seen: int = 0

    def committed(self, n: int) -> datetime:
        return T0 - timedelta(days=1) + timedelta(hours=n)

    def deploy(self, n: int, created: datetime, commit: int, env: str, *states: str) -> None:
        """Deployment n of commit ``commit``; each status a minute after the last."""
        self.deployments.append(
            {
                "url": f"{self.url}/repos/octo-org/api/deployments/{n}",
                "id": n,
                "node_id": f"DE_{n}",
                "sha": sha(commit),
                "ref": "main",
                "task": "deploy",
                "payload": {},
                "original_environment": env,
                "environment": env,
                "description": None,
                "creator": {"login": "octocat", "id": 1},
                "created_at": iso(created),
                "updated_at": iso(created),
                "statuses_url": f"{self.url}/repos/octo-org/api/deployments/{n}/statuses",
                "repository_url": f"{self.url}/repos/octo-org/api",
                "transient_environment": False,
                "production_environment": env == "production",
            }
        )
        self.statuses[n] = list(states)

    def answer(self, request: Request) -> tuple[int, dict[str, str], Any]:
        self.seen += 1
        if (scripted := self.script.pop(self.seen, None)) is not None:
            return scripted
        if request.headers.get("authorization") != f"Bearer {TOKEN}":
            return 401, {}, {"message": "Bad credentials", "documentation_url": "x"}
        if not request.path.lower().startswith("/repos/octo-org/api"):
            return 404, {}, {"message": "Not Found", "documentation_url": "x"}
        path = request.path[len("/repos/octo-org/api") :]  # GitHub reads names in any case
        if path == "":
            return (
                200,
                {},
                {
                    "id": 1296269,
                    "name": "api",
                    "full_name": "octo-org/api",
                    "html_url": "https://github.com/octo-org/api",
                    "default_branch": "main",
                },
            )
        if path == "/deployments":
            found = [
                d
                for d in sorted(self.deployments, key=lambda d: d["id"], reverse=True)
                if request.one("environment") in (None, d["environment"])
            ]
            return self.page(request, found)
        if path.startswith("/deployments/") and path.endswith("/statuses"):
            n = int(path.split("/")[2])
            created = datetime.fromisoformat(
                next(d for d in self.deployments if d["id"] == n)["created_at"][:-1]
            ).replace(tzinfo=timezone.utc)
            listed = [
                {
                    "id": n * 100 + i,
                    "state": state,
                    "created_at": iso(created + timedelta(minutes=i + 1)),
                    "updated_at": iso(created + timedelta(minutes=i + 1)),
                    "environment": "production",
                }
                for i, state in enumerate(self.statuses[n])
            ]
            return self.page(request, listed[::-1])  # newest first
        if path.startswith("/compare/"):
            base, _, head = path.removeprefix("/compare/").partition("...")
            first, last = int(base, 16), int(head, 16)
            listed = [self.commit(n) for n in range(first + 1, last + 1)]
            body = {"status": "ahead", "ahead_by": len(listed), "total_commits": len(listed)}
            return self.page(request, listed, body=body, key="commits", oldest_first=True)
        if path == "/actions/workflows/deploy.yml/runs":
            low, _, high = request.one("created").partition("..")
            found = [
                run
                for run in sorted(self.runs, key=lambda r: r["id"], reverse=True)
                if run["head_branch"] == request.one("branch")
                and run["conclusion"] == request.one("status")
                and (
                    run["created_at"] < low.removeprefix("<")
                    if low.startswith("<")
                    else low <= run["created_at"] <= high
                )
            ]
            return self.page(request, found, body={"total_count": len(found)}, key="workflow_runs")
        if path == "/issues":
            assert request.one("state") == "all"
            found = [
                issue
                for issue in self.issues
                if request.one("labels") in [label["name"] for label in issue["labels"]]
                and issue["updated_at"] >= request.one("since")
            ]
            return self.page(request, found)
        return 404, {}, {"message": "Not Found", "documentation_url": "x"}

    def commit(self, n: int) -> dict[str, Any]:
        message = f"Change {n}\n\nDetails of change {n}."
        if n == 4:  # a tab and a bare carriage return: one plain line is kept
            message = "Change\t4\rDetails of change 4."
        if n in self.merges:
            message = f"Merge pull request #{n} from octo-org/topic"
        return {
            "sha": sha(n),
            "commit": {
                "author": {"name": "Mona", "date": iso(self.committed(n) - timedelta(hours=1))},
                "committer": {"name": "GitHub", "date": iso(self.committed(n))},
                "message": message,
            },
            "parents": [{"sha": sha(n - 1)}]
            + ([{"sha": sha(900 + n)}] if n in self.merges else []),
        }

    def page(
        self,
        request: Request,
        items: list[Any],
        *,
        body: dict[str, Any] | None = None,
        key: str | None = None,
        oldest_first: bool = False,
    ) -> tuple[int, dict[str, str], Any]:
        number = int(request.one("page") or 1)
        chunk = items[(number - 1) * PAGE : number * PAGE]
        headers = {}
        if number * PAGE < len(items):
            query = {k: v[0] for k, v in request.query.items()}
            headers["Link"] = link(self.url, request.path, {**query, "page": str(number + 1)})
        if key is None:
            return 200, headers, chunk
        return 200, headers, {**(body or {}), key: chunk}


@pytest.fixture
def github():
    fake = FakeGitHub()
    with serve(fake.answer) as api:
        fake.url = api.url
        fake.api = api  # type: ignore[attr-defined]
        yield fake


@pytest.fixture
def db_path(store_db):
    """Every test here runs on both engines."""
    return store_db


#: HTTP behaviour, not the store's: one engine is enough
ONE_ENGINE = pytest.mark.parametrize("store_db", ["sqlite"], indirect=True)


def dora(github: FakeGitHub, *args: str, **env: str | None):
    return run_dora(*args, env={"GITHUB_TOKEN": TOKEN, "GITHUB_API_URL": github.url, **env})


def fetch(github: FakeGitHub, *args: str, **env: str | None):
    return dora(github, "fetch", "github", "--repo", "octo-org/api", *WINDOW, *args, **env)


def exported(github: FakeGitHub) -> dict[str, dict[str, Any]]:
    result = dora(github, "export", "--format", "ndjson")
    assert result.returncode == 0, result.stderr
    return {record["id"]: record for record in map(json.loads, result.stdout.splitlines())}


def shas(record: dict[str, Any]) -> list[str]:
    return sorted(commit["sha"] for commit in record["commits"])


def history(github: FakeGitHub) -> None:
    """Five deployments to production and one to staging in October, one before it:

    * 1 (Sep 30, commit 2): before the window; gives deployment 2 its commits
    * 2 (Oct 2, commit 5): failure, then success a minute later
    * 3 (Oct 3, commit 5): never succeeded (error): not counted
    * 4 (Oct 5, commit 9, a merge at 8): success
    * 5 (Oct 6, commit 12): staging
    * 6 (Nov 2): after the window
    """
    github.deploy(1, T0 - timedelta(days=1), 2, "production", "success")
    github.deploy(2, T0 + timedelta(days=1), 5, "production", "failure", "success")
    github.deploy(3, T0 + timedelta(days=2), 5, "production", "pending", "error")
    github.deploy(4, T0 + timedelta(days=4), 9, "production", "in_progress", "success")
    github.deploy(5, T0 + timedelta(days=5), 12, "staging", "success")
    github.deploy(6, T0 + timedelta(days=32), 14, "production", "success")
    github.merges.add(8)


def test_deployments_that_succeeded_are_fetched_with_the_commits_they_shipped(github, db_path):
    history(github)
    result = fetch(github, "--env-map", "production=prod")
    assert result.returncode == 0, result.stderr
    assert "Fetched 3 deployments and 0 incidents from GitHub in" in result.stderr, result.stderr
    events = exported(github)
    assert sorted(events) == [
        "github-deployment-2",
        "github-deployment-4",
        "github-deployment-5",
    ]
    second = events["github-deployment-2"]
    assert second["service"] == "api"
    assert second["env"] == "prod"
    assert second["started_at"] == "2026-10-02T00:00:00Z"
    assert second["finished_at"] == "2026-10-02T00:02:00Z"  # the success, not the failure
    assert second["git"] == {
        "repository_url": "https://github.com/octo-org/api",
        "commit_sha": sha(5),
    }
    # commits 3..5, shipped since deployment 1 (before the window) of commit 2
    assert shas(second) == [sha(3), sha(4), sha(5)]
    assert {c["subject"] for c in second["commits"]} == {"Change 3", "Change 4", "Change 5"}
    # commits 6..9 but not the merge commit 8
    fourth = events["github-deployment-4"]
    assert shas(fourth) == [sha(6), sha(7), sha(9)]
    # staging's first deployment has none before it in the window nor among older ones
    assert "commits" not in events["github-deployment-5"]
    assert events["github-deployment-5"]["env"] == "staging"
    assert "'staging' is not in --env-map" in result.stderr


@ONE_ENGINE
def test_a_rate_limit_mid_paging_is_waited_for_until_it_resets(github, db_path):
    history(github)
    reset = str(int(time.time()) + 1)
    github.script[3] = (
        403,
        {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": reset, "X-RateLimit-Limit": "5000"},
        {"message": "API rate limit exceeded for user ID 1.", "documentation_url": "x"},
    )
    result = fetch(github)
    assert result.returncode == 0, result.stderr
    assert "Fetched 3 deployments" in result.stderr


@ONE_ENGINE
def test_a_secondary_rate_limit_past_the_budget_is_one_line(github, db_path):
    history(github)
    github.script[2] = (
        403,
        {"Retry-After": "120"},
        {"message": "You have exceeded a secondary rate limit.", "documentation_url": "x"},
    )
    result = fetch(github, DORA_RETRY_BUDGET="2")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "dora: error: GitHub did not list the deployments of octo-org/api after 1 attempt in "
        "0.0s: 403 Forbidden: You have exceeded a secondary rate limit; it asked to wait 120s, "
        "past the retry budget (2s: DORA_RETRY_BUDGET, at most 3600)"
    ]
    assert not exported(github)


def issue(n: int, created: datetime, *, closed: datetime | None, state: str, **extra: Any):
    return {
        "id": 1000 + n,
        "number": n,
        "title": f"Checkout is down {n}",
        "state": state,
        "labels": [{"name": "incident"}],
        "created_at": iso(created),
        "updated_at": iso(closed or created),
        "closed_at": iso(closed) if closed else None,
        **extra,
    }


@ONE_ENGINE
def test_issues_with_the_label_are_incidents_and_a_reopened_one_is_open(github, db_path):
    day = timedelta(days=1)
    github.issues = [
        issue(1, T0 + day, closed=T0 + day + timedelta(hours=2), state="closed"),
        # closed once, then reopened: open, closed_at cleared
        issue(2, T0 + 2 * day, closed=None, state="open", updated_at=iso(T0 + 3 * day)),
        # a pull request with the label is no incident
        issue(3, T0 + 3 * day, closed=None, state="open", pull_request={"url": "x"}),
        # created before the window, updated in it
        issue(4, T0 - 5 * day, closed=T0 + day, state="closed"),
        issue(5, T0 + 4 * day, closed=T0 + 4 * day + timedelta(minutes=30), state="closed"),
        # a false alarm
        issue(6, T0 + 5 * day, closed=T0 + 5 * day, state="closed", state_reason="not_planned"),
    ]
    result = fetch(github, "--env", "prod", "--team", "payments")
    assert result.returncode == 0, result.stderr
    assert "Fetched 0 deployments and 3 incidents from GitHub" in result.stderr
    assert (
        "skipped 1 issue of octo-org/api closed as not planned or as a duplicate: not "
        "incidents" in result.stderr
    )
    events = exported(github)
    assert sorted(events) == ["github-issue-1001", "github-issue-1002", "github-issue-1005"]
    first = events["github-issue-1001"]
    assert first["services"] == ["api"]
    assert first["env"] == "prod"
    assert first["team"] == "payments"
    assert first["name"] == "Checkout is down 1"
    assert first["finished_at"] == "2026-10-02T02:00:00Z"
    assert "finished_at" not in events["github-issue-1002"]


def test_a_second_fetch_changes_nothing_and_a_dry_run_writes_nothing(github, db_path):
    history(github)
    dry = fetch(github, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    records = [json.loads(line) for line in dry.stdout.splitlines()]
    assert [r["id"] for r in records] == [
        "github-deployment-2",
        "github-deployment-4",
        "github-deployment-5",
    ]
    assert "Dry run: nothing was written." in dry.stderr
    assert not exported(github)
    first = fetch(github)
    assert "3 new, 0 updated, 0 unchanged" in first.stderr, first.stderr
    again = fetch(github)
    assert "0 new, 0 updated, 3 unchanged" in again.stderr, again.stderr


@ONE_ENGINE
def test_workflow_runs_on_the_default_branch_are_deployments(github, db_path):
    def run(n, created, commit, *, branch="main", conclusion="success", owner="octo-org"):
        return {
            "id": 30433642 + n,
            "name": "Deploy",
            "head_branch": branch,
            "head_sha": sha(commit),
            "run_number": n,
            "event": "push",
            "status": "completed",
            "conclusion": conclusion,
            "workflow_id": 159038,
            "run_attempt": 1,
            "created_at": iso(created),
            "updated_at": iso(created + timedelta(minutes=7)),
            "run_started_at": iso(created + timedelta(seconds=30)),
            "head_repository": {"full_name": f"{owner}/api"},
        }

    github.runs = [
        run(1, T0 - timedelta(days=2), 3),  # before the window
        run(2, T0 + timedelta(days=1), 6),
        run(3, T0 + timedelta(days=2), 7, conclusion="failure"),
        run(4, T0 + timedelta(days=3), 8, branch="topic"),
        run(5, T0 + timedelta(days=4), 10),
        run(6, T0 + timedelta(days=5), 11),
        # a pull request from a fork's main: GitHub's branch filter lists it too
        run(7, T0 + timedelta(days=6), 12, owner="someone"),
    ]
    result = fetch(github, "--workflow", "deploy.yml", "--env", "prod")
    assert result.returncode == 0, result.stderr
    events = exported(github)
    assert sorted(events) == ["github-run-30433644", "github-run-30433647", "github-run-30433648"]
    second = events["github-run-30433644"]
    assert second["started_at"] == "2026-10-02T00:00:30Z"
    assert second["finished_at"] == "2026-10-02T00:07:00Z"
    assert second["env"] == "prod"
    assert shas(second) == [sha(4), sha(5), sha(6)]
    assert shas(events["github-run-30433648"]) == [sha(11)]


def test_metrics_of_a_fetched_history_are_as_computed_by_hand(github, db_path):
    # production: deployment 2 ships commits 3..5, deployment 4 commits 6, 7 and 9;
    # commit n landed at Sep 30 + n hours
    history(github)
    github.issues = [issue(1, T0 + timedelta(days=4), closed=None, state="open")]
    assert fetch(github, "--env-map", "production=prod", "--env", "prod").returncode == 0
    result = dora(github, "metrics", *WINDOW, "--env", "prod", "--format", "json", "--by", "none")
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)["total"]
    assert figures["deployments"] == 2
    # lead times: deployment 2 finished Oct 2 00:02, commits at Sep 30 03:00, 04:00, 05:00
    # -> 45:02, 44:02, 43:02; deployment 4 finished Oct 5 00:02, commits at 06:00, 07:00,
    # 09:00 -> 114:02, 113:02, 111:02 hours. The median of the six is (45:02 + 111:02) / 2.
    median_hours = ((45 + 111) / 2) + 2 / 60
    assert figures["median_lead_time_seconds"] == pytest.approx(median_hours * 3600)
    assert figures["deployment_frequency_per_day"] == pytest.approx(2 / 31)
    assert (figures["failures"], figures["open_failures"]) == (1, 1)
    # the incident (Oct 5 00:00, still open) follows deployment 2 (Oct 2 00:02), the latest
    # before it: that one failed, and nothing has recovered it
    assert figures["failed_deployments"] == 1
    assert figures["unrecovered_failed_deployments"] == 1


def test_a_bad_token_is_one_line_and_the_token_is_never_shown(github, db_path):
    history(github)
    github.script[1] = (401, {}, {"message": f"Bad credentials {TOKEN}"})
    result = fetch(github, "-v")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "dora: error: GitHub refused the token (401 Unauthorized: Bad credentials ***); "
        "check GITHUB_TOKEN"
    )
    ok = fetch(github, "-v")
    assert ok.returncode == 0, ok.stderr
    for output in (result.stdout, result.stderr, ok.stdout, ok.stderr):
        assert TOKEN not in output
    assert TOKEN not in everything(db_path)


@ONE_ENGINE
def test_a_next_page_on_another_server_is_asked_of_the_configured_one(github, db_path):
    # a proxy in between, or an answer naming a host of its own: the token goes to
    # GITHUB_API_URL only, and the page is asked there
    history(github)
    github.script[2] = (
        200,
        {"Link": '<https://elsewhere.invalid/repos/octo-org/api/deployments?page=2>; rel="next"'},
        [],
    )
    result = fetch(github, "-v")
    assert result.returncode == 0, result.stderr
    paged = github.api.requests[2]
    assert (paged.path, paged.one("page")) == ("/repos/octo-org/api/deployments", "2")
    assert paged.headers["authorization"] == f"Bearer {TOKEN}"
    assert "elsewhere.invalid" not in "".join(
        r.headers.get("host", "") for r in github.api.requests
    )


@ONE_ENGINE
def test_a_repository_or_environment_named_twice_is_read_once(github, db_path):
    history(github)
    result = fetch(
        github, "--repo", "Octo-Org/API", "--environment", "production", "--environment",
        "production",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "Fetched 2 deployments and 0 incidents" in result.stderr
    events = exported(github)
    # the service as GitHub spells it, whatever case --repo had
    assert {e["service"] for e in events.values()} == {"api"}
    assert shas(events["github-deployment-4"]) == [sha(6), sha(7), sha(9)]


@ONE_ENGINE
def test_the_deployment_before_the_window_finished_before_the_first_of_it(github, db_path):
    # created before the window but finished after the first of the window: not the one
    # before it (that is deployment 1)
    github.deploy(1, T0 - timedelta(days=2), 2, "production", "success")
    github.deploy(2, T0 - timedelta(minutes=1), 4, "production", *["pending"] * 29, "success")
    github.deploy(3, T0 + timedelta(minutes=5), 6, "production", "success")
    result = fetch(github)
    assert result.returncode == 0, result.stderr
    events = exported(github)
    assert sorted(events) == ["github-deployment-3"]
    assert shas(events["github-deployment-3"]) == [sha(3), sha(4), sha(5), sha(6)]


@ONE_ENGINE
def test_a_compare_github_cannot_make_leaves_that_deployment_without_commits(github, db_path):
    history(github)
    fetched = fetch(github, "-v")
    compare = next(n for n, r in enumerate(github.api.requests, 1) if "/compare/" in r.path)
    github.api.requests.clear()
    github.seen = 0
    github.script[compare] = (422, {}, {"message": "No common ancestor", "documentation_url": "x"})
    assert fetched.returncode == 0
    result = fetch(github)
    assert result.returncode == 0, result.stderr
    assert (
        f"GitHub cannot compare {sha(2)[:12]}...{sha(5)[:12]} of octo-org/api (a commit is "
        "gone, or the history was rewritten): that deployment has no lead time"
    ) in result.stderr
    # stored before with its commits, which a failed compare leaves as they are
    assert shas(exported(github)["github-deployment-2"]) == [sha(3), sha(4), sha(5)]


@ONE_ENGINE
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--repo", "octo-org"), "--repo: 'octo-org' is not OWNER/NAME, such as octo-org/api"),
        (("--service-map", "api"), "--service-map: 'api' is not 'OWNER/NAME=SERVICE'"),
        (("--workflow", "../x.yml"), "--workflow: '../x.yml' is not a workflow file name"),
    ],
)
def test_usage_errors_exit_2_before_anything_is_asked(github, db_path, args, message):
    result = fetch(github, *args)
    assert result.returncode == 2
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert github.seen == 0


@ONE_ENGINE
def test_without_a_token_nothing_is_asked(github, db_path):
    result = fetch(github, GITHUB_TOKEN=None)
    assert result.returncode == 2
    assert "GITHUB_TOKEN is not set" in result.stderr
    assert github.seen == 0


def test_deployments_recorded_here_too_are_warned_about(github, db_path):
    history(github)
    recorded = dora(
        github,
        "deployment",
        "--service", "api",
        "--env", "prod",
        "--started-at", "2026-10-01T23:58:00Z",
        "--finished-at", "2026-10-02T00:03:00Z",
        "--git-repository-url", "https://github.com/octo-org/api",
        "--git-commit-sha", sha(5),
        "--skip-git",
    )  # fmt: skip
    assert recorded.returncode == 0, recorded.stderr
    result = fetch(github, "--env-map", "production=prod")
    assert result.returncode == 0, result.stderr
    assert (
        "1 of the deployments from GitHub look like deployments recorded here otherwise"
        in result.stderr
    )
    assert "look like" not in fetch(github, "--env-map", "production=staging").stderr


@ONE_ENGINE
def test_more_runs_in_one_second_than_a_search_lists_is_one_line(github, db_path):
    def full(request: Request) -> tuple[int, dict[str, str], Any]:
        if request.path.endswith("/runs"):  # always over the cap: split down to seconds
            return 200, {}, {"total_count": 1001, "workflow_runs": []}
        return github.answer(request)

    github.api.answer = full
    result = dora(
        github, "fetch", "github", "--repo", "octo-org/api", "--workflow", "deploy.yml",
        "--since", "2026-10-01T00:00:00Z", "--until", "2026-10-01T00:00:02Z",
    )  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "dora: error: GitHub holds more than 1,000 successful runs of workflow deploy.yml of "
        "octo-org/api created in one second, more than its search lists"
    ]
