"""The datadog backend through the commands: settings, usage errors, what goes over the wire."""

from __future__ import annotations

import json

import httpx
import pytest

from conftest import rows
from dora import timeparse

API = "https://api.datadoghq.eu"
KEY = "0123456789abcdef-key"


@pytest.fixture
def datadog(monkeypatch):
    monkeypatch.setenv("DATADOG_SITE", "datadoghq.eu")
    monkeypatch.setenv("DATADOG_API_KEY", KEY)
    monkeypatch.setenv("DORA_BACKEND", "datadog")


def test_a_deployment_is_posted_after_it_is_kept(respx_router, dora, db_path, datadog, frozen_now):
    route = respx_router.post(f"{API}/api/v2/dora/deployment").mock(
        return_value=httpx.Response(202)
    )

    result = dora("deployment", "--service", "api", "--started-at", "-5m", "--skip-git")

    assert result.exit_code == 0, result.stderr
    event_id = result.stdout.strip()
    [call] = route.calls
    assert call.request.headers["DD-API-KEY"] == KEY
    assert json.loads(call.request.content)["data"]["attributes"]["id"] == event_id
    assert result.stderr.splitlines() == [
        f"Recorded deployment {event_id} (api) in {db_path}",
        f"Sent deployment {event_id} to {API}/api/v2/dora/deployment (202)",
    ]
    assert rows(db_path, "SELECT state FROM outbox") == [{"state": "delivered"}]


def test_a_rejected_event_says_what_to_fix_and_stays_failed(
    respx_router, dora, db_path, datadog, frozen_now
):
    body = {"errors": ["Invalid value for attribute 'service'"]}
    route = respx_router.post(f"{API}/api/v2/dora/deployment").mock(
        return_value=httpx.Response(400, json=body)
    )

    result = dora("deployment", "--service", "api", "--started-at", "-5m", "--skip-git")

    assert result.exit_code == 1
    assert len(route.calls) == 1  # a 400 is not retried
    assert result.stderr.splitlines()[1:] == [
        "dora: error: Datadog rejected the deployment (400 Bad Request: "
        "Invalid value for attribute 'service'); fix the field it names",
        f"dora: the deployment is kept in {db_path}; 'dora push' will send it",
    ]
    assert rows(db_path, "SELECT state, attempts FROM outbox") == [
        {"state": "failed", "attempts": 1}
    ]


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"DATADOG_API_KEY": "a key with spaces"},
            "DATADOG_API_KEY: an API key is printable ASCII without spaces",
        ),
        (
            {"DATADOG_SITE": "datadoghq.con"},
            "DATADOG_SITE: 'datadoghq.con' is not a Datadog site; use one of datadoghq.com, "
            "us3.datadoghq.com, us5.datadoghq.com, datadoghq.eu, ap1.datadoghq.com, "
            "ap2.datadoghq.com, uk1.datadoghq.com",
        ),
        (
            {"DATADOG_SITE": "ddog-gov.com"},
            "DATADOG_SITE: Datadog does not offer DORA Metrics on ddog-gov.com "
            "(Datadog for Government)",
        ),
        (
            {"DORA_BACKEND": "splunk"},
            "DORA_BACKEND: 'splunk' is not a backend; use local or datadog",
        ),
        (
            {"DATADOG_API_KEY": "abc\ndef"},
            "DATADOG_API_KEY: an API key is printable ASCII without spaces",
        ),
        (
            {"DATADOG_API_KEY": "somé-key"},
            "DATADOG_API_KEY: an API key is printable ASCII without spaces",
        ),
        ({"DORA_RETRY_BUDGET": "0"}, "DORA_RETRY_BUDGET: give a number of seconds from 1 to 3600"),
        (
            {"DORA_RETRY_BUDGET": "0.5"},
            "DORA_RETRY_BUDGET: give a number of seconds from 1 to 3600",
        ),
        (
            {"DORA_RETRY_BUDGET": "nan"},
            "DORA_RETRY_BUDGET: give a number of seconds from 1 to 3600",
        ),
        (
            {"DORA_RETRY_BUDGET": "abc"},
            "DORA_RETRY_BUDGET: give a number of seconds from 1 to 3600",
        ),
    ],
)
def test_backend_settings_are_checked_before_anything_is_written(
    dora, db_path, datadog, monkeypatch, env, message
):
    for name, value in env.items():
        monkeypatch.setenv(name, value)

    result = dora("deployment", "--service", "api", "--started-at", "-5m", "--skip-git")

    assert (result.exit_code, result.stderr) == (2, f"dora: error: {message}\n")
    assert not db_path.exists()


def test_dry_run_needs_no_key_and_names_the_full_url(dora, db_path, datadog, monkeypatch):
    monkeypatch.delenv("DATADOG_API_KEY")

    result = dora(
        "deployment", "--service", "api", "--started-at", "-5m", "--skip-git", "--dry-run"
    )

    assert result.exit_code == 0
    assert result.stderr == (
        f"Dry run: this body would be posted to {API}/api/v2/dora/deployment; "
        "nothing was recorded.\n"
    )


def test_push_with_nothing_to_send_needs_no_key(dora, db_path, frozen_now, monkeypatch):
    assert (
        dora("deployment", "--service", "api", "--started-at", "-5m", "--skip-git").exit_code == 0
    )

    result = dora("push")

    assert (result.exit_code, result.stderr) == (
        0,
        "Nothing to push: no event is waiting in the outbox.\n",
    )


def test_the_local_backend_queues_nothing(dora, db_path, frozen_now):
    assert (
        dora("deployment", "--service", "api", "--started-at", "-5m", "--skip-git").exit_code == 0
    )

    assert rows(db_path, "SELECT * FROM outbox") == []


def test_resolving_with_the_datadog_backend_posts_the_finish(
    respx_router, dora, db_path, frozen_now, datadog
):
    route = respx_router.post(f"{API}/api/v2/dora/failure").mock(return_value=httpx.Response(202))
    opened = dora("incident", "open", "--service", "api", "--started-at", "-1h", "--skip-git")
    incident_id = opened.stdout.strip()

    resolved = dora("incident", "resolve", incident_id, "--finished-at", "-10m")

    assert resolved.exit_code == 0, resolved.stderr
    bodies = [json.loads(call.request.content)["data"]["attributes"] for call in route.calls]
    assert [b["id"] for b in bodies] == [incident_id, incident_id]
    assert "finished_at" not in bodies[0]
    finished = timeparse.to_ns(timeparse.parse_timestamp("2026-11-24T11:50:00Z"))
    assert bodies[1]["finished_at"] == finished


@pytest.mark.parametrize(
    ("status", "exit_code", "state", "attempts"),
    [
        (202, 0, "delivered", 1),
        (400, 1, "failed", 1),
        (403, 1, "failed", 1),
        (404, 1, "failed", 1),
        (413, 1, "failed", 1),
        (408, 1, "failed", None),
        (429, 1, "failed", None),
        (500, 1, "failed", None),
        (502, 1, "failed", None),
        (503, 1, "failed", None),
    ],
)
def test_each_answer_gives_its_exit_code_and_delivery_state(
    respx_router, dora, db_path, datadog, monkeypatch, status, exit_code, state, attempts
):
    # a retryable answer needs room for a second try however slow the machine is today
    monkeypatch.setenv("DORA_RETRY_BUDGET", "1" if attempts else "3")
    route = respx_router.post(f"{API}/api/v2/dora/deployment").mock(
        return_value=httpx.Response(status, json={"errors": ["server says no"]})
    )

    result = dora("deployment", "--service", "api", "--started-at", "-5m", "--skip-git")

    assert result.exit_code == exit_code
    assert rows(db_path, "SELECT state FROM outbox") == [{"state": state}]
    if attempts is not None:  # final answers are not retried
        assert len(route.calls) == attempts
    else:  # retryable answers are retried until the budget is spent
        assert len(route.calls) >= 2
    if exit_code:
        assert "server says no" in result.stderr
        assert "Sent" not in result.stderr


def test_push_dry_run_lists_what_would_be_sent(respx_router, dora, db_path, datadog, monkeypatch):
    monkeypatch.setenv("DORA_RETRY_BUDGET", "1")
    respx_router.post(f"{API}/api/v2/dora/deployment").mock(return_value=httpx.Response(500))
    event_id = dora("deployment", "--service", "api", "--started-at", "-5m", "--skip-git").stdout
    monkeypatch.delenv("DATADOG_API_KEY")

    result = dora("push", "--dry-run")

    assert result.exit_code == 0
    assert result.stdout == (
        f"deployment\t{event_id.strip()}\t/api/v2/dora/deployment\tfailed\t1 attempt\n"
    )
    assert result.stderr == "1 event would be sent.\n"


def test_an_unusable_proxy_stops_before_anything_is_written(dora, db_path, datadog, monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", "ftp://proxy.example.com")

    result = dora("deployment", "--service", "api", "--started-at", "-5m", "--skip-git")

    assert result.exit_code == 2
    assert result.stderr.startswith(f"dora: error: cannot use {API} as configured (")
    assert not db_path.exists()


def test_push_stops_at_a_refused_key_instead_of_trying_every_event(
    respx_router, dora, db_path, datadog, monkeypatch
):
    monkeypatch.setenv("DORA_RETRY_BUDGET", "1")
    route = respx_router.post(f"{API}/api/v2/dora/deployment").mock(
        return_value=httpx.Response(503)
    )
    for _ in range(3):
        dora("deployment", "--service", "api", "--started-at", "-5m", "--skip-git")
    route.mock(return_value=httpx.Response(403, json={"errors": ["Forbidden"]}))
    before = len(route.calls)

    result = dora("push")

    assert result.exit_code == 1
    assert len(route.calls) - before == 1
    assert result.stderr.splitlines()[-1].endswith(
        "3 remain in " + str(db_path) + ", 'dora push' will try them again"
    )


def test_server_text_is_one_clean_line(respx_router, dora, db_path, datadog, monkeypatch):
    body = {"errors": ["bad \x1b[31mred\x1b[0m\x07 field\nsecond line " + "x" * 400]}
    respx_router.post(f"{API}/api/v2/dora/deployment").mock(
        return_value=httpx.Response(400, json=body)
    )

    result = dora("deployment", "--service", "api", "--started-at", "-5m", "--skip-git")

    error = result.stderr.splitlines()[1]
    assert "\x1b" not in result.stderr
    assert "\x07" not in result.stderr
    assert "bad [31mred [0m field second line" in error
    assert "…" in error


def test_an_incident_sent_once_is_queued_again_when_resolved_locally(
    respx_router, dora, db_path, datadog, monkeypatch, frozen_now
):
    respx_router.post(f"{API}/api/v2/dora/failure").mock(return_value=httpx.Response(202))
    incident_id = dora("incident", "open", "--service", "api", "--started-at", "-1h", "--skip-git")
    monkeypatch.setenv("DORA_BACKEND", "local")

    resolved = dora("incident", "resolve", incident_id.stdout.strip())

    assert resolved.exit_code == 0
    assert rows(db_path, "SELECT state FROM outbox") == [{"state": "pending"}]


def test_a_bad_site_in_the_config_file_is_named_as_such(dora, db_path, monkeypatch, tmp_path):
    config = tmp_path / "c.toml"
    config.write_text('backend = "datadog"\nsite = "datadoghq.con"\n')
    monkeypatch.setenv("DORA_CONFIG", str(config))
    monkeypatch.setenv("DATADOG_API_KEY", KEY)

    result = dora("deployment", "--service", "api", "--started-at", "-5m", "--skip-git")

    assert result.exit_code == 2
    assert result.stderr.startswith(
        "dora: error: 'site' in the config file: 'datadoghq.con' is not a Datadog site"
    )
    assert not db_path.exists()


# --- no credentials of any remote form reach the store, the output or the wire --------------

_SCP_SECRETS = [
    "user:ghp_SECRET@github.com:x/y.git",
    "git@github.com:x/y.git?token=ghp_SECRET",
    "ghp_SECRET0123456789abcdefghijklmnopq@github.com:x/y.git",
    "persistent-https::https://u:ghp_SECRET@github.com/x/y.git",
]


@pytest.mark.parametrize("remote", _SCP_SECRETS)
@pytest.mark.parametrize("source", ["flag", "DD_GIT_REPOSITORY_URL", "CI_REPOSITORY_URL", "git"])
def test_no_remote_form_carries_its_token_anywhere(
    respx_router, dora, db_path, datadog, frozen_now, monkeypatch, remote, source
):
    from conftest import everything, git, make_repo

    route = respx_router.post(f"{API}/api/v2/dora/deployment").mock(
        return_value=httpx.Response(202)
    )
    flags = ["--git-commit-sha", "a" * 40]
    if source == "flag":
        flags += ["--git-repository-url", remote]
    elif source == "git":
        repo = make_repo(db_path.parent / "work", origin=None)
        git(repo, "remote", "add", "origin", remote)
    else:
        monkeypatch.setenv(source, remote)
        if source == "CI_REPOSITORY_URL":
            monkeypatch.setenv("GITLAB_CI", "true")

    result = dora("-v", "deployment", "--service", "api", "--started-at", "-5m", *flags)
    dry = dora("deployment", "--service", "api", "--started-at", "-5m", "--dry-run", *flags)
    exported = dora("export")

    assert result.exit_code == 0, result.stderr
    [stored] = rows(db_path, "SELECT repository_url FROM deployments")
    assert stored["repository_url"] in ("github.com:x/y.git", "git@github.com:x/y.git") or (
        stored["repository_url"] == "persistent-https::https://github.com/x/y.git"
    )
    [call] = route.calls
    seen = {
        "output": result.stdout + result.stderr,
        "dry run": dry.stdout + dry.stderr,
        "export": exported.stdout,
        "API body": call.request.content.decode(),
        "store": everything(db_path),
    }
    for where, text in seen.items():
        assert "SECRET" not in text, where
    assert json.loads(call.request.content)["data"]["attributes"]["git"] == {
        "repository_url": stored["repository_url"],
        "commit_sha": "a" * 40,
    }


# --- no API key: the event is kept and queued, and the command says so ---------------------


def test_without_an_api_key_a_deployment_is_kept_queued_and_sent_by_a_later_push(
    respx_router, dora, db_path, datadog, frozen_now, monkeypatch
):
    route = respx_router.post(f"{API}/api/v2/dora/deployment").mock(
        return_value=httpx.Response(202)
    )
    monkeypatch.delenv("DATADOG_API_KEY")

    result = dora("deployment", "--service", "api", "--started-at", "-5m", "--skip-git")

    event_id = result.stdout.strip()
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"Recorded deployment {event_id} (api) in {db_path}",
        "dora: error: no Datadog API key is set (DD_API_KEY or DATADOG_API_KEY): the deployment "
        f"is kept in {db_path}; 'dora push' will send it once one is",
    ]
    assert rows(db_path, "SELECT event_id, state FROM outbox") == [
        {"event_id": event_id, "state": "pending"}
    ]
    assert not route.called

    monkeypatch.setenv("DD_API_KEY", KEY)
    pushed = dora("push")

    assert pushed.exit_code == 0, pushed.stderr
    [call] = route.calls
    assert json.loads(call.request.content)["data"]["attributes"]["id"] == event_id
    assert rows(db_path, "SELECT state FROM outbox") == [{"state": "delivered"}]


def test_without_an_api_key_open_and_resolve_keep_the_incident_queued(
    respx_router, dora, db_path, datadog, frozen_now, monkeypatch
):
    monkeypatch.delenv("DATADOG_API_KEY")

    opened = dora("incident", "open", "--service", "api", "--skip-git")
    resolved = dora("incident", "resolve", opened.stdout.strip())

    no_key = "dora: error: no Datadog API key is set (DD_API_KEY or DATADOG_API_KEY): "
    kept = f"the incident is kept in {db_path}; 'dora push' will send it once one is"
    assert (opened.exit_code, opened.stderr.splitlines()[-1]) == (1, no_key + kept)
    assert (resolved.exit_code, resolved.stderr.splitlines()[-1]) == (1, no_key + kept)
    assert rows(db_path, "SELECT finished_at IS NOT NULL AS done FROM incidents") == [{"done": 1}]
    assert rows(db_path, "SELECT state FROM outbox") == [{"state": "pending"}]


def test_without_an_api_key_an_import_keeps_every_event_queued(
    respx_router, dora, db_path, datadog, monkeypatch, tmp_path
):
    monkeypatch.delenv("DATADOG_API_KEY")
    events = tmp_path / "events.ndjson"
    events.write_text(
        "".join(
            json.dumps(
                {
                    "type": "deployment",
                    "service": "api",
                    "started_at": f"2026-11-0{n}T09:00:00Z",
                    "finished_at": f"2026-11-0{n}T09:05:00Z",
                }
            )
            + "\n"
            for n in (1, 2, 3)
        )
    )

    result = dora("import", str(events))

    assert result.exit_code == 1
    assert result.stderr.splitlines()[-1] == (
        "dora: error: no Datadog API key is set (DD_API_KEY or DATADOG_API_KEY): the 3 events "
        f"are kept in {db_path}; 'dora push' will send them once one is"
    )
    assert rows(db_path, "SELECT state, COUNT(*) AS n FROM outbox GROUP BY state") == [
        {"state": "pending", "n": 3}
    ]


def test_an_answer_nested_too_deeply_is_shown_as_text_not_a_crash(
    respx_router, dora, db_path, datadog, frozen_now
):
    respx_router.post(f"{API}/api/v2/dora/deployment").mock(
        return_value=httpx.Response(
            400, content=b"[" * 100_000, headers={"Content-Type": "application/json"}
        )
    )

    result = dora("deployment", "--service", "api", "--started-at", "-5m", "--skip-git")

    assert result.exit_code == 1
    error, kept = result.stderr.splitlines()[1:]
    assert error.startswith("dora: error: Datadog rejected the deployment (400 Bad Request: [[[[")
    assert error.endswith("…); fix the field it names")
    assert kept == f"dora: the deployment is kept in {db_path}; 'dora push' will send it"
