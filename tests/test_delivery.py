"""Delivery as a CI step meets it: the installed command against a real HTTP server on
127.0.0.1 that fails, stalls or hangs up, then recovers for ``dora push``."""

from __future__ import annotations

import http.server
import json
import os
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from conftest import everything, rows
from test_e2e import dora_command

API_KEY = "dd-api-key-5ecr3t-0123456789"


@pytest.fixture
def db_path(store_db):
    """Every test here runs on both engines."""
    return store_db


@dataclass
class Request:
    path: str
    event_id: str
    api_key: str | None
    answer: str


@dataclass
class FakeDatadog:
    """A DORA API whose answers are scripted: "202", "500", "stall" (no answer for longer
    than the client waits), "drip" (a 503 trickled a byte at a time), "202-drip" (an
    acceptance whose body trickles for ever), "202-huge" (an acceptance with a 16 GiB body)
    or "close" (hang up mid-request). The last one repeats."""

    script: list[str] = field(default_factory=lambda: ["202"])
    requests: list[Request] = field(default_factory=list)
    url: str = ""
    #: called as each request arrives, before it is answered
    on_request: Callable[[], None] | None = None

    def accepted(self) -> list[str]:
        return [r.event_id for r in self.requests if r.answer.startswith("2")]


@pytest.fixture
def fake_datadog() -> Iterator[FakeDatadog]:
    fake = FakeDatadog()
    release = threading.Event()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            answer = fake.script.pop(0) if len(fake.script) > 1 else fake.script[0]
            if fake.on_request is not None:
                fake.on_request()
            fake.requests.append(
                Request(
                    self.path,
                    body["data"]["attributes"]["id"],
                    self.headers.get("DD-API-KEY"),
                    "202" if answer == "slow" else answer,
                )
            )
            if answer == "stall":
                release.wait(10)
                return
            if answer == "slow":  # a 202 that takes a moment
                release.wait(0.5)
                answer = "202"
            if answer in ("drip", "202-drip"):  # an answer that never quite ends
                self.send_response(503 if answer == "drip" else 202)
                self.send_header("Content-Length", "1000")
                self.end_headers()
                for _ in range(1000):
                    if release.wait(0.2):
                        return
                    self.wfile.write(b" ")
                    self.wfile.flush()
                return
            if answer == "202-huge":
                self.send_response(202)
                self.send_header("Content-Length", str(16 * 2**30))
                self.end_headers()
                chunk = b" " * 2**20
                try:
                    for _ in range(16 * 2**10):
                        if release.is_set():
                            return
                        self.wfile.write(chunk)
                except OSError:  # the client went away once it had the status
                    pass
                return
            if answer == "close":
                self.close_connection = True
                self.connection.shutdown(2)
                return
            status = int(answer)
            payload = {"errors": ["Internal error, try again"]} if status >= 400 else {}
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        release.set()
        server.shutdown()
        server.server_close()


def dora_env(fake: FakeDatadog, budget: str = "30", **changes: str | None) -> dict[str, str]:
    """The environment of a CI step sending to ``fake``; a change to None unsets a variable."""
    env = {
        **os.environ,
        "DORA_API_URL": fake.url,
        "DATADOG_API_KEY": API_KEY,
        "DORA_BACKEND": "datadog",
        "DORA_RETRY_BUDGET": budget,
        "NO_PROXY": "127.0.0.1",
        **changes,
    }
    return {name: value for name, value in env.items() if value is not None}


def run(
    fake: FakeDatadog, *args: str, budget: str = "30", **changes: str | None
) -> subprocess.CompletedProcess[str]:
    """The installed command against ``fake``; a run that outlasts its budget by far fails
    the test (a CI step must never hang)."""
    return subprocess.run(
        [*dora_command(), *args],
        env=dora_env(fake, budget, **changes),
        capture_output=True,
        text=True,
        timeout=20,
    )


def deploy(
    fake: FakeDatadog, *extra: str, budget: str = "30", **changes: str | None
) -> subprocess.CompletedProcess[str]:
    deployment = ["deployment", "--service", "api", "--started-at", "-5m", "--skip-git"]
    return run(fake, *deployment, *extra, budget=budget, **changes)


def outbox(db: Path) -> list[dict]:
    return rows(db, "SELECT kind, event_id, state, attempts FROM outbox ORDER BY queued_at")


def test_a_server_that_fails_twice_then_accepts_gets_the_event_once(fake_datadog, db_path):
    fake_datadog.script = ["500", "503", "202"]

    done = deploy(fake_datadog)

    assert done.returncode == 0, done.stderr
    event_id = done.stdout.strip()
    assert [(r.path, r.event_id, r.answer) for r in fake_datadog.requests] == [
        ("/api/v2/dora/deployment", event_id, "500"),
        ("/api/v2/dora/deployment", event_id, "503"),
        ("/api/v2/dora/deployment", event_id, "202"),
    ]
    assert done.stderr.splitlines()[-1] == (
        f"Sent deployment {event_id} to {fake_datadog.url}/api/v2/dora/deployment (202)"
    )
    assert outbox(db_path) == [
        {"kind": "deployment", "event_id": event_id, "state": "delivered", "attempts": 1}
    ]


@pytest.mark.parametrize("trouble", ["stall", "drip", "close", "503"])
def test_an_event_the_server_never_takes_is_kept_for_push(fake_datadog, db_path, trouble):
    fake_datadog.script = [trouble]

    done = deploy(fake_datadog, budget="2")

    assert done.returncode == 1
    event_id = done.stdout.strip()
    recorded, error, kept = done.stderr.splitlines()
    assert recorded.startswith(f"Recorded deployment {event_id} (api) in {db_path}")
    assert error.startswith("dora: error: ")
    assert "Sent" not in done.stderr
    assert kept == f"dora: the deployment is kept in {db_path}; 'dora push' will send it"
    assert outbox(db_path) == [
        {"kind": "deployment", "event_id": event_id, "state": "failed", "attempts": 1}
    ]
    assert fake_datadog.accepted() == []


def test_push_after_recovery_delivers_each_event_exactly_once(fake_datadog, db_path):
    fake_datadog.script = ["503"]
    first = deploy(fake_datadog, budget="1").stdout.strip()
    fake_datadog.script = ["close"]
    second = deploy(fake_datadog, budget="1").stdout.strip()
    fake_datadog.script = ["stall"]
    incident = run(
        fake_datadog, "incident", "open", "--service", "api", "--skip-git", budget="1"
    ).stdout.strip()
    assert [r["state"] for r in outbox(db_path)] == ["failed", "failed", "failed"]
    fake_datadog.script = ["202"]
    fake_datadog.requests.clear()

    pushed = run(fake_datadog, "push")
    again = run(fake_datadog, "push")

    assert pushed.returncode == 0, pushed.stderr
    assert [r.event_id for r in fake_datadog.requests] == [first, second, incident]
    assert pushed.stderr.splitlines()[-1] == "Delivered 3 events; nothing remains."
    assert (again.returncode, again.stderr) == (
        0,
        "Nothing to push: no event is waiting in the outbox.\n",
    )
    assert [r["state"] for r in outbox(db_path)] == ["delivered"] * 3


def test_push_exits_1_while_events_remain(fake_datadog, db_path):
    fake_datadog.script = ["503"]
    event_id = deploy(fake_datadog, budget="1").stdout.strip()

    pushed = run(fake_datadog, "push", budget="1")

    assert pushed.returncode == 1
    assert pushed.stderr.splitlines()[-1] == (
        f"dora: error: delivered 0; 1 remain in {db_path}, 'dora push' will try them again"
    )
    assert outbox(db_path)[0]["event_id"] == event_id


def test_resolve_posts_the_failure_again_with_its_finish(fake_datadog, db_path):
    opened = run(fake_datadog, "incident", "open", "--service", "api", "--skip-git")
    incident_id = opened.stdout.strip()
    fake_datadog.requests.clear()

    resolved = run(fake_datadog, "incident", "resolve", incident_id, "--finished-at", "now")

    assert resolved.returncode == 0, resolved.stderr
    [request] = fake_datadog.requests
    assert (request.path, request.event_id) == ("/api/v2/dora/failure", incident_id)
    assert outbox(db_path)[0]["state"] == "delivered"


def test_the_api_key_appears_nowhere(fake_datadog, db_path):
    fake_datadog.script = ["500"]

    failed = deploy(fake_datadog, "--verbose", budget="1")
    pushed = run(fake_datadog, "--verbose", "push", budget="1")
    dry = run(fake_datadog, "push", "--dry-run")

    assert failed.returncode == pushed.returncode == 1
    assert {r.api_key for r in fake_datadog.requests} == {API_KEY}  # it was sent...
    for done in (failed, pushed, dry):  # ...and shown nowhere
        assert API_KEY not in done.stdout + done.stderr
    assert "deployment" in everything(db_path)
    assert API_KEY not in everything(db_path)


def test_a_dry_run_needs_no_key_and_sends_nothing(fake_datadog, db_path):
    done = deploy(fake_datadog, "--dry-run", DATADOG_API_KEY=None, DD_API_KEY=None)

    assert done.returncode == 0, done.stderr
    assert done.stderr.endswith(
        f"posted to {fake_datadog.url}/api/v2/dora/deployment; nothing was recorded.\n"
    )
    assert fake_datadog.requests == []
    assert not db_path.exists()


def test_proxy_variables_are_honoured(fake_datadog, db_path):
    # The fake server stands in for a proxy: an HTTP proxy receives the absolute URL.
    done = deploy(
        fake_datadog,
        DORA_API_URL="http://dora-api.invalid",
        HTTP_PROXY=fake_datadog.url,
        NO_PROXY="",
    )

    assert done.returncode == 0, done.stderr
    assert [r.path for r in fake_datadog.requests] == [
        "http://dora-api.invalid/api/v2/dora/deployment"
    ]


@pytest.mark.parametrize("answer", ["202-drip", "202-huge"])
def test_an_acceptance_is_a_delivery_whatever_its_body_does(fake_datadog, db_path, answer):
    fake_datadog.script = [answer]

    done = deploy(fake_datadog, budget="2")

    assert done.returncode == 0, done.stderr
    event_id = done.stdout.strip()
    assert done.stderr.splitlines()[-1] == (
        f"Sent deployment {event_id} to {fake_datadog.url}/api/v2/dora/deployment (202)"
    )
    assert outbox(db_path) == [
        {"kind": "deployment", "event_id": event_id, "state": "delivered", "attempts": 1}
    ]
    fake_datadog.script = ["202"]
    pushed = run(fake_datadog, "push")
    assert pushed.stderr.splitlines() == ["Nothing to push: no event is waiting in the outbox."]
    assert fake_datadog.accepted() == [event_id]  # sent once, never again


def test_two_pushes_at_once_send_each_event_once(fake_datadog, db_path):
    fake_datadog.script = ["503"]
    kept = [deploy(fake_datadog, budget="1").stdout.strip() for _ in range(3)]
    fake_datadog.script = ["slow"]
    fake_datadog.requests.clear()
    pushes = [
        subprocess.Popen(
            [*dora_command(), "push"],
            env=dora_env(fake_datadog),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(2)
    ]
    for push in pushes:
        push.communicate(timeout=30)

    assert sorted(fake_datadog.accepted()) == sorted(kept)  # each id once, between the two
    assert [r["state"] for r in outbox(db_path)] == ["delivered"] * 3


def test_three_pushes_at_once_each_succeed_and_send_each_event_once(
    fake_datadog, db_path, tmp_path
):
    events = tmp_path / "events.ndjson"
    events.write_text(
        "".join(
            json.dumps(
                {
                    "type": "deployment",
                    "id": f"deploy-concurrent-{n:04d}",
                    "service": "api",
                    "started_at": f"2026-11-02T09:{n // 60:02d}:{n % 60:02d}Z",
                    "finished_at": f"2026-11-02T10:{n // 60:02d}:{n % 60:02d}Z",
                }
            )
            + "\n"
            for n in range(300)
        )
    )
    fake_datadog.script = ["503"]
    assert run(fake_datadog, "import", str(events), budget="1").returncode == 1
    fake_datadog.requests.clear()
    fake_datadog.script = ["202"]
    fake_datadog.on_request = lambda: time.sleep(0.002)  # so that the three overlap

    pushes = [
        subprocess.Popen(
            [*dora_command(), "push"],
            env=dora_env(fake_datadog),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    done = [(push.wait(timeout=60), push.stderr.read()) for push in pushes]
    for push in pushes:
        push.stdout.close()
        push.stderr.close()

    assert [code for code, _ in done] == [0, 0, 0], [err.splitlines()[-2:] for _, err in done]
    accepted = fake_datadog.accepted()
    assert sorted(accepted) == [f"deploy-concurrent-{n:04d}" for n in range(300)]
    assert {r["state"] for r in outbox(db_path)} == {"delivered"}
    sent = [int(err.splitlines()[-1].split()[1]) for _, err in done]
    assert sum(sent) == 300, [err.splitlines()[-1] for _, err in done]
    for (_, err), mine in zip(done, sent, strict=True):
        assert (
            err.splitlines()[-1] == f"Delivered {mine} event{'s' * (mine != 1)}; nothing remains."
        )
        if mine < 300:  # the rest was another push's: said, not counted as a failure
            assert err.splitlines()[-2].startswith(
                "Left to another 'dora push' running at the same time: "
            )
