"""``dora incident open | resolve | show | list``: record when something broke, and when it
was fixed (``delete`` is ``dora.cli.delete``'s). ``import-pagerduty`` is here, and is
``dora fetch pagerduty`` too (its name since the fetch family)."""

from __future__ import annotations

import sys
from enum import Enum
from typing import Annotated

import typer

from dora.cli import _common as opt
from dora.cli._help import Typer
from dora.cli._runtime import Progress, note, print_help, status, terminal_width
from dora.cli.deployment.view import ShowFormat
from dora.config import Settings

app = Typer(name="incident", lazy={"delete": "dora.cli.delete:incident"})


@app.callback(invoke_without_command=True)
def _incident(ctx: typer.Context) -> None:
    """Open, resolve and list incidents (Datadog calls them failures).

    Examples:

        dora incident open --service api --env prod --name "checkout 500s"
        dora incident list --open
        dora incident resolve 01M86639QTJ6ND0C40
        dora incident show 01M86639QTJ6
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
            f"Same forms as --started-at; {opt.NAIVE_LOCAL}.",
        ),
    ] = None,
    version: Annotated[
        str | None,
        typer.Option(
            "--version",
            metavar="VERSION",
            help="Version of the service that was running when the incident began (Datadog "
            "correlates it with APM Deployment Tracking).",
        ),
    ] = None,
    deployment: Annotated[
        str | None,
        typer.Option(
            "--deployment",
            metavar="ID",
            help="The deployment that caused it: its id, or a prefix of it (4 or more "
            "characters) that matches only one deployment in the store.",
            show_default=False,
        ),
    ] = None,
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

        dora incident open --service api --name "checkout 500s" --severity SEV-2
        ID=$(dora incident open --service api --service web --started-at -20m)
        dora incident open --team payments --started-at -3h --finished-at -2h
        dora incident open --service api --deployment 01M86639K2MN
    """
    from dora.events import Incident

    settings = Settings({"db": db, "env": env, "team": team, "backend": backend})
    endpoint, sender = opt.prepare(settings, dry_run=dry_run)
    if deployment is not None and not dry_run:
        deployment = _deployment(settings, deployment)
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
            "deployment_id": deployment,
        },
        labels={
            "deployment_id": "--deployment",
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


def _deployment(settings: Settings, ref: str) -> str:
    """The id of the one deployment in the store that ``ref`` (an id or a prefix) names."""
    from dora.errors import NotFound
    from dora.store import open_store

    where = settings.get("db") or ""
    try:
        with open_store(where, create=False) as store, opt.naming_fields({"id": "--deployment"}):
            return store.find_deployment(ref).id
    except NotFound as exc:
        raise NotFound(f"--deployment: {exc.message}") from None


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


@app.command()
def show(
    incident_id: Annotated[
        str,
        typer.Argument(
            metavar="ID", help="The incident's id, or a prefix of it that matches only one."
        ),
    ],
    format: Annotated[
        ShowFormat, typer.Option("--format", help="Output format.", case_sensitive=False)
    ] = ShowFormat.text,
    link_window: opt.LinkWindow = None,
    db: opt.Db = None,
    verbose: opt.Verbose = False,
) -> None:
    """Show an incident: its fields, the deployment it is linked to, and the command that
    records it again, to correct a field.

    The deployment is the one the incident names (--deployment), else the latest of its
    services (or team) and env that finished before it started, as 'dora metrics' links
    them (within --link-window, if one is set).

    Examples:

        dora incident show 01JDQ3ZK5R8W
        dora incident show 01JDQ3ZK5R8W --format json | jq -r .record_command
    """
    from dora import checks, verdicts
    from dora import render_deployments as render
    from dora.store import open_store

    settings = Settings({"db": db, "link_window": link_window})
    window = checks.link_window(settings)
    with (
        open_store(settings.get("db") or "", create=False) as store,
        opt.naming_fields({"id": "ID"}),
    ):
        incident = store.find_incident(incident_id)
        found = verdicts.links(store, "i.id = ?", (incident.id,), link_window=window)
    link = next(((placed.id, linked.named) for linked, placed in found.items()), None)
    if format is ShowFormat.json:
        render.incident_json(incident, link, sys.stdout)
    else:
        render.incident_text(incident, link, sys.stdout, terminal_width())


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
    env: opt.EnvFilter = None,
    team: opt.TeamFilter = None,
    since: Annotated[
        str | None,
        opt.since_option(
            "Only incidents that started from then: a length before now such as 30d, 12w, "
            f"or a time: {opt.WINDOW_TIME_FORMS} (default: all)."
        ),
    ] = None,
    limit: opt.Limit = 30,
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
        dora incident list --env prod --team payments --since 30d
        dora incident list --since 2026-11-01 --format json | jq -r '.[0].id'
    """
    from dora import render
    from dora.errors import NotFound
    from dora.store import open_store

    services, envs, teams = opt.filters(service=service, env=env, team=team)
    start = opt.since_now(since) if since is not None else None
    settings = Settings({"db": db})
    where = settings.get("db") or ""
    try:
        with open_store(where, create=False) as store:
            incidents = store.list_incidents(
                open_only=open_only,
                services=services,
                envs=envs,
                teams=teams,
                since=start,
                limit=limit + 1 if limit else None,
            )
    except NotFound:
        incidents = []
    more = bool(limit) and len(incidents) > limit
    incidents = incidents[:limit] if limit else incidents
    filtered = bool(services or envs or teams or start)
    if format is ListFormat.json:
        render.incidents_json(incidents, sys.stdout)
    elif incidents:
        fitted = render.incidents_table(incidents, sys.stdout, terminal_width())
        if fitted:
            note(fitted)
    elif filtered:
        status(f"No {'open ' if open_only else ''}incidents match in {where}.")
    else:
        status(f"No incidents {'open' if open_only else 'recorded'} in {where}.")
    if more:
        status(f"Showing the newest {limit}; --limit 0 shows all.")


@app.command("import-pagerduty", hidden=True)  # the name before 'dora fetch pagerduty'
def import_pagerduty(
    since: Annotated[
        str | None,
        opt.since_option(
            "Import the incidents created from then: a length before --until such as "
            f"30d, 12w (default 90d), or a time: {opt.WINDOW_TIME_FORMS}."
        ),
    ] = None,
    until: Annotated[
        str | None,
        opt.time_option(
            "--until", f"End of the window, excluded (default: now). Same forms; {opt.NAIVE_UTC}."
        ),
    ] = None,
    service_map: Annotated[
        list[str] | None,
        typer.Option(
            "--service-map",
            metavar="'PD NAME=NAME'",
            help="Record the incidents of PagerDuty service PD NAME under the service NAME; "
            "repeat for more. Services not mapped keep their PagerDuty name.",
            show_default=False,
        ),
    ] = None,
    team_from_pagerduty: Annotated[
        bool,
        typer.Option(
            "--team-from-pagerduty",
            help="Set each incident's team to its first PagerDuty team (else --team's).",
        ),
    ] = False,
    env: Annotated[
        str | None,
        typer.Option(
            "--env",
            metavar="ENV",
            help="Set this environment on every incident, e.g. prod (PagerDuty has none; "
            "'dora metrics --env' keeps only incidents that have it).",
            show_default=False,
        ),
    ] = None,
    team: Annotated[
        str | None,
        typer.Option(
            "--team",
            metavar="TEAM",
            help="Set this team on every incident; with --team-from-pagerduty, on those "
            "without a PagerDuty team.",
            show_default=False,
        ),
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="Print the incidents that would be stored, as NDJSON records ('dora "
            "import' reads them); write nothing.",
        ),
    ] = False,
    backend: opt.Backend = None,
    db: opt.Db = None,
    verbose: opt.Verbose = False,
) -> None:
    """Import the incidents created in PagerDuty in a window, resolved or still open.

    Reads PagerDuty's REST API v2 with the API key in PAGERDUTY_TOKEN (a read-only key is
    enough); PAGERDUTY_API_URL replaces https://api.pagerduty.com (an EU account, a proxy).
    An incident starts when PagerDuty created it and finishes when it was resolved;
    triggered and acknowledged ones stay open. Its service is the PagerDuty service's
    name, its severity the priority (else the urgency), its name the title. PagerDuty
    has no environment: --env sets one (DD_ENV and the config file do not apply here).
    A service whose name differs only in case from one recorded in dora ('Web' and
    'web') gets a warning naming the --service-map that merges them.

    Each incident is recorded with the id 'pagerduty-' and PagerDuty's id (such as
    pagerduty-PT4KHLK), so importing again updates the incidents resolved since and
    duplicates nothing. An incident that fails
    dora's checks is skipped with a warning; nothing is recorded unless every incident
    could be fetched. With the datadog backend, new and changed incidents are sent after
    they are stored.

    Examples:

        dora fetch pagerduty
        dora fetch pagerduty --since 2026-01-01 --until 2026-04-01
        dora fetch pagerduty --env prod --service-map "Web=web"
        dora fetch pagerduty --team-from-pagerduty --team sre
        dora fetch pagerduty --since 30d --dry-run | jq -r .name
    """
    from dora import pagerduty
    from dora.store.base import stored

    window = opt.window(since or "90d", until)
    mapping = _service_map(service_map or [])
    env, team = _every_incident(env, team)
    settings = Settings({"db": db, "backend": backend})
    _, sender = opt.prepare(settings, dry_run=dry_run)
    with opt.connect_pagerduty(settings) as client, Progress("Fetching") as bar:
        imported = pagerduty.import_incidents(
            client,
            *window,
            service_map=mapping,
            team_from_pagerduty=team_from_pagerduty,
            env=env,
            team=team,
            progress=bar.update,
        )
    for warning in imported.warnings[:_MAX_WARNINGS]:
        opt.log.warning("%s", warning)
    if len(imported.warnings) > _MAX_WARNINGS:
        opt.log.warning("... and %d more warnings", len(imported.warnings) - _MAX_WARNINGS)
    fetched, requests = imported.fetched, imported.requests
    line = (
        f"Fetched {fetched:,} incident{'s' * (fetched != 1)} from PagerDuty "
        f"in {requests:,} request{'s' * (requests != 1)}"
    )
    if skipped := fetched - len(imported.incidents):
        line += f"; skipped {skipped:,} that fail dora's checks"
    status(line + ".")
    if dry_run:
        import sys

        from dora import interchange

        interchange.write_ndjson(map(interchange.record_of, imported.incidents), sys.stdout)
    else:
        opt.save_all(
            settings,
            map(stored, imported.incidents),
            source="PagerDuty",
            backend=sender,
            total=len(imported.incidents),
        )
    if imported.services:
        # a dry run warns too, from the store as it is (none yet: nothing to clash with)
        _, store = opt.existing_store(settings.get("db"))
        if store is not None:
            with store:
                recorded = pagerduty.recorded_services(store)
            for warning in pagerduty.case_clashes(imported.services, recorded):
                opt.log.warning("%s", warning)
    if dry_run:
        status("Dry run: nothing was written.")


_MAX_WARNINGS = 20


def _every_incident(env: str | None, team: str | None) -> tuple[str | None, str | None]:
    """--env and --team checked as 'dora incident open' checks them (the same errors),
    before PagerDuty is asked anything; as they will be stored."""
    from dora.events import Incident

    # the other fields only make the incident valid, so that the first error is theirs
    probe = opt.build_event(
        Incident, {"services": ["-"], "env": env, "team": team, "started_at": "now"}
    )
    return probe.env, probe.team


def _service_map(values: list[str]) -> dict[str, str]:
    """--service-map values as {PagerDuty name: dora name}."""
    from dora.fetching import name_map

    return name_map("--service-map", values, "PagerDuty name=service")
