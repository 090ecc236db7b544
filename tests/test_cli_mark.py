"""dora deployment mark: usage, the store, reports, and what goes to Datadog."""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing

import httpx
import pytest

from conftest import count, everything, execute, rows
from dora.store import migrations

API = "https://api.datadoghq.eu"
KEY = "0123456789abcdef-key"
APP_KEY = "fedcba9876543210-appkey"
A = "01JDQ3ZK5R8W2N6T4V0XJ9H7AA"  # v1
B = "01JDQ3ZK5R8W2N6T4V0XJ9H7BB"  # v2
C = "01JDQ3ZK5R8W2N6T4V0XJ9H7CC"  # v1 again: a rollback, so B failed by the rule


@pytest.fixture
def datadog(monkeypatch):
    monkeypatch.setenv("DATADOG_SITE", "datadoghq.eu")
    monkeypatch.setenv("DATADOG_API_KEY", KEY)
    monkeypatch.setenv("DD_APP_KEY", APP_KEY)
    monkeypatch.setenv("DORA_BACKEND", "datadog")


def record(dora, event_id: str, version: str, started: str, finished: str) -> None:
    result = dora(
        "deployment", "--backend", "local", "--service", "api", "--env", "prod",
        "--version", version, "--id", event_id, "--skip-git",
        "--started-at", started, "--finished-at", finished,
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr


@pytest.fixture
def history(dora, frozen_now):
    """A, B, C of api in prod: C rolls back to A's version, so the rollback rule fails B."""
    record(dora, A, "v1", "-3h", "-170m")
    record(dora, B, "v2", "-2h", "-110m")
    record(dora, C, "v1", "-1h", "-50m")


def failed_deployments(dora) -> int:
    result = dora("metrics", "--format", "json", "--since", "1d")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)["total"]["failed_deployments"]


# --- usage -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "--failed or --stable: one of them is required"),
        (("--failed", "--stable"), "--stable: cannot be given with --failed"),
        (
            ("--stable", "--remediation-id", B),
            "--remediation-id: only with --failed (a stable deployment needs no remediation)",
        ),
        (
            ("--stable", "--remediation-type", "rollback"),
            "--remediation-type: only with --failed (a stable deployment needs no remediation)",
        ),
        (
            ("--failed", "--remediation-id", B, "--remediation-version", "v2"),
            "--remediation-version: cannot be given with --remediation-id",
        ),
        (
            ("--failed", "--remediation-type", "rollback"),
            "--remediation-type: name the remediation with --remediation-id or "
            "--remediation-version",
        ),
        (
            ("--failed", "--remediation-id", A),
            "--remediation-id: a deployment cannot remediate itself",
        ),
        (
            ("--failed", "--remediation-id", "01JD"),
            "--remediation-id: '01JD' matches several deployments "
            f"({A}, {B}, {C}); give more of it",
        ),
    ],
)
def test_a_usage_error_is_one_line_and_writes_nothing(dora, db_path, history, args, message):
    result = dora("deployment", "mark", A, *args)

    assert (result.exit_code, result.stdout, result.stderr) == (2, "", f"dora: error: {message}\n")
    assert count(db_path, "deployment_marks") == 0


def test_the_id_is_a_unique_prefix_as_for_incident_resolve(dora, db_path, history):
    ambiguous = dora("deployment", "mark", "01JDQ3", "--failed")
    missing = dora("deployment", "mark", "01ZZZZ", "--failed")
    short = dora("deployment", "mark", "01", "--failed")

    assert (ambiguous.exit_code, ambiguous.stderr) == (
        2,
        f"dora: error: ID: '01JDQ3' matches several deployments ({A}, {B}, {C}); give more of it\n",
    )
    assert (missing.exit_code, missing.stderr) == (
        1,
        f"dora: error: no deployment with an id starting with '01ZZZZ' in {db_path}\n",
    )
    assert (short.exit_code, short.stderr) == (
        2,
        "dora: error: ID: give at least 4 characters of the id\n",
    )
    assert count(db_path, "deployment_marks") == 0


def test_a_remediation_id_not_recorded_is_a_runtime_error(dora, db_path, history):
    result = dora("deployment", "mark", A, "--failed", "--remediation-id", "01ZZZZ")

    assert (result.exit_code, result.stderr) == (
        1,
        f"dora: error: --remediation-id: no deployment with an id starting with '01ZZZZ' "
        f"in {db_path}\n",
    )
    assert count(db_path, "deployment_marks") == 0


# --- the store and reports -------------------------------------------------------------


def test_a_mark_is_stored_and_the_latest_one_wins(dora, store_db, history):
    result = dora("deployment", "mark", B[:-1], "--failed", "--remediation-id", C[:-1])

    assert result.exit_code == 0, result.stderr
    assert result.stdout == f"{B}\n"
    assert result.stderr == (
        f"Marked deployment {B} failed (api, env prod), remediated by {C} (rollback) "
        f"in {store_db}\n"
    )
    marks = "SELECT deployment_id, failed, remediation_id, remediation_version, remediation_type"
    assert rows(store_db, f"{marks} FROM deployment_marks") == [
        {
            "deployment_id": B,
            "failed": 1,
            "remediation_id": C,
            "remediation_version": None,
            "remediation_type": None,  # not given: reports find it
        }
    ]

    again = dora("deployment", "mark", B, "--failed", "--remediation-version", "v3",
                 "--remediation-type", "rollforward")  # fmt: skip
    assert again.exit_code == 0, again.stderr
    assert rows(store_db, f"{marks} FROM deployment_marks") == [
        {
            "deployment_id": B,
            "failed": 1,
            "remediation_id": None,
            "remediation_version": "v3",
            "remediation_type": "rollforward",
        }
    ]
    assert count(store_db, "outbox") == 0  # the local backend queues nothing


def test_a_mark_overrides_the_rules_and_stable_clears_them_in_metrics(dora, store_db, history):
    assert failed_deployments(dora) == 1  # B, by the rollback rule

    stable = dora("deployment", "mark", B, "--stable")
    assert stable.exit_code == 0, stable.stderr
    assert stable.stderr == f"Marked deployment {B} stable (api, env prod) in {store_db}\n"
    assert rows(store_db, "SELECT failed FROM deployment_marks") == [{"failed": 0}]
    assert failed_deployments(dora) == 0

    failed = dora("deployment", "mark", A, "--failed")
    assert failed.exit_code == 0, failed.stderr
    assert failed_deployments(dora) == 1  # A now, by hand; B still cleared


# --- Datadog -----------------------------------------------------------------------------


def test_a_mark_is_patched_to_datadog_with_both_keys(respx_router, dora, db_path, history, datadog):
    deployment = respx_router.post(f"{API}/api/v2/dora/deployment").mock(
        return_value=httpx.Response(202)
    )
    patch = respx_router.patch(f"{API}/api/v2/dora/deployments/{B}").mock(
        return_value=httpx.Response(202)
    )

    result = dora("deployment", "mark", B, "--failed", "--remediation-id", C)

    assert result.exit_code == 0, result.stderr
    assert result.stdout == f"{B}\n"
    # B was recorded with the local backend: Datadog gets it first, then the mark
    assert [call.request.method for call in respx_router.calls] == ["POST", "PATCH"]
    assert json.loads(deployment.calls[0].request.content)["data"]["attributes"]["id"] == B
    [call] = patch.calls
    assert call.request.headers["DD-API-KEY"] == KEY
    assert call.request.headers["DD-APPLICATION-KEY"] == APP_KEY
    assert call.request.headers["Content-Type"] == "application/json"
    assert "DD-APPLICATION-KEY" not in deployment.calls[0].request.headers
    assert json.loads(call.request.content) == {
        "data": {
            "id": B,
            "type": "dora_deployment_patch_request",
            "attributes": {
                "change_failure": True,
                "remediation": {"id": C, "type": "rollback"},
            },
        }
    }
    assert result.stderr.splitlines() == [
        f"Marked deployment {B} failed (api, env prod), remediated by {C} (rollback) in {db_path}",
        f"Sent deployment {B} to {API}/api/v2/dora/deployment (202)",
        f"Sent mark {B} to {API}/api/v2/dora/deployments/{B} (202)",
    ]
    assert rows(db_path, "SELECT kind, state FROM outbox ORDER BY kind") == [
        {"kind": "deployment", "state": "delivered"},
        {"kind": "mark", "state": "delivered"},
    ]
    assert APP_KEY not in result.stdout + result.stderr
    assert APP_KEY not in everything(db_path)


@pytest.mark.parametrize(
    ("args", "attributes"),
    [
        (("--stable",), {"change_failure": False}),
        (("--failed",), {"change_failure": True}),
        (
            ("--failed", "--remediation-version", "v3"),
            {"change_failure": True, "remediation": {"version": "v3", "type": "rollforward"}},
        ),
        (
            ("--failed", "--remediation-version", "v1", "--remediation-type", "rollforward"),
            {"change_failure": True, "remediation": {"version": "v1", "type": "rollforward"}},
        ),
    ],
)
def test_the_dry_run_prints_the_request_and_records_nothing(
    dora, db_path, history, datadog, args, attributes
):
    result = dora("deployment", "mark", B, *args, "--dry-run")

    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == {
        "method": "PATCH",
        "url": f"{API}/api/v2/dora/deployments/{B}",
        "body": {
            "data": {"id": B, "type": "dora_deployment_patch_request", "attributes": attributes}
        },
    }
    assert result.stderr == (
        "Dry run: this request would be sent to Datadog; nothing was recorded.\n"
    )
    assert count(db_path, "deployment_marks") == 0
    assert count(db_path, "outbox") == 0


@pytest.mark.parametrize(
    "attributes",
    [
        {"change_failure": False},
        {"change_failure": True, "remediation": {"id": C, "type": "rollback"}},
        {"change_failure": True, "remediation": {"version": "v3", "type": "rollforward"}},
    ],
)
def test_the_body_is_what_datadogs_own_client_models_accept(attributes):
    from datadog_api_client.model_utils import validate_and_convert_types
    from datadog_api_client.v2.api.dora_metrics_api import DORAMetricsApi
    from datadog_api_client.v2.model.dora_deployment_patch_request import (
        DORADeploymentPatchRequest,
    )

    from dora.events import DeploymentMark

    remediation = attributes.get("remediation", {})
    mark = DeploymentMark(
        B,
        attributes["change_failure"],
        remediation.get("id"),
        remediation.get("version"),
        remediation.get("type"),
    )
    body = mark.api_body()
    model = validate_and_convert_types(
        body, (DORADeploymentPatchRequest,), ["body"], True, True, None
    )

    assert model.to_dict() == body
    endpoint = DORAMetricsApi()._patch_dora_deployment_endpoint
    assert endpoint.settings["http_method"] == mark.api_method
    assert endpoint.settings["endpoint_path"].format(deployment_id=B) == mark.api_path
    assert {"apiKeyAuth", "appKeyAuth"} <= set(endpoint.settings["auth"])


def test_without_an_app_key_nothing_is_marked_and_push_keeps_marks_for_one(
    respx_router, dora, db_path, history, datadog, monkeypatch
):
    monkeypatch.delenv("DD_APP_KEY")
    deployment = respx_router.post(f"{API}/api/v2/dora/deployment").mock(
        return_value=httpx.Response(202)
    )
    patch = respx_router.patch(f"{API}/api/v2/dora/deployments/{B}").mock(
        return_value=httpx.Response(202)
    )

    result = dora("deployment", "mark", B, "--failed")

    assert (result.exit_code, result.stdout, result.stderr) == (
        2,
        "",
        "dora: error: no Datadog application key is set (DD_APP_KEY, DATADOG_APP_KEY or "
        "DD_APPLICATION_KEY): Datadog needs one to mark deployments\n",
    )
    assert count(db_path, "deployment_marks") == 0
    assert not respx_router.calls

    # a mark queued without an API key (a CI job given no secrets) waits in the outbox;
    # a push without the application key sends the deployment, and the mark waits
    monkeypatch.setenv("DD_APP_KEY", APP_KEY)
    monkeypatch.delenv("DATADOG_API_KEY")
    assert dora("deployment", "mark", B, "--failed").exit_code == 1
    monkeypatch.setenv("DATADOG_API_KEY", KEY)
    monkeypatch.delenv("DD_APP_KEY")
    pushed = dora("push")
    assert pushed.exit_code == 1
    assert pushed.stderr.splitlines() == [
        f"Sent deployment {B} (202)",
        "dora: error: no Datadog application key is set (DD_APP_KEY, DATADOG_APP_KEY or "
        f"DD_APPLICATION_KEY): delivered 1; 1 mark remain in {db_path}, 'dora push' will "
        "send them once DD_APP_KEY is set",
    ]
    assert deployment.called
    assert not patch.called

    monkeypatch.setenv("DATADOG_APP_KEY", APP_KEY)
    again = dora("push")
    assert again.exit_code == 0, again.stderr
    assert patch.calls[0].request.headers["DD-APPLICATION-KEY"] == APP_KEY
    assert rows(db_path, "SELECT state FROM outbox WHERE kind = 'mark'") == [{"state": "delivered"}]


def test_push_sends_marks_after_deployments_and_a_newer_mark_replaces_a_pending_one(
    respx_router, dora, db_path, history, datadog, monkeypatch
):
    monkeypatch.delenv("DATADOG_API_KEY")  # everything waits for push
    assert dora("deployment", "mark", A, "--failed").exit_code == 1
    assert dora("deployment", "mark", A, "--stable").exit_code == 1
    record(dora, "01JDQ3ZK5R8W2N6T4V0XJ9H7DD", "v4", "-10m", "-5m")
    execute(
        db_path,
        "INSERT INTO outbox (kind, event_id, state, queued_at) "
        "VALUES ('deployment', '01JDQ3ZK5R8W2N6T4V0XJ9H7DD', 'pending', 9e18)",
    )  # queued last of all, and still sent before the mark
    respx_router.post(f"{API}/api/v2/dora/deployment").mock(return_value=httpx.Response(202))
    patch = respx_router.patch(f"{API}/api/v2/dora/deployments/{A}").mock(
        return_value=httpx.Response(202)
    )
    monkeypatch.setenv("DATADOG_API_KEY", KEY)

    result = dora("push")

    assert result.exit_code == 0, result.stderr
    assert [(c.request.method, c.request.url.path) for c in respx_router.calls] == [
        ("POST", "/api/v2/dora/deployment"),
        ("POST", "/api/v2/dora/deployment"),
        ("PATCH", f"/api/v2/dora/deployments/{A}"),
    ]
    [call] = patch.calls
    assert json.loads(call.request.content)["data"]["attributes"] == {"change_failure": False}


def test_a_failed_patch_leaves_the_mark_for_push(respx_router, dora, db_path, history, datadog):
    respx_router.post(f"{API}/api/v2/dora/deployment").mock(return_value=httpx.Response(202))
    respx_router.patch(f"{API}/api/v2/dora/deployments/{B}").mock(
        return_value=httpx.Response(403, json={"errors": ["Forbidden"]})
    )

    result = dora("deployment", "mark", B, "--stable")

    assert result.exit_code == 1
    assert result.stderr.splitlines()[-2:] == [
        "dora: error: Datadog refused the keys (403 Forbidden: Forbidden); check DD_API_KEY "
        "and DD_APP_KEY (an application key with the DORA write permission), and that "
        "DATADOG_SITE is your account's site",
        f"dora: the mark is kept in {db_path}; 'dora push' will send it",
    ]
    assert rows(db_path, "SELECT state FROM outbox WHERE kind = 'mark'") == [{"state": "failed"}]
    assert APP_KEY not in everything(db_path)


# --- m008 ----------------------------------------------------------------------------------


def test_m008_upgrades_a_store_made_at_m007_keeping_pending_events(
    dora, store_db, monkeypatch, frozen_now
):
    from dora.store import open_store, postgres

    if isinstance(store_db, str):
        full = postgres.MIGRATIONS
        monkeypatch.setattr(postgres, "MIGRATIONS", full[:7])
        open_store(store_db).close()
        monkeypatch.setattr(postgres, "MIGRATIONS", full)
    else:
        with closing(sqlite3.connect(store_db, isolation_level=None)) as db:
            migrations.migrate(db, migrations.MIGRATIONS[:7])
    assert [r["name"] for r in rows(store_db, "SELECT name FROM dora_migrations")][-1] == (
        "m007_incident_deployment"
    )
    execute(
        store_db,
        "INSERT INTO deployments (id, service, env, started_at, finished_at, custom_tags, "
        f"recorded_at) VALUES ('{A}', 'api', 'prod', 1, 2, '[]', 3)",
    )
    execute(
        store_db,
        "INSERT INTO outbox (kind, event_id, state, attempts, last_error, queued_at) "
        f"VALUES ('deployment', '{A}', 'failed', 2, 'boom', 5)",
    )

    result = dora("deployment", "mark", A, "--failed", "--backend", "local")

    assert result.exit_code == 0, result.stderr
    assert "m008_outbox_marks" in [
        r["name"] for r in rows(store_db, "SELECT name FROM dora_migrations")
    ]
    assert rows(store_db, "SELECT kind, event_id, state, attempts, last_error FROM outbox") == [
        {"kind": "deployment", "event_id": A, "state": "failed", "attempts": 2,
         "last_error": "boom"},
    ]  # fmt: skip
    execute(
        store_db,
        f"INSERT INTO outbox (kind, event_id, state, queued_at) VALUES ('mark', '{A}', "
        "'pending', 6)",
    )
    assert count(store_db, "outbox") == 2


def test_the_app_key_is_masked_where_the_api_key_is(respx_router, dora, db_path, history, datadog):
    respx_router.post(f"{API}/api/v2/dora/deployment").mock(return_value=httpx.Response(202))
    respx_router.patch(f"{API}/api/v2/dora/deployments/{B}").mock(
        return_value=httpx.Response(400, json={"errors": [f"bad key {APP_KEY} for {KEY}"]})
    )

    result = dora("deployment", "mark", B, "--failed")
    config = dora("config")

    assert result.exit_code == 1
    assert "bad key *** for ***" in result.stderr
    assert "app_key" in config.stdout
    assert APP_KEY not in result.stdout + result.stderr + config.stdout + config.stderr
    assert APP_KEY not in everything(db_path)


# --- by service, env and version ---------------------------------------------------------


def test_by_version_the_latest_of_that_version_is_marked_and_datadog_told_by_version(
    respx_router, dora, db_path, history, datadog
):
    respx_router.post(f"{API}/api/v2/dora/deployment").mock(return_value=httpx.Response(202))
    patch = respx_router.patch(f"{API}/api/v2/dora/deployments").mock(
        return_value=httpx.Response(202, json={"data": None})
    )

    result = dora(
        "deployment", "mark", "--service", "api", "--env", "prod", "--version", "v1",
        "--failed", "--remediation-version", "v2", "--remediation-type", "rollforward",
    )  # fmt: skip

    assert result.exit_code == 0, result.stderr
    assert result.stdout == f"{C}\n"  # A is v1 too, but C finished last
    assert rows(db_path, "SELECT deployment_id, by_version FROM deployment_marks") == [
        {"deployment_id": C, "by_version": 1}
    ]
    [call] = patch.calls
    assert call.request.headers["DD-APPLICATION-KEY"] == APP_KEY
    assert json.loads(call.request.content) == {
        "data": {
            "type": "dora_deployment_patch_request",
            "attributes": {
                "change_failure": True,
                "remediation": {"version": "v2", "type": "rollforward"},
                "service": "api",
                "env": "prod",
                "version": "v1",
            },
        }
    }
    assert rows(db_path, "SELECT state FROM outbox WHERE kind = 'mark'") == [{"state": "delivered"}]


def test_the_body_by_version_is_what_datadogs_own_client_models_accept():
    from datadog_api_client.model_utils import validate_and_convert_types
    from datadog_api_client.v2.api.dora_metrics_api import DORAMetricsApi
    from datadog_api_client.v2.model.dora_deployment_patch_by_version_request import (
        DORADeploymentPatchByVersionRequest,
    )

    from dora.events import DeploymentMark

    for mark in (
        DeploymentMark(C, False, by_version=("api", "prod", "v1")),
        DeploymentMark(C, True, A, None, "rollback", ("api", "prod", "v1")),
    ):
        body = mark.api_body()
        model = validate_and_convert_types(
            body, (DORADeploymentPatchByVersionRequest,), ["body"], True, True, None
        )
        assert model.to_dict() == body
        endpoint = DORAMetricsApi()._patch_dora_deployment_by_version_endpoint
        assert endpoint.settings["http_method"] == mark.api_method
        assert endpoint.settings["endpoint_path"] == mark.api_path


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("--version", "v1", "--service", "api", "--env", "prod", A),
            "--version: cannot be given with ID",
        ),
        (("--service", "api", A), "--service: names a deployment only with --version"),
        (
            ("--version", "v1", "--service", "api"),
            "--env: required with --version (Datadog marks by all three)",
        ),
        ((), "ID: required, or --service, --env and --version"),
    ],
)
def test_naming_by_version_is_all_three_and_no_id(dora, db_path, history, args, message):
    result = dora("deployment", "mark", *args, "--failed")

    assert (result.exit_code, result.stderr) == (2, f"dora: error: {message}\n")
    assert count(db_path, "deployment_marks") == 0


def test_a_version_not_recorded_marks_nothing(dora, db_path, history, monkeypatch):
    monkeypatch.setenv("DD_SERVICE", "api")
    monkeypatch.setenv("DD_ENV", "prod")

    result = dora("deployment", "mark", "--version", "v9", "--stable")

    assert (result.exit_code, result.stderr) == (
        1,
        f"dora: error: no deployment of api in env prod with version v9 in {db_path}\n",
    )
    assert count(db_path, "deployment_marks") == 0


def test_push_sends_a_mark_made_by_version_by_version(
    respx_router, dora, db_path, history, datadog, monkeypatch
):
    monkeypatch.setenv("DD_SERVICE", "api")
    monkeypatch.setenv("DD_ENV", "prod")
    marked = dora("deployment", "mark", "--version", "v2", "--stable", "--backend", "local")
    respx_router.post(f"{API}/api/v2/dora/deployment").mock(return_value=httpx.Response(202))
    patch = respx_router.patch(f"{API}/api/v2/dora/deployments").mock(
        return_value=httpx.Response(202)
    )
    execute(
        db_path,
        "INSERT INTO outbox (kind, event_id, state, queued_at) VALUES ('mark', ?, 'pending', 1)",
        (B,),
    )

    pushed = dora("push")

    assert marked.stdout == f"{B}\n"
    assert pushed.exit_code == 0, pushed.stderr
    [call] = patch.calls
    assert json.loads(call.request.content)["data"]["attributes"] == {
        "change_failure": False,
        "service": "api",
        "env": "prod",
        "version": "v2",
    }
