"""dora fetch datadog: the installed command against a fake Datadog DORA API on 127.0.0.1
that answers its list endpoints as the documented ones do (a page of at most `limit`
events of a window, no cursor), checks each request against datadog-api-client's models,
and can answer 429 or 403."""

from __future__ import annotations

import http.server
import json
import os
import subprocess
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import pytest

from conftest import everything, rows
from dora.errors import DoraError
from dora.timeparse import to_ns
from test_e2e import dora_command

API_KEY = "dd-api-key-5ecr3t-0123456789"
APP_KEY = "dd-app-key-5ecr3t-9876543210"
T0 = datetime(2026, 11, 1, tzinfo=timezone.utc)
SHA = "66adc9350f2cc9b250b69abddab733dd55e1a588"


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def deployment(n: int, at: datetime, **attributes) -> dict:
    """A deployment as Datadog's read model has it (DORADeploymentObject)."""
    return {
        "id": f"{n:016x}",
        "type": "dora_deployment",
        "attributes": {
            "service": "shopist",
            "env": "production",
            "team": "backend",
            "version": f"v1.{n}",
            "started_at": iso(at - timedelta(minutes=5)),
            "finished_at": iso(at),
            "git": {"commit_sha": SHA, "repository_id": "github.com/organization/shopist"},
            "custom_tags": ["department:engineering"],
            **attributes,
        },
    }


def failure(n: int, at: datetime, finished: datetime | None = None, **attributes) -> dict:
    """A failure as Datadog's read model has it (DORAIncidentObject)."""
    body = {
        "services": ["shopist"],
        "env": "production",
        "name": f"Checkout errors {n}",
        "severity": "High",
        "started_at": iso(at),
        **attributes,
    }
    if finished is not None:
        body["finished_at"] = iso(finished)
    return {"id": f"00000000-0000-4000-8000-{n:012d}", "type": "dora_failure", "attributes": body}


@dataclass
class FakeDatadog:
    deployments: list[dict] = field(default_factory=list)
    failures: list[dict] = field(default_factory=list)
    #: answers to give instead of the real one, by the request's number (1 is the first):
    #: (status, headers, body)
    script: dict[int, tuple[int, dict, dict]] = field(default_factory=dict)
    requests: list[dict] = field(default_factory=list)
    url: str = ""

    def answer(self, path: str, body: dict) -> tuple[int, dict, dict]:
        from datadog_api_client.model_utils import validate_and_convert_types
        from datadog_api_client.v2.model.dora_list_deployments_request import (
            DORAListDeploymentsRequest,
        )
        from datadog_api_client.v2.model.dora_list_failures_request import (
            DORAListFailuresRequest,
        )

        model = (
            DORAListDeploymentsRequest if path.endswith("deployments") else DORAListFailuresRequest
        )
        validate_and_convert_types(body, (model,), ["body"], True, True, None)
        if (scripted := self.script.pop(len(self.requests), None)) is not None:
            return scripted
        attributes = body["data"]["attributes"]
        low, high = (
            datetime.fromisoformat(attributes[k].replace("Z", "+00:00")) for k in ("from", "to")
        )
        events, on = (
            (self.deployments, "finished_at")
            if path.endswith("deployments")
            else (self.failures, "started_at")
        )

        def at(event: dict) -> datetime:
            return datetime.fromisoformat(event["attributes"][on].replace("Z", "+00:00"))

        # both ends included, newest first, at most `limit`: the answer holds no cursor
        found = sorted((e for e in events if low <= at(e) <= high), key=at, reverse=True)
        return 200, {}, {"data": found[: attributes["limit"]]}


@pytest.fixture
def fake() -> Iterator[FakeDatadog]:
    fake = FakeDatadog()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            fake.requests.append(
                {
                    "path": self.path,
                    "body": body,
                    "api_key": self.headers.get("DD-API-KEY"),
                    "app_key": self.headers.get("DD-APPLICATION-KEY"),
                }
            )
            status, headers, answer = fake.answer(self.path, body)
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/vnd.api+json")
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

        def do_DELETE(self) -> None:
            # DELETE /api/v2/dora/deployment/{id} or /failure/{id}: 202, no body
            kind, _, event_id = self.path.removeprefix("/api/v2/dora/").partition("/")
            fake.requests.append(
                {
                    "method": "DELETE",
                    "path": self.path,
                    "api_key": self.headers.get("DD-API-KEY"),
                    "app_key": self.headers.get("DD-APPLICATION-KEY"),
                }
            )
            events = fake.deployments if kind == "deployment" else fake.failures
            events[:] = [e for e in events if e["id"] != event_id]
            self.send_response(202)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_PATCH(self) -> None:
            from datadog_api_client.model_utils import validate_and_convert_types
            from datadog_api_client.v2.model.dora_deployment_patch_by_version_request import (
                DORADeploymentPatchByVersionRequest,
            )

            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            validate_and_convert_types(
                body, (DORADeploymentPatchByVersionRequest,), ["body"], True, True, None
            )
            fake.requests.append(
                {
                    "method": "PATCH",
                    "path": self.path,
                    "body": body,
                    "app_key": self.headers.get("DD-APPLICATION-KEY"),
                }
            )
            data = b'{"data":null}'
            self.send_response(202)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def db_path(store_db):
    """Every test here runs on both engines."""
    return store_db


def fetch(fake: FakeDatadog, *args: str, **changes: str | None) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "DORA_API_URL": fake.url,
        "DD_API_KEY": API_KEY,
        "DD_APP_KEY": APP_KEY,
        "NO_PROXY": "127.0.0.1",
        **changes,
    }
    return subprocess.run(
        [*dora_command(), "fetch", "datadog", "--since", "2026-10-01", "--until", "2026-12-01",
         *args],
        env={k: v for k, v in env.items() if v is not None},
        capture_output=True,
        text=True,
        timeout=60,
    )  # fmt: skip


def test_every_event_is_fetched_across_full_pages_and_shared_timestamps(fake, db_path):
    # 2,200 deployments: more than two pages, and 900 of them at one second, which only
    # windows split down to it hold whole (the answers carry no cursor)
    same = T0 + timedelta(days=3)
    fake.deployments = [deployment(n, T0 + timedelta(minutes=n)) for n in range(1300)]
    fake.deployments += [deployment(10_000 + n, same) for n in range(900)]
    fake.failures = [
        failure(n, T0 + timedelta(hours=n), T0 + timedelta(hours=n, minutes=30)) for n in range(30)
    ]

    result = fetch(fake)

    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines()[0].startswith(
        "Fetched 2,200 deployments and 30 failures from Datadog in "
    )
    assert result.stderr.splitlines()[-1] == (
        f"Stored in {db_path}: 2,230 new, 0 updated, 0 unchanged."
    )
    assert rows(db_path, "SELECT count(*) AS n FROM deployments") == [{"n": 2200}]
    assert len({r["body"]["data"]["attributes"]["limit"] for r in fake.requests}) == 1
    assert all(r["body"]["data"]["attributes"]["limit"] == 1000 for r in fake.requests)
    assert all((r["api_key"], r["app_key"]) == (API_KEY, APP_KEY) for r in fake.requests)


def test_a_thousand_events_in_one_millisecond_is_an_error_that_stores_nothing(fake, db_path):
    fake.deployments = [deployment(n, T0 + timedelta(days=2)) for n in range(1000)]

    result = fetch(fake)

    assert result.returncode == 1
    assert result.stderr.splitlines()[-1] == (
        "dora: error: Datadog has 1,000 or more deployments from 2026-11-02T23:59:59.999Z to "
        "2026-11-03T00:00:00.000Z, more than one answer holds: some would be missed; narrow "
        "them with --query"
    )
    assert rows(db_path, "SELECT count(*) AS n FROM deployments") in ([], [{"n": 0}])


def test_the_read_model_is_mapped_and_a_second_fetch_updates_only_what_changed(fake, db_path):
    fake.deployments = [deployment(1, T0 + timedelta(days=1))]
    fake.failures = [failure(1, T0 + timedelta(days=1, hours=1))]  # open

    first = fetch(fake)
    fake.failures = [failure(1, T0 + timedelta(days=1, hours=1), T0 + timedelta(days=1, hours=3))]
    second = fetch(fake)
    third = fetch(fake)

    assert first.returncode == 0, first.stderr
    assert second.stderr.splitlines()[-1] == f"Stored in {db_path}: 0 new, 1 updated, 1 unchanged."
    assert third.stderr.splitlines()[-1] == f"Stored in {db_path}: 0 new, 0 updated, 2 unchanged."
    assert rows(
        db_path,
        "SELECT id, service, env, team, version, repository_url, commit_sha, custom_tags "
        "FROM deployments",
    ) == [
        {
            "id": "0000000000000001",
            "service": "shopist",
            "env": "production",
            "team": "backend",
            "version": "v1.1",
            "repository_url": "https://github.com/organization/shopist",
            "commit_sha": SHA,
            "custom_tags": '["department:engineering"]',
        }
    ]
    [incident] = rows(db_path, "SELECT id, name, severity, finished_at FROM incidents")
    assert incident["id"] == "00000000-0000-4000-8000-000000000001"
    assert incident["finished_at"] is not None
    # Datadog has them: a change made here is sent, a deletion too
    assert rows(db_path, "SELECT kind, state FROM outbox ORDER BY kind") == [
        {"kind": "deployment", "state": "delivered"},
        {"kind": "incident", "state": "delivered"},
    ]


def test_a_change_made_here_and_not_pushed_is_not_overwritten(fake, db_path):
    fake.failures = [failure(1, T0 + timedelta(days=1))]  # open on Datadog
    assert fetch(fake).returncode == 0
    resolved = subprocess.run(
        [*dora_command(), "incident", "resolve", "00000000-0000-4000-8000-000000000001"],
        env={**os.environ}, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert resolved.returncode == 0, resolved.stderr

    again = fetch(fake)

    assert again.returncode == 0, again.stderr
    assert again.stderr.splitlines()[-1] == (
        f"Stored in {db_path}: 0 new, 0 updated, 0 unchanged; 1 left as they are here, "
        "changed or deleted here since Datadog had them."
    )
    assert rows(db_path, "SELECT finished_at IS NOT NULL AS resolved FROM incidents") in (
        [{"resolved": 1}],
        [{"resolved": True}],
    )


def test_a_429_mid_paging_is_waited_for(fake, db_path):
    fake.deployments = [deployment(n, T0 + timedelta(minutes=n)) for n in range(1500)]
    # the first answer is full: the second, for a half of the window, is refused for a while
    fake.script = {2: (429, {"Retry-After": "1"}, {"errors": ["Too many requests"]})}

    result = fetch(fake)

    assert result.returncode == 0, result.stderr
    assert rows(db_path, "SELECT count(*) AS n FROM deployments") == [{"n": 1500}]
    assert fake.requests[1]["body"] == fake.requests[2]["body"]  # asked again, the same


def test_a_403_for_a_missing_scope_is_one_line_and_stores_nothing(fake, db_path):
    fake.deployments = [deployment(1, T0 + timedelta(days=1))]
    fake.script = {1: (403, {}, {"errors": ["Forbidden"]})}

    result = fetch(fake)

    assert result.returncode == 1
    assert result.stderr == (
        "dora: error: Datadog refused the keys (403 Forbidden: Forbidden); check DD_API_KEY "
        "and DD_APP_KEY (an application key with the dora_metrics_read permission), and that "
        "DATADOG_SITE is your account's site\n"
    )
    assert rows(db_path, "SELECT count(*) AS n FROM deployments") in ([], [{"n": 0}])


def test_without_an_app_key_nothing_is_asked(fake, db_path):
    result = fetch(fake, DD_APP_KEY=None)

    assert result.returncode == 2
    assert result.stderr == (
        "dora: error: no Datadog application key is set (DD_APP_KEY, DATADOG_APP_KEY or "
        "DD_APPLICATION_KEY): reading from Datadog needs one\n"
    )
    assert fake.requests == []


def test_filters_become_datadogs_query_and_dry_run_prints_records(fake, db_path):
    fake.deployments = [deployment(1, T0 + timedelta(days=1))]

    result = fetch(
        fake, "--service", "shopist", "--service", "web app", "--env", "production",
        "--query", "team:backend", "--dry-run",
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    assert {r["body"]["data"]["attributes"]["query"] for r in fake.requests} == {
        'service:(shopist OR "web app") env:production (team:backend)'
    }
    [record] = [json.loads(line) for line in result.stdout.splitlines()]
    assert (record["type"], record["id"], record["finished_at"]) == (
        "deployment",
        "0000000000000001",
        "2026-11-02T00:00:00Z",
    )
    assert result.stderr.splitlines()[-1] == "Dry run: nothing was written."
    assert rows(db_path, "SELECT count(*) AS n FROM deployments") in ([], [{"n": 0}])


def test_an_event_dora_refuses_is_skipped_with_a_warning(fake, db_path):
    short = {"id": "short", "type": "dora_deployment", "attributes": {"service": "x"}}
    short["attributes"]["started_at"] = short["attributes"]["finished_at"] = iso(T0)
    fake.deployments = [deployment(1, T0 + timedelta(days=1)), short]

    result = fetch(fake)

    assert result.returncode == 0, result.stderr
    assert "dora: warning: skipped Datadog deployment short: id: 'short' is not a valid id" in (
        result.stderr
    )
    assert rows(db_path, "SELECT id FROM deployments") == [{"id": "0000000000000001"}]


def test_the_keys_are_in_no_output_and_no_store_file(fake, db_path):
    fake.deployments = [deployment(1, T0 + timedelta(days=1))]
    result = fetch(fake, "-v")
    fake.script = {len(fake.requests) + 1: (403, {}, {"errors": [f"bad key {APP_KEY}"]})}
    refused = fetch(fake, "-v")

    for key in (API_KEY, APP_KEY):
        assert key not in result.stdout + result.stderr + refused.stdout + refused.stderr
        assert key not in everything(db_path)


@pytest.mark.parametrize("seed", range(20))
def test_splitting_windows_finds_every_event_of_any_window_and_ends(seed):
    import random

    from dora import fetch_datadog

    rng = random.Random(seed)
    base = T0 + timedelta(microseconds=rng.randrange(1000))  # not on a millisecond
    at = [base + timedelta(milliseconds=rng.randrange(50)) for _ in range(rng.randrange(60))]
    events = [deployment(n, moment) for n, moment in enumerate(at)]
    for n, event in enumerate(events):
        event["attributes"]["finished_at"] = at[n].isoformat().replace("+00:00", "Z")
    page = rng.choice([2, 3, 7, 1000])
    asked = []

    class Backend:
        def list_events(self, kind, start, end, *, query, limit):
            asked.append((start, end))
            low, high = (datetime.fromisoformat(t.replace("Z", "+00:00")) for t in (start, end))
            if kind == "incident":
                return []
            found = [e for e, m in zip(events, at, strict=True) if low <= m <= high]
            return rng.sample(found, min(limit, len(found)))  # in any order

    until = base + timedelta(milliseconds=50)
    per_ms = Counter(to_ns(m) // 10**6 for m in at)
    crowded = max((per_ms[ms] + per_ms[ms + 1] for ms in per_ms), default=0)
    try:
        fetched = fetch_datadog.fetch(Backend(), base, until, page=page)
    except DoraError:
        # a window of one millisecond, both ends included, still filled a page
        assert crowded >= page
        return

    assert max(per_ms.values(), default=0) < page
    assert sorted(r["id"] for r in fetched.records["deployment"]) == sorted(e["id"] for e in events)
    assert fetched.requests == len(asked) < 1000


def dora(fake: FakeDatadog, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "DORA_API_URL": fake.url,
        "DD_API_KEY": API_KEY,
        "DD_APP_KEY": APP_KEY,
        "NO_PROXY": "127.0.0.1",
    }
    return subprocess.run(
        [*dora_command(), *args], env=env, capture_output=True, text=True, timeout=60
    )


def test_fetched_events_are_marked_by_version_and_deleted_on_datadog(fake, db_path):
    # what datadog-ci sent: two deployments of one version; dora never saw them
    fake.deployments = [
        deployment(1, T0 + timedelta(days=1), version="v1.0"),
        deployment(2, T0 + timedelta(days=2), version="v1.0"),
    ]
    assert fetch(fake).returncode == 0

    marked = dora(
        fake, "deployment", "mark", "--service", "shopist", "--env", "production",
        "--version", "v1.0", "--failed", "--backend", "datadog",
    )  # fmt: skip
    deleted = dora(fake, "deployment", "delete", f"{1:016x}", "--yes", "--backend", "datadog")
    again = fetch(fake)

    assert marked.returncode == 0, marked.stderr
    assert marked.stdout == f"{2:016x}\n"  # the one that finished last, as Datadog picks
    [patch] = [r for r in fake.requests if r.get("method") == "PATCH"]
    assert patch["path"] == "/api/v2/dora/deployments"
    assert patch["body"]["data"]["attributes"] == {
        "change_failure": True,
        "service": "shopist",
        "env": "production",
        "version": "v1.0",
    }
    assert deleted.returncode == 0, deleted.stderr
    [gone] = [r for r in fake.requests if r.get("method") == "DELETE"]
    assert (gone["path"], gone["api_key"], gone["app_key"]) == (
        f"/api/v2/dora/deployment/{1:016x}",
        API_KEY,
        APP_KEY,
    )
    assert again.stderr.splitlines()[-1] == (f"Stored in {db_path}: 0 new, 0 updated, 1 unchanged.")
    assert rows(db_path, "SELECT id FROM deployments") == [{"id": f"{2:016x}"}]
    assert rows(db_path, "SELECT deployment_id, failed FROM deployment_marks") in (
        [{"deployment_id": f"{2:016x}", "failed": 1}],
        [{"deployment_id": f"{2:016x}", "failed": True}],
    )
