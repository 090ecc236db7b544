"""Correcting an event: `dora deployment show` and `dora incident show` print the command
that records it again, and running it (changed or not) is an upsert by id."""

from __future__ import annotations

import json
import os
import shlex

import pytest

from conftest import rows

D = "01JDQ3ZK5R8W2N6T4V0XJ9H7DD"
I = "01JDQ3ZK5R8W2N6T4V0XJ9H7II"  # noqa: E741 - the incident
SHA = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture
def recorded(dora, frozen_now):
    deployment = dora(
        "deployment", "--id", D, "--service", "api", "--env", "prod", "--team", "edge",
        "--version", "v1.2 'rc'", "--started-at", "2026-11-24T09:00:00Z",
        "--finished-at", "2026-11-24T09:10:00.123456789Z", "--skip-git",
        "--git-repository-url", "https://github.com/acme/api", "--git-commit-sha", SHA,
        "--custom-tags", "region:eu west", "--custom-tags", "tier:1",
    )  # fmt: skip
    incident = dora(
        "incident", "open", "--id", I, "--service", "api", "--service", "web",
        "--env", "prod", "--name", "checkout $HOME 500s", "--severity", "SEV-2",
        "--deployment", D, "--started-at", "2026-11-24T10:00:00Z",
        "--finished-at", "2026-11-24T10:45:00Z", "--skip-git", "--custom-tags", "source:pd",
    )  # fmt: skip
    assert deployment.exit_code == 0, deployment.stderr
    assert incident.exit_code == 0, incident.stderr


def command(dora, *show: str) -> list[str]:
    result = dora(*show, "--format", "json")
    assert result.exit_code == 0, result.stderr
    args = shlex.split(json.loads(result.stdout)["record_command"])
    assert args[0] == "dora"
    return args[1:]


@pytest.mark.parametrize("show", [("deployment", "show", D), ("incident", "show", I)])
def test_the_printed_command_records_the_event_again_as_it_is(dora, db_path, recorded, show):
    before = dora("export").stdout
    again = dora(*command(dora, *show))

    assert again.exit_code == 0, again.stderr
    assert dora("export").stdout == before


def test_a_field_changed_in_the_command_is_corrected_and_nothing_else(dora, db_path, recorded):
    args = command(dora, "deployment", "show", D)
    args[args.index("--env") + 1] = "staging"

    result = dora(*args)

    assert result.exit_code == 0, result.stderr
    assert rows(db_path, "SELECT id, env, version, custom_tags FROM deployments") == [
        {
            "id": D,
            "env": "staging",
            "version": "v1.2 'rc'",
            "custom_tags": '["region:eu west", "tier:1"]',
        }
    ]


def test_incident_show_says_what_it_is_linked_to_and_how_to_correct_it(dora, recorded, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")

    result = dora("incident", "show", I[:12])

    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"incident:   {I}",
        "name:       checkout $HOME 500s",
        "severity:   SEV-2",
        "services:   api, web",
        "team:       -",
        "env:        prod",
        "version:    -",
        "started:    2026-11-24 10:00 UTC",
        "finished:   2026-11-24 10:45 UTC (45m)",
        f"deployment: {D} (named)",
        "commit:     -",
        "repository: -",
        "tags:       source:pd",
        "",
        "To correct it, change a field in this command and run it:",
        f"dora incident open --id {I} --service api --service web \\",
        "  --env prod --name 'checkout $HOME 500s' --severity SEV-2 \\",
        f"  --deployment {D} --started-at 2026-11-24T10:00:00Z \\",
        "  --finished-at 2026-11-24T10:45:00Z --custom-tags source:pd --skip-git",
    ]


def test_an_incident_linked_by_time_says_so_and_a_window_can_unlink_it(dora, recorded):
    opened = dora(
        "incident", "open", "--service", "api", "--env", "prod", "--skip-git",
        "--started-at", "2026-11-24T11:10:00.123456789Z",
    )  # fmt: skip
    incident = opened.stdout.strip()

    linked = json.loads(dora("incident", "show", incident, "--format", "json").stdout)
    windowed = dora("incident", "show", incident, "--link-window", "1h")

    assert (linked["linked_deployment"], linked["names_its_deployment"]) == (D, False)
    assert f"deployment: {D} (the latest before it)" not in windowed.stdout
    assert "deployment: none linked" in windowed.stdout
    assert "--started-at 2026-11-24T11:10:00.123456789Z" in linked["record_command"]


def test_show_of_an_unknown_incident_is_one_line(dora, db_path, recorded):
    result = dora("incident", "show", "01ZZZZ")

    assert (result.exit_code, result.stdout, result.stderr) == (
        1,
        "",
        f"dora: error: no incident with an id starting with '01ZZZZ' in {db_path}\n",
    )


def test_on_a_terminal_the_command_is_wrapped_to_fit_and_still_one_command(
    dora, recorded, monkeypatch
):
    monkeypatch.setattr("dora.cli.incident.terminal_width", lambda: 60)

    result = dora("incident", "show", I)
    lines = result.stdout.splitlines()
    wrapped = lines[lines.index("To correct it, change a field in this command and run it:") + 1 :]

    assert len(wrapped) > 1
    assert all(len(line) <= 60 for line in result.stdout.splitlines())
    assert all(line.endswith(" \\") for line in wrapped[:-1])
    joined = " ".join(line.removesuffix(" \\").strip() for line in wrapped)
    shown = json.loads(dora("incident", "show", I, "--format", "json").stdout)
    assert shlex.split(joined) == shlex.split(shown["record_command"])


def test_an_incident_naming_a_deployment_not_recorded_says_so(dora, frozen_now):
    from dora.events import Incident, build
    from dora.store import open_store
    from dora.store.base import stored

    with open_store(os.environ["DORA_DB"]) as store:  # as an import of it would
        event = build(
            Incident,
            {"id": I, "services": ["api"], "started_at": "2026-11-24T10:00:00Z",
             "deployment_id": D},
        )  # fmt: skip
        store.save_many([stored(event)])

    result = dora("incident", "show", I)

    assert result.exit_code == 0, result.stderr
    assert f"deployment: {D} (named, not recorded here)" in result.stdout.splitlines()
    assert result.stdout.splitlines()[-1] == (
        "(--deployment names a deployment not recorded here: record or fetch it first, or "
        "the command refuses it)"
    )
