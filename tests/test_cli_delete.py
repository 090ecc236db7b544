"""dora deployment delete and dora incident delete: usage, the store, and Datadog."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from conftest import count, everything, rows

API = "https://api.datadoghq.eu"
KEY = "0123456789abcdef-key"
APP_KEY = "fedcba9876543210-appkey"
A = "01JDQ3ZK5R8W2N6T4V0XJ9H7AA"
B = "01JDQ3ZK5R8W2N6T4V0XJ9H7BB"
I = "01JDQ3ZK5R8W2N6T4V0XJ9H7II"  # noqa: E741 - the incident


@pytest.fixture
def keys(monkeypatch):
    monkeypatch.setenv("DATADOG_SITE", "datadoghq.eu")
    monkeypatch.setenv("DATADOG_API_KEY", KEY)
    monkeypatch.setenv("DD_APP_KEY", APP_KEY)


@pytest.fixture
def recorded(dora, frozen_now):
    """A then B of api in prod, each shipping a commit of its own; an incident after B."""
    events = [
        {"type": "deployment", "id": A, "service": "api", "env": "prod",
         "started_at": "2026-11-24T09:00:00Z", "finished_at": "2026-11-24T09:10:00Z",
         "commits": [{"sha": "a" * 40, "committed_at": "2026-11-24T08:00:00Z"}]},
        {"type": "deployment", "id": B, "service": "api", "env": "prod",
         "started_at": "2026-11-24T10:00:00Z", "finished_at": "2026-11-24T10:10:00Z",
         "commits": [{"sha": "b" * 40, "committed_at": "2026-11-24T09:30:00Z"}]},
        {"type": "incident", "id": I, "services": ["api"], "env": "prod",
         "name": "checkout 500s", "started_at": "2026-11-24T10:20:00Z",
         "finished_at": "2026-11-24T10:30:00Z"},
    ]  # fmt: skip
    result = dora("import", "-", input="".join(json.dumps(e) + "\n" for e in events))
    assert result.exit_code == 0, result.stderr


def sent(db_path) -> None:
    """As if every event had been delivered to Datadog."""
    from conftest import execute

    execute(
        db_path,
        "INSERT INTO outbox (kind, event_id, state, attempts, queued_at, delivered_at) "
        "SELECT 'deployment', id, 'delivered', 1, 1, 2 FROM deployments",
    )
    execute(
        db_path,
        "INSERT INTO outbox (kind, event_id, state, attempts, queued_at, delivered_at) "
        "SELECT 'incident', id, 'delivered', 1, 1, 2 FROM incidents",
    )


def test_without_a_terminal_yes_is_required_and_nothing_is_deleted(dora, db_path, recorded):
    result = dora("deployment", "delete", A)

    assert (result.exit_code, result.stdout, result.stderr) == (
        2,
        "",
        "dora: error: --yes: required when not on a terminal (nothing was deleted)\n",
    )
    assert count(db_path, "deployments") == 2


def test_an_id_not_found_deletes_none_of_them(dora, db_path, recorded):
    result = dora("deployment", "delete", A, "01ZZZZ", "--yes")

    assert (result.exit_code, result.stderr) == (
        1,
        f"dora: error: no deployment with an id starting with '01ZZZZ' in {db_path}\n",
    )
    assert count(db_path, "deployments") == 2


def test_a_deleted_deployment_gives_its_commits_to_the_next_and_leaves_the_reports(
    dora, db_path, recorded
):
    before = dora("metrics", "--since", "1d", "--format", "json")
    result = dora("deployment", "delete", A[:25], "--yes")
    after = dora("metrics", "--since", "1d", "--format", "json")
    exported = dora("export")

    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""
    assert result.stderr == (
        f"Deleted deployment {A} (api, env prod, finished 2026-11-24T09:10:00Z) from {db_path}\n"
    )
    assert rows(db_path, "SELECT deployment_id, sha FROM deployment_commits ORDER BY sha") == [
        {"deployment_id": B, "sha": "a" * 40},
        {"deployment_id": B, "sha": "b" * 40},
    ]
    assert json.loads(before.stdout)["total"]["deployments"] == 2
    assert json.loads(after.stdout)["total"]["deployments"] == 1
    assert [json.loads(line)["id"] for line in exported.stdout.splitlines()] == [B, I]


def test_incidents_are_deleted_with_their_services_and_links(dora, db_path, recorded):
    result = dora("incident", "delete", I[:10], "-y")

    assert result.exit_code == 0, result.stderr
    assert result.stderr == (
        f"Deleted incident {I} ('checkout 500s', api, env prod, started "
        f"2026-11-24T10:20:00Z) from {db_path}\n"
    )
    for table in ("incidents", "incident_services", "incident_links"):
        assert count(db_path, table) == 0


def test_on_a_terminal_it_asks_first(dora, db_path, recorded, monkeypatch):
    monkeypatch.setattr("dora.cli.delete._interactive", lambda: True)

    declined = dora("deployment", "delete", A, B, input="n\n")
    accepted = dora("deployment", "delete", A, input="yes\n")

    assert declined.exit_code == 1
    assert declined.stderr.splitlines() == [
        f"  deployment {A} (api, env prod, finished 2026-11-24T09:10:00Z)",
        f"  deployment {B} (api, env prod, finished 2026-11-24T10:10:00Z)",
        "Delete these 2 deployments? [y/N] Nothing was deleted.",
    ]
    assert accepted.exit_code == 0, accepted.stderr
    assert rows(db_path, "SELECT id FROM deployments") == [{"id": B}]


def test_an_event_sent_to_datadog_is_deleted_there_with_both_keys(
    respx_router, dora, db_path, recorded, keys
):
    sent(db_path)
    gone = respx_router.delete(f"{API}/api/v2/dora/deployment/{A}").mock(
        return_value=httpx.Response(202)
    )
    failure = respx_router.delete(f"{API}/api/v2/dora/failure/{I}").mock(
        return_value=httpx.Response(202)
    )

    deployment = dora("deployment", "delete", A, "--yes", "--backend", "datadog")
    incident = dora("incident", "delete", I, "--yes", "--backend", "datadog")

    assert deployment.exit_code == 0, deployment.stderr
    assert deployment.stderr.splitlines()[-1] == f"Deleted deployment {A} on Datadog (202)"
    assert incident.stderr.splitlines()[-1] == f"Deleted incident {I} on Datadog (202)"
    for route in (gone, failure):
        [call] = route.calls
        assert call.request.content == b""
        assert call.request.headers["DD-API-KEY"] == KEY
        assert call.request.headers["DD-APPLICATION-KEY"] == APP_KEY
    assert rows(db_path, "SELECT kind, event_id, state FROM outbox ORDER BY kind") == [
        {"kind": "deployment", "event_id": B, "state": "delivered"},
        {"kind": "deployment_deletion", "event_id": A, "state": "delivered"},
        {"kind": "incident_deletion", "event_id": I, "state": "delivered"},
    ]
    assert APP_KEY not in deployment.stderr + incident.stderr + everything(db_path)


def test_the_paths_are_those_of_datadogs_client():
    from datadog_api_client.v2.api.dora_metrics_api import DORAMetricsApi

    from dora.events import Deletion

    api = DORAMetricsApi()
    for kind, endpoint, name in (
        ("deployment", api._delete_dora_deployment_endpoint, "deployment_id"),
        ("incident", api._delete_dora_failure_endpoint, "failure_id"),
    ):
        deletion = Deletion.of_event(kind, A)
        assert endpoint.settings["http_method"] == deletion.api_method
        assert endpoint.settings["endpoint_path"].format(**{name: A}) == deletion.api_path
        assert {"apiKeyAuth", "appKeyAuth"} <= set(endpoint.settings["auth"])


def test_without_an_app_key_the_datadog_backend_deletes_nothing(
    dora, db_path, recorded, keys, monkeypatch
):
    monkeypatch.delenv("DD_APP_KEY")

    result = dora("deployment", "delete", A, "--yes", "--backend", "datadog")

    assert (result.exit_code, result.stderr) == (
        2,
        "dora: error: no Datadog application key is set (DD_APP_KEY, DATADOG_APP_KEY or "
        "DD_APPLICATION_KEY): Datadog needs one to delete events\n",
    )
    assert count(db_path, "deployments") == 2


def test_locally_the_deletion_waits_for_push_which_needs_the_app_key(
    respx_router, dora, db_path, recorded, keys, monkeypatch
):
    sent(db_path)
    gone = respx_router.delete(f"{API}/api/v2/dora/deployment/{A}").mock(
        return_value=httpx.Response(202)
    )

    result = dora("deployment", "delete", A, "--yes")
    monkeypatch.delenv("DD_APP_KEY")
    unkeyed = dora("push")
    monkeypatch.setenv("DD_APPLICATION_KEY", APP_KEY)
    pushed = dora("push")

    assert result.exit_code == 0, result.stderr
    assert result.stderr.splitlines()[-1] == (
        f"1 deletion for Datadog, which has the deployment, waits in {db_path}: "
        "'dora push' sends it (or delete with --backend datadog)"
    )
    assert unkeyed.exit_code == 1
    assert "delivered 0; 1 deletion remain in" in unkeyed.stderr
    assert pushed.exit_code == 0, pushed.stderr
    assert pushed.stderr.splitlines()[0] == f"Sent deployment_deletion {A} (202)"
    assert gone.call_count == 1


def test_an_event_never_sent_is_not_deleted_on_datadog(respx_router, dora, db_path, recorded, keys):
    # queued for Datadog but never tried: it is simply never sent
    from conftest import execute

    execute(
        db_path,
        "INSERT INTO outbox (kind, event_id, state, queued_at) VALUES ('deployment', ?, "
        "'pending', 1)",
        (A,),
    )

    result = dora("deployment", "delete", A, "--yes", "--backend", "datadog")

    assert result.exit_code == 0, result.stderr
    assert count(db_path, "outbox") == 0
    assert not respx_router.calls


def test_a_failed_deletion_is_kept_for_push(respx_router, dora, db_path, recorded, keys):
    sent(db_path)
    respx_router.delete(f"{API}/api/v2/dora/deployment/{A}").mock(
        return_value=httpx.Response(403, json={"errors": ["Forbidden"]})
    )

    result = dora("deployment", "delete", A, "--yes", "--backend", "datadog")

    assert result.exit_code == 1
    assert result.stderr.splitlines()[-2:] == [
        "dora: error: Datadog refused the keys (403 Forbidden: Forbidden); check DD_API_KEY "
        "and DD_APP_KEY (an application key with the dora_metrics_write permission), and "
        "that DATADOG_SITE is your account's site",
        f"dora: 1 deletion for Datadog kept in {db_path}; 'dora push' will send it",
    ]
    assert rows(db_path, "SELECT state FROM outbox WHERE kind = 'deployment_deletion'") == [
        {"state": "failed"}
    ]
    assert count(db_path, "deployments") == 1


def test_datadog_not_having_it_is_no_failure(respx_router, dora, db_path, recorded, keys):
    sent(db_path)
    respx_router.delete(f"{API}/api/v2/dora/deployment/{A}").mock(
        return_value=httpx.Response(404, json={"errors": ["Not Found"]})
    )

    result = dora("deployment", "delete", A, "--yes", "--backend", "datadog")

    assert result.exit_code == 0, result.stderr
    assert result.stderr.splitlines()[-1] == (
        f"Datadog has no deployment {A}: nothing to delete there (404)"
    )


def test_recording_it_again_with_the_backend_sends_it_instead(
    respx_router, dora, db_path, recorded, keys
):
    sent(db_path)
    posted = respx_router.post(f"{API}/api/v2/dora/deployment").mock(
        return_value=httpx.Response(202)
    )
    deleted = dora("deployment", "delete", A, "--yes")
    again = dora(
        "deployment", "--service", "api", "--env", "prod", "--id", A, "--skip-git",
        "--started-at", "2026-11-24T09:00:00Z", "--finished-at", "2026-11-24T09:10:00Z",
        "--backend", "datadog",
    )  # fmt: skip

    assert deleted.exit_code == 0, deleted.stderr
    assert again.exit_code == 0, again.stderr
    assert posted.call_count == 1
    assert rows(db_path, "SELECT kind FROM outbox WHERE event_id = ?", (A,)) == [
        {"kind": "deployment"}
    ]


def test_a_store_from_before_deletions_keeps_its_outbox_and_takes_them(store_db, monkeypatch, dora):
    from conftest import execute
    from test_metrics import make_store_at

    make_store_at(store_db, monkeypatch, 14)
    execute(
        store_db,
        "INSERT INTO deployments (id, service, env, started_at, finished_at, recorded_at) "
        "VALUES (?, 'api', 'prod', 1, 2, 3)",
        (A,),
    )
    execute(
        store_db,
        "INSERT INTO outbox (kind, event_id, state, attempts, queued_at) "
        "VALUES ('deployment', ?, 'delivered', 1, 4)",
        (A,),
    )

    result = dora("deployment", "delete", A, "--yes")

    assert result.exit_code == 0, result.stderr
    assert rows(store_db, "SELECT kind, event_id, state FROM outbox") == [
        {"kind": "deployment_deletion", "event_id": A, "state": "pending"}
    ]


# --- the outbox when sends, deletions and fetches meet -------------------------------------


def _stored_deployment(event_id: str, finished: str = "2026-11-24T09:10:00Z"):
    from dora.events import Deployment, build
    from dora.store.base import stored

    return stored(
        build(
            Deployment,
            {"id": event_id, "service": "api", "env": "prod", "started_at": finished,
             "finished_at": finished},
        )
    )  # fmt: skip


def test_an_event_being_sent_for_the_first_time_gets_its_deletion_queued(store_db, frozen_now):
    from dora.store import open_store

    with open_store(store_db) as store:
        store.save_many([_stored_deployment(A)], queue=True)
        [pending] = store.undelivered()
        assert store.claim(pending.event, 30)  # a push is sending it now
        deleted = store.delete("deployment", [A])

    assert deleted.queued == [A]
    assert rows(store_db, "SELECT kind, state FROM outbox") == [
        {"kind": "deployment_deletion", "state": "pending"}
    ]


def test_a_deletion_being_sent_is_not_cancelled_by_sending_the_event_again(store_db, frozen_now):
    from dora.store import open_store

    with open_store(store_db) as store:
        store.save_many([_stored_deployment(A)], sent_at=0)  # Datadog has it
        store.delete("deployment", [A])
        [deletion] = store.undelivered()
        assert store.claim(deletion.event, 30)  # a push is deleting it now
        store.save_many([_stored_deployment(A)], queue=True)  # recorded again, to be sent
        waiting = [(item.event.kind, item.state) for item in store.undelivered()]

    # the deletion goes first, then the event: Datadog ends with the event
    assert waiting == [("deployment_deletion", "pending"), ("deployment", "pending")]


def test_a_fetch_leaves_an_event_deleted_here_deleted(store_db, frozen_now):
    from dora.store import open_store

    with open_store(store_db) as store:
        store.save_many([_stored_deployment(A)], sent_at=0)
        store.delete("deployment", [A])
        again = store.save_many([_stored_deployment(A)], sent_at=1)  # Datadog still lists it

    assert (again.new, again.waiting) == (0, 1)
    assert count(store_db, "deployments") == 0
    assert rows(store_db, "SELECT kind, state FROM outbox") == [
        {"kind": "deployment_deletion", "state": "pending"}
    ]


def test_a_fetch_leaves_an_event_sent_since_it_began_as_it_is(store_db, frozen_now):
    from dora.store import open_store

    began = time.time_ns()
    with open_store(store_db) as store:
        store.save_many([_stored_deployment(A)], sent_at=0)
        store.save_many([_stored_deployment(A, "2026-11-24T09:20:00Z")], queue=True)  # corrected
        [pending] = store.undelivered()
        store.mark_delivered(pending.event)  # and sent, while the fetch was reading
        stale = store.save_many([_stored_deployment(A)], sent_at=began)

    assert stale.waiting == 1
    assert rows(store_db, "SELECT finished_at FROM deployments") == [
        {"finished_at": 1795512000000000000}  # 09:20, the correction
    ]


def test_a_fetch_keeps_the_deployment_an_incident_names(store_db, frozen_now):
    from dora.events import Incident, build
    from dora.store import open_store
    from dora.store.base import stored

    def incident(**named):
        return stored(
            build(
                Incident,
                {"id": I, "services": ["api"], "started_at": "2026-11-24T10:20:00Z", **named},
            )
        )

    with open_store(store_db) as store:
        store.save_many([_stored_deployment(A), incident(deployment_id=A)], queue=True)
        for item in store.undelivered():
            store.mark_delivered(item.event)
        fetched = store.save_many([incident()], sent_at=time.time_ns())  # no such field

    assert (fetched.updated, fetched.unchanged) == (0, 1)
    assert rows(store_db, "SELECT deployment_id FROM incidents") == [{"deployment_id": A}]
