"""``dora incident open | resolve | list``: record when something broke, and when it was fixed."""

from __future__ import annotations

import sys
from enum import Enum
from typing import Annotated

import typer

from dora.cli import _common as opt
from dora.cli._runtime import print_help, status
from dora.config import Settings

app = typer.Typer(name="incident")


@app.callback(invoke_without_command=True)
def _incident(ctx: typer.Context) -> None:
    """Open, resolve and list incidents (Datadog calls them failures).

    Examples:

        dora incident open --service api --env prod --name "checkout 500s"

        dora incident list --open

        dora incident resolve 01M86639QTJ6ND0C40
    """
    if ctx.invoked_subcommand is None:
        print_help(ctx)


@app.command("open")
def open_(
    service: Annotated[
        list[str] | None,
        typer.Option(
            "--service",
            metavar="NAME",
            help="Affected service; repeat for several (env DD_SERVICE). "
            "A service or --team is required.",
            show_default=False,
        ),
    ] = None,
    team: opt.Team = None,
    env: opt.Env = None,
    name: Annotated[
        str | None, typer.Option("--name", metavar="TEXT", help="What is broken, in a few words.")
    ] = None,
    severity: Annotated[
        str | None, typer.Option("--severity", metavar="TEXT", help="Severity, e.g. SEV-1.")
    ] = None,
    started_at: Annotated[
        str | None,
        opt.time_option("--started-at", f"When it started (default: now): {opt.TIME_FORMS}."),
    ] = None,
    finished_at: Annotated[
        str | None,
        opt.time_option(
            "--finished-at",
            "When it ended, to record an incident that is already over. "
            "Same forms as --started-at.",
        ),
    ] = None,
    version: opt.Version = None,
    id: opt.EventId = None,
    git_repository_url: opt.GitRepositoryUrl = None,
    git_commit_sha: opt.GitCommitSha = None,
    skip_git: opt.SkipGit = False,
    custom_tags: opt.CustomTags = None,
    dry_run: opt.DryRun = False,
    backend: opt.Backend = None,
    db: opt.Db = None,
    verbose: opt.Verbose = False,
) -> None:
    """Record that an incident has started, and print its id.

    The id goes to stdout, so a script can keep it; resolve the incident with
    'dora incident resolve ID' when it is over.

    Examples:

        dora incident open --service api --env prod --name "checkout 500s" --severity SEV-2

        ID=$(dora incident open --service api --service web --started-at -20m)

        dora incident open --team payments --started-at 2026-11-20T09:00Z --finished-at -2h
    """
    from dora.events import Incident

    settings = Settings({"db": db, "env": env, "team": team, "backend": backend})
    endpoint, sender = opt.prepare(settings, dry_run=dry_run)
    services = service or ([s] if (s := settings.get("service")) else [])
    event, warnings = opt.build_with_git(
        Incident,
        {
            "id": id,
            "services": services,
            "team": settings.get("team"),
            "env": settings.get("env"),
            "name": name,
            "severity": severity,
            "version": version,
            "started_at": "now" if started_at is None else started_at,
            "finished_at": finished_at,
            "custom_tags": custom_tags,
        },
        labels={
            **opt.setting_labels(settings, "env", "team"),
            **({} if service else {"services": settings.setting("service").label}),
        },
        repository_url=git_repository_url,
        commit_sha=git_commit_sha,
        skip_git=skip_git,
    )
    from dora.render import affects

    what = "Recorded resolved" if event.finished_at else "Opened"
    opt.record(
        event,
        settings,
        summary=f"{what} incident {event.id} ({opt.describe(affects(event), event.env)})",
        dry_run=dry_run,
        endpoint=endpoint,
        backend=sender,
        warnings=warnings,
    )


@app.command()
def resolve(
    incident_id: Annotated[
        str,
        typer.Argument(
            metavar="ID", help="The incident's id, or a prefix of it that matches only one."
        ),
    ],
    finished_at: Annotated[
        str | None,
        opt.time_option("--finished-at", f"When it ended (default: now): {opt.TIME_FORMS}."),
    ] = None,
    backend: opt.Backend = None,
    db: opt.Db = None,
    verbose: opt.Verbose = False,
) -> None:
    """Record that an open incident is over.

    With the datadog backend, the failure is posted again with the same id and its finish
    (Datadog updates it by id).

    Examples:

        dora incident resolve 01JDQ3ZK5R8W2N6T4V0XJ9H7MB

        dora incident resolve 01JDQ3ZK5R8W --finished-at -5m
    """
    from dora import render
    from dora.store import open_store

    settings = Settings({"db": db, "backend": backend})
    # check the input before touching the store
    finish = opt.parse_time("--finished-at", "now" if finished_at is None else finished_at)
    _, sender = opt.prepare(settings, dry_run=False)
    with open_store(settings.get("db") or "", create=False) as store:
        with opt.naming_fields({"id": "ID"}):
            incident = store.resolve_incident(incident_id, finish, queue=sender is not None)
        status(
            f"Resolved incident {incident.id} after {render.duration(incident)} in {store.location}"
        )
        if sender is not None:
            opt.send(store, incident, sender)


class ListFormat(str, Enum):
    table = "table"
    json = "json"


@app.command("list")
def list_(
    open_only: Annotated[bool, typer.Option("--open", help="Only incidents still open.")] = False,
    service: Annotated[
        list[str] | None,
        typer.Option(
            "--service",
            metavar="NAME",
            help="Only incidents of this service; repeatable.",
            show_default=False,
        ),
    ] = None,
    limit: Annotated[
        int,
        typer.Option(
            "--limit", "-L", min=0, max=1_000_000, metavar="N", help="Show at most N (0: all)."
        ),
    ] = 30,
    format: Annotated[
        ListFormat, typer.Option("--format", help="Output format.", case_sensitive=False)
    ] = ListFormat.table,
    db: opt.Db = None,
    verbose: opt.Verbose = False,
) -> None:
    """List incidents, newest first, to find an id.

    Examples:

        dora incident list --open

        dora incident list --service api --limit 5

        dora incident list --format json | jq -r '.[0].id'
    """
    from dora import render
    from dora.errors import NotFound
    from dora.store import open_store

    settings = Settings({"db": db})
    where = settings.get("db") or ""
    try:
        with open_store(where, create=False) as store:
            incidents = store.list_incidents(
                open_only=open_only, services=service or (), limit=limit + 1 if limit else None
            )
    except NotFound:
        incidents = []
    more = bool(limit) and len(incidents) > limit
    incidents = incidents[:limit] if limit else incidents
    if format is ListFormat.json:
        render.incidents_json(incidents, sys.stdout)
    elif incidents:
        render.incidents_table(incidents, sys.stdout)
    else:
        status(f"No incidents {'open' if open_only else 'recorded'} in {where}.")
    if more:
        status(f"Showing the newest {limit}; --limit 0 shows all.")
