"""``dora fetch SOURCE``: history from elsewhere into the store (``datadog``)."""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Annotated

import typer

from dora.cli import _common as opt
from dora.cli._help import Typer
from dora.cli._runtime import Progress, print_help, status
from dora.config import Settings
from dora.errors import UsageError

if TYPE_CHECKING:
    from dora.backends.datadog import DatadogBackend
    from dora.fetching import Fetched

app = Typer(
    name="fetch",
    lazy={
        "datadog": "dora.cli.fetch:datadog",
        "github": "dora.cli.fetch:github",
        "gitlab": "dora.cli.fetch:gitlab",
        "incident-io": "dora.cli.fetch:incident_io",
        "opsgenie": "dora.cli.fetch:opsgenie",
        "pagerduty": "dora.cli.incident:import_pagerduty",
    },
)


@app.callback(invoke_without_command=True)
def _fetch(ctx: typer.Context) -> None:
    """Fetch deployments and incidents recorded elsewhere into the store: history for a
    first report, or what another tool keeps. Each fetch is all or nothing, and fetching
    again updates what changed and duplicates nothing.

    Examples:

        dora fetch github --repo octo-org/api --environment production
        dora fetch gitlab --project acme/platform/api --environment production
        dora fetch incident-io --env prod
        dora fetch opsgenie --env prod --service-map "Checkout API=api"
        dora fetch pagerduty --env prod
        dora fetch datadog --since 90d
    """
    if ctx.invoked_subcommand is None:
        print_help(ctx)


#: How far back a fetch reads when --since is not given.
DEFAULT_SINCE = "90d"
#: Warnings shown of the events dora's checks refuse; the rest are counted.
_MAX_WARNINGS = 20


def datadog(
    since: Annotated[
        str | None,
        opt.since_option(
            "Fetch the events from then: a length before --until such as 30d (default "
            f"{DEFAULT_SINCE}), or a time: {opt.WINDOW_TIME_FORMS}."
        ),
    ] = None,
    until: Annotated[
        str | None,
        opt.time_option(
            "--until", f"End of the window (default: now). Same forms; {opt.NAIVE_UTC}."
        ),
    ] = None,
    service: opt.ServiceFilter = None,
    env: opt.EnvFilter = None,
    team: opt.TeamFilter = None,
    query: Annotated[
        str | None,
        typer.Option(
            "--query",
            metavar="QUERY",
            help="Only the events this Datadog search matches (its syntax, as in Datadog), "
            "besides the filters.",
            show_default=False,
        ),
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="Print the events that would be stored, as NDJSON records ('dora import' "
            "reads them); write nothing.",
        ),
    ] = False,
    db: opt.Db = None,
    verbose: opt.Verbose = False,
) -> None:
    """Fetch the deployments and failures Datadog has (sent by dora, datadog-ci, APM
    Deployment Tracking or the API), to report on them here.

    Reads Datadog's DORA API (POST /api/v2/dora/deployments and /failures) with the API
    key and an application key with the dora_metrics_read permission (DD_APP_KEY,
    DATADOG_APP_KEY or DD_APPLICATION_KEY). Each event is stored under Datadog's own id,
    so that fetching again changes only what changed on Datadog (a failure resolved since),
    and a later 'dora push', delete or mark addresses the same event. An event with a
    change made here that 'dora push' has not sent yet is left as it is. An event that
    fails dora's checks is skipped with a warning; nothing is stored unless every event
    could be read.

    Examples:

        dora fetch datadog
        dora fetch datadog --since 30d --service api --env prod
        dora fetch datadog --query "team:payments" --dry-run | jq -r .id
    """
    from dora import checks, fetch_datadog, interchange
    from dora.backends.datadog import NO_APP_KEY
    from dora.errors import InvalidEvent
    from dora.store import check_target, open_store
    from dora.store.base import stored

    settings = Settings({"db": db})
    start, end = opt.window(since or DEFAULT_SINCE, until)
    services, envs, teams = opt.filters(service=service, env=env, team=team)
    endpoint = checks.datadog_endpoint(settings)
    if endpoint.app_key is None:
        raise UsageError(f"{NO_APP_KEY}: reading from Datadog needs one")
    if not dry_run:
        check_target(settings.get("db") or "")
    search = fetch_datadog.search_query(services, envs, teams, query)
    began = time.time_ns()  # what is sent from here on may be newer than what is read
    with (
        opt.connect(settings, endpoint) as backend,
        Progress("Fetching", counting="events") as bar,
    ):
        fetched = fetch_datadog.fetch(backend, start, end, query=search, progress=bar.count)
    items, valid, skipped = [], [], 0
    for kind, records in fetched.records.items():
        for record in records:
            what = f"Datadog {fetch_datadog.KINDS[kind]} {record['id']}"
            try:
                if not isinstance(record["id"], str) or not record["id"]:
                    raise InvalidEvent("id", "Datadog gave none")
                event, commits = interchange.event_of(record)
            except InvalidEvent as exc:
                skipped += 1
                if skipped <= _MAX_WARNINGS:
                    opt.log.warning("skipped %s: %s: %s", what, exc.field, exc.problem)
                continue
            items.append(stored(event, commits))
            valid.append(record)
    if skipped > _MAX_WARNINGS:
        opt.log.warning("... and %d more skipped", skipped - _MAX_WARNINGS)
    counts = {kind: len(records) for kind, records in fetched.records.items()}
    line = (
        f"Fetched {counts['deployment']:,} deployment{'s' * (counts['deployment'] != 1)} "
        f"and {counts['incident']:,} failure{'s' * (counts['incident'] != 1)} from Datadog "
        f"in {fetched.requests:,} request{'s' * (fetched.requests != 1)}"
    )
    if skipped:
        line += f"; skipped {skipped:,} that fail dora's checks"
    status(line + ".")
    if dry_run:
        interchange.write_ndjson(valid, sys.stdout)
        status("Dry run: nothing was written.")
        return
    if not items:
        return
    with (
        open_store(settings.get("db") or "") as store,
        Progress("Writing", len(items)) as bar,
    ):
        saved = store.save_many(items, sent_at=began, progress=bar.update)
    summary = (
        f"Stored in {store.location}: {saved.new:,} new, {saved.updated:,} updated, "
        f"{saved.unchanged:,} unchanged"
    )
    if saved.waiting:
        summary += (
            f"; {saved.waiting:,} left as they are here, changed or deleted here since "
            "Datadog had them"
        )
    status(summary + ".")


DryRun = Annotated[
    bool,
    typer.Option(
        "--dry-run",
        help="Print the events that would be stored, as NDJSON records ('dora import' "
        "reads them); write nothing.",
    ),
]
Until = Annotated[
    str | None,
    opt.time_option(
        "--until", f"End of the window, excluded (default: now). Same forms; {opt.NAIVE_UTC}."
    ),
]
Team = Annotated[
    str | None,
    typer.Option(
        "--team", metavar="TEAM", help="Set this team on every event.", show_default=False
    ),
]


def _since(what: str) -> object:
    return opt.since_option(
        f"Fetch the {what} created from then: a length before --until such as 30d "
        f"(default {DEFAULT_SINCE}), or a time: {opt.WINDOW_TIME_FORMS}."
    )


def _map_option(flag: str, metavar: str, help: str) -> object:
    return typer.Option(flag, metavar=metavar, help=help, show_default=False)


def _environment_option(source: str) -> object:
    return typer.Option(
        "--environment",
        metavar="NAME",
        help=f"Only the deployments to this {source} environment; repeatable (default: "
        "every environment).",
        show_default=False,
    )


def _env_map_option(source: str) -> object:
    return _map_option(
        "--env-map",
        "'ENVIRONMENT=ENV'",
        f"Record the deployments to {source} environment ENVIRONMENT under the env ENV "
        "(production=prod); repeatable. Others keep their name.",
    )


def github(
    repo: Annotated[
        list[str],
        typer.Option(
            "--repo",
            metavar="OWNER/NAME",
            help="The repository to read; repeat for several.",
            show_default=False,
        ),
    ],
    since: Annotated[str | None, _since("deployments and issues")] = None,
    until: Until = None,
    environment: Annotated[list[str] | None, _environment_option("GitHub")] = None,
    workflow: Annotated[
        str | None,
        typer.Option(
            "--workflow",
            metavar="FILE",
            help="Count the runs of this workflow (deploy.yml) that succeeded on the default "
            "branch as deployments, instead of GitHub's deployments.",
            show_default=False,
        ),
    ] = None,
    incident_label: Annotated[
        str,
        typer.Option(
            "--incident-label",
            metavar="LABEL",
            help="Issues with this label are incidents.",
        ),
    ] = "incident",
    service: Annotated[
        str | None,
        typer.Option(
            "--service",
            metavar="NAME",
            help="The service of every event (default: the repository's name).",
            show_default=False,
        ),
    ] = None,
    service_map: Annotated[
        list[str] | None,
        _map_option(
            "--service-map",
            "'OWNER/NAME=SERVICE'",
            "Record the events of repository OWNER/NAME under SERVICE; repeatable.",
        ),
    ] = None,
    env_map: Annotated[list[str] | None, _env_map_option("GitHub")] = None,
    env: Annotated[
        str | None,
        typer.Option(
            "--env",
            metavar="ENV",
            help="The env of incidents, and of workflow runs (GitHub gives them none).",
            show_default=False,
        ),
    ] = None,
    team: Team = None,
    dry_run: DryRun = False,
    backend: opt.Backend = None,
    db: opt.Db = None,
    verbose: opt.Verbose = False,
) -> None:
    """Fetch the deployments and incidents of GitHub repositories: history for a first
    report.

    A deployment is one of GitHub's deployments (the Deployments API, which Actions
    environments, Heroku, Vercel and others create) created in the window that reached
    the success state: it starts when it was created and finishes at its first success
    status. Deployments that never succeeded are not counted. With --workflow, each run of
    that workflow that succeeded on the default branch is a deployment instead. Each
    deployment ships the commits between it and the one before it in its environment
    (GitHub's compare), merges skipped, for lead time and for the revert and hotfix rules.
    Issues labelled --incident-label are incidents: opened, then closed (a reopened issue
    is open again).

    Reads GitHub's REST API with the token in GITHUB_TOKEN; GITHUB_API_URL replaces
    https://api.github.com (GitHub Enterprise Server: https://HOST/api/v3). Each event
    gets an id from GitHub's (github-deployment-ID, github-run-ID, github-issue-ID), so
    fetching again updates what changed and duplicates nothing. An event that fails
    dora's checks is skipped with a warning; nothing is stored unless everything could be
    read. With the datadog backend, new and changed events are sent after they are stored.

    Examples:

        dora fetch github --repo octo-org/api
        dora fetch github --repo octo-org/api --env-map production=prod --env prod
        dora fetch github --repo octo-org/web --workflow deploy.yml --env prod
        dora fetch github --repo octo-org/api --since 2026-01-01 --dry-run | jq -c .
    """
    from dora import fetching, github

    repos = [github.repository(value) for value in repo]
    options = github.Options(
        repos=repos,
        since=(window := opt.window(since or DEFAULT_SINCE, until))[0],
        until=window[1],
        environments=list(opt.filters(environment=environment)[0]),
        workflow=github.workflow(workflow) if workflow is not None else None,
        incident_label=_label(incident_label),
        service=_name("--service", service),
        service_map=fetching.name_map("--service-map", service_map or [], "OWNER/NAME=SERVICE"),
        env_map=fetching.name_map("--env-map", env_map or [], "ENVIRONMENT=ENV"),
        env=_name("--env", env),
        team=_name("--team", team),
    )
    settings = Settings({"db": db, "backend": backend})
    _, sender = opt.prepare(settings, dry_run=dry_run)
    with (
        opt.connect_source(settings, github) as client,
        Progress("Fetching", counting="events") as bar,
    ):
        fetched = github.fetch(client, options, progress=bar.count)
    _keep(fetched, "GitHub", settings, dry_run=dry_run, sender=sender)


def gitlab(
    project: Annotated[
        list[str],
        typer.Option(
            "--project",
            metavar="ID|PATH",
            help="The project to read, by id (42) or path (group/sub/project); repeat for several.",
            show_default=False,
        ),
    ],
    since: Annotated[
        str | None,
        opt.since_option(
            "Fetch the deployments that finished and the incidents opened from then: a "
            f"length before --until such as 30d (default {DEFAULT_SINCE}), or a time: "
            f"{opt.WINDOW_TIME_FORMS}."
        ),
    ] = None,
    until: Until = None,
    environment: Annotated[list[str] | None, _environment_option("GitLab")] = None,
    service: Annotated[
        str | None,
        typer.Option(
            "--service",
            metavar="NAME",
            help="The service of every event (default: the last part of the project's path).",
            show_default=False,
        ),
    ] = None,
    service_map: Annotated[
        list[str] | None,
        _map_option(
            "--service-map",
            "'PATH=SERVICE'",
            "Record the events of the project at PATH (group/sub/project) under SERVICE; "
            "repeatable.",
        ),
    ] = None,
    env_map: Annotated[list[str] | None, _env_map_option("GitLab")] = None,
    env: Annotated[
        str | None,
        typer.Option(
            "--env",
            metavar="ENV",
            help="The env of incidents (GitLab gives them none).",
            show_default=False,
        ),
    ] = None,
    team: Team = None,
    dry_run: DryRun = False,
    backend: opt.Backend = None,
    db: opt.Db = None,
    verbose: opt.Verbose = False,
) -> None:
    """Fetch the deployments and incidents of GitLab projects: history for a first report.

    A deployment is one of GitLab's deployments to an environment (a CI/CD job with
    'environment:') that succeeded and finished in the window: it starts when its job
    started and finishes when its job finished. Failed and canceled deployments are not
    counted. Each deployment ships the commits between it and the one before it in its
    environment (GitLab's compare), merges skipped, for lead time and for the revert and
    hotfix rules. Incident issues opened in the window are incidents: opened, then
    closed (a reopened incident is open again), with GitLab's severity.

    Reads GitLab's REST API with the token in GITLAB_TOKEN (read_api scope); GITLAB_URL
    replaces https://gitlab.com (a self-managed instance: https://HOST). Each event gets
    an id from GitLab's (gitlab-deployment-ID, gitlab-issue-ID), so fetching again
    updates what changed and duplicates nothing. An event that fails dora's checks is
    skipped with a warning; nothing is stored unless everything could be read. With the
    datadog backend, new and changed events are sent after they are stored.

    Examples:

        dora fetch gitlab --project acme/api
        dora fetch gitlab --project 42 --env-map production=prod
        dora fetch gitlab --project acme/api --project acme/web --env prod
        dora fetch gitlab --project acme/api --since 2026-01-01 --dry-run | jq -c .
    """
    from dora import fetching, gitlab

    options = gitlab.Options(
        projects=list(dict.fromkeys(gitlab.project(value) for value in project)),
        since=(window := opt.window(since or DEFAULT_SINCE, until))[0],
        until=window[1],
        environments=list(dict.fromkeys(opt.filters(environment=environment)[0])),
        service=_name("--service", service),
        service_map=fetching.name_map("--service-map", service_map or [], "PATH=SERVICE"),
        env_map=fetching.name_map("--env-map", env_map or [], "ENVIRONMENT=ENV"),
        env=_name("--env", env),
        team=_name("--team", team),
    )
    settings = Settings({"db": db, "backend": backend})
    _, sender = opt.prepare(settings, dry_run=dry_run)
    with (
        opt.connect_source(settings, gitlab) as client,
        Progress("Fetching", counting="events") as bar,
    ):
        fetched = gitlab.fetch(client, options, progress=bar.count)
    _keep(fetched, "GitLab", settings, dry_run=dry_run, sender=sender)


def _label(value: str) -> str:
    if not value.strip():
        raise UsageError("--incident-label: must not be empty")
    return value


def _name(flag: str, value: str | None) -> str | None:
    """A name set on every event, checked as the recording commands check it."""
    if value is None:
        return None
    from dora.events import Incident

    field = {"--service": "services", "--env": "env", "--team": "team"}[flag]
    given = [value] if field == "services" else value
    data = {"services": ["-"], "started_at": "now", field: given}
    probe = opt.build_event(Incident, data, {field: flag})
    checked = getattr(probe, field)
    return str(checked[0] if field == "services" else checked)


def _keep(
    fetched: Fetched,
    source: str,
    settings: Settings,
    *,
    dry_run: bool,
    sender: DatadogBackend | None,
) -> None:
    """Check each record as 'dora import' does (one that fails is skipped with a
    warning), say what was fetched, then print the records (a dry run) or store them all
    at once and send them with a backend."""
    from dora import interchange
    from dora.errors import InvalidEvent
    from dora.store.base import stored

    for warning in fetched.warnings[:_MAX_WARNINGS]:
        opt.log.warning("%s", warning)
    if len(fetched.warnings) > _MAX_WARNINGS:
        opt.log.warning("... and %d more warnings", len(fetched.warnings) - _MAX_WARNINGS)
    items, valid, skipped = [], [], 0
    for record in fetched.records:
        try:
            event, commits = interchange.event_of(record)
        except InvalidEvent as exc:
            skipped += 1
            if skipped <= _MAX_WARNINGS:
                opt.log.warning(
                    "skipped %s %s %s: %s: %s",
                    source,
                    record["type"],
                    record["id"],
                    exc.field,
                    exc.problem,
                )
            continue
        items.append(stored(event, commits))
        valid.append(record)
    if skipped > _MAX_WARNINGS:
        opt.log.warning("... and %d more skipped", skipped - _MAX_WARNINGS)
    deployments, incidents = fetched.count("deployment"), fetched.count("incident")
    line = (
        f"Fetched {deployments:,} deployment{'s' * (deployments != 1)} and {incidents:,} "
        f"incident{'s' * (incidents != 1)} from {source} in {fetched.requests:,} "
        f"request{'s' * (fetched.requests != 1)}"
    )
    if skipped:
        line += f"; skipped {skipped:,} that fail dora's checks"
    status(line + ".")
    if dry_run:
        interchange.write_ndjson(valid, sys.stdout)
        status("Dry run: nothing was written.")
        return
    opt.save_all(settings, iter(items), source=source, backend=sender, total=len(items))
    prefixes = {r["id"].partition("-")[0] + "-" for r in valid if r["type"] == "deployment"}
    for prefix in sorted(prefixes):
        _warn_twice(settings, prefix, source)


#: Deployments of one service, env and commit finished this close are one deployment.
_SAME_DEPLOYMENT_NS = 3600 * 10**9


def _warn_twice(settings: Settings, prefix: str, source: str) -> None:
    """Warn when fetched deployments (ids starting with ``prefix``) look like deployments
    recorded here otherwise (by 'dora deployment' in CI, say): the same service, env and
    commit, finished within an hour. Both count, so the figures would count it twice."""
    from dora.store import open_store

    with open_store(settings.get("db") or "", create=False) as store:
        [(twice,)] = store.aggregate(
            "SELECT count(*) FROM deployments d WHERE substr(d.id, 1, ?) = ? "
            "AND d.commit_sha IS NOT NULL AND EXISTS (SELECT 1 FROM deployments o "
            "WHERE o.service = d.service AND o.commit_sha = d.commit_sha "
            "AND (o.env = d.env OR (o.env IS NULL AND d.env IS NULL)) "
            "AND substr(o.id, 1, ?) != ? AND o.finished_at BETWEEN ? + d.finished_at "
            "AND d.finished_at + ?)",
            (len(prefix), prefix, len(prefix), prefix, -_SAME_DEPLOYMENT_NS, _SAME_DEPLOYMENT_NS),
        )
    if twice:
        opt.log.warning(
            "%s of the deployments from %s look like deployments recorded here otherwise "
            "(the same service, env and commit, finished within an hour), so reports "
            "count them twice; delete one of each ('dora deployment delete'), or fetch "
            "with --until before dora began recording",
            f"{twice:,}",
            source,
        )


IncidentEnv = Annotated[
    str | None,
    typer.Option(
        "--env",
        metavar="ENV",
        help="Set this environment on every incident, e.g. prod (the source has none; "
        "'dora metrics --env' keeps only incidents that have it).",
        show_default=False,
    ),
]
IncidentTeam = Annotated[
    str | None,
    typer.Option(
        "--team",
        metavar="TEAM",
        help="Set this team on every incident (one without a service needs it).",
        show_default=False,
    ),
]


def _service_map(source: str) -> object:
    return _map_option(
        "--service-map",
        "'NAME=SERVICE'",
        f"Record the incidents of {source} service NAME under SERVICE; repeatable. Others "
        "keep their name.",
    )


def opsgenie(
    since: Annotated[str | None, _since("incidents")] = None,
    until: Until = None,
    service_map: Annotated[list[str] | None, _service_map("Opsgenie")] = None,
    env: IncidentEnv = None,
    team: IncidentTeam = None,
    dry_run: DryRun = False,
    backend: opt.Backend = None,
    db: opt.Db = None,
    verbose: opt.Verbose = False,
) -> None:
    """Fetch the incidents of Opsgenie, resolved or still open: history for a first report.

    An incident starts when Opsgenie created it. A resolved or closed one finishes at its
    impact end date, else at its last update (an approximation: a later note or tag moves
    it); an open one stays open. Its services are the names of its impacted services (each
    asked for once), its severity the priority (P1 to P5), its name the message. An
    incident with no impacted service needs --team, or it is skipped with a warning.

    Reads Opsgenie's Incident API with the API key in OPSGENIE_API_KEY; OPSGENIE_API_URL
    replaces https://api.opsgenie.com (an EU account: https://api.eu.opsgenie.com). Each
    incident gets the id 'opsgenie-' and Opsgenie's id, so fetching again updates what
    changed and duplicates nothing. An incident that fails dora's checks is skipped with a
    warning; nothing is stored unless everything could be read. With the datadog backend,
    new and changed incidents are sent after they are stored.

    Examples:

        dora fetch opsgenie --env prod
        dora fetch opsgenie --since 2026-01-01 --service-map "Checkout API=api"
        dora fetch opsgenie --team sre --dry-run | jq -c .
    """
    from dora import fetching, opsgenie

    start, end = opt.window(since or DEFAULT_SINCE, until)
    options = opsgenie.Options(
        since=start,
        until=end,
        service_map=fetching.name_map("--service-map", service_map or [], "NAME=SERVICE"),
        env=_name("--env", env),
        team=_name("--team", team),
    )
    settings = Settings({"db": db, "backend": backend})
    _, sender = opt.prepare(settings, dry_run=dry_run)
    with (
        opt.connect_source(settings, opsgenie) as client,
        Progress("Fetching", counting="incidents") as bar,
    ):
        fetched = opsgenie.fetch(client, options, progress=bar.count)
    _keep(fetched, "Opsgenie", settings, dry_run=dry_run, sender=sender)


def incident_io(
    since: Annotated[str | None, _since("incidents")] = None,
    until: Until = None,
    services_field: Annotated[
        str,
        typer.Option(
            "--services-field",
            metavar="NAME",
            help="The custom field that names an incident's services (any case).",
        ),
    ] = "Affected services",
    resolved_timestamp: Annotated[
        str,
        typer.Option(
            "--resolved-timestamp",
            metavar="NAME",
            help="The incident timestamp that says when an incident was resolved (any case).",
        ),
    ] = "Resolved at",
    started_timestamp: Annotated[
        str,
        typer.Option(
            "--started-timestamp",
            metavar="NAME",
            help="The incident timestamp that says when an incident began (any case); "
            "without one, when incident.io created it.",
        ),
    ] = "Reported at",
    service_map: Annotated[list[str] | None, _service_map("incident.io")] = None,
    env: IncidentEnv = None,
    team: IncidentTeam = None,
    dry_run: DryRun = False,
    backend: opt.Backend = None,
    db: opt.Db = None,
    verbose: opt.Verbose = False,
) -> None:
    """Fetch the incidents of incident.io, resolved or still open: history for a first
    report.

    An incident starts at its --started-timestamp, else when incident.io created it (a
    retrospective incident is created after it was over). One in triage, live or paused is open
    (a reopened one too); one in learning or closed finishes at its --resolved-timestamp,
    else at the status update that resolved it. Declined, canceled and merged incidents
    are not incidents: they are skipped and counted. Its services are the values of the
    --services-field custom field (catalog entries, options or text), its severity and
    name incident.io's. An incident with no service needs --team, or it is skipped with a
    warning. Only incidents of modes standard and retrospective are listed, as incident.io
    lists them: test and tutorial incidents are left out.

    Reads incident.io's API with the API key in INCIDENT_IO_API_KEY; INCIDENT_IO_API_URL
    replaces https://api.incident.io. Each incident gets the id 'incident-io-' and
    incident.io's id, so fetching again updates what changed and duplicates nothing. An
    incident that fails dora's checks is skipped with a warning; nothing is stored unless
    everything could be read. With the datadog backend, new and changed incidents are sent
    after they are stored.

    Examples:

        dora fetch incident-io --env prod
        dora fetch incident-io --services-field "Affected systems" --team sre
        dora fetch incident-io --since 2026-01-01 --service-map "Checkout=api"
    """
    from dora import fetching, incident_io

    start, end = opt.window(since or DEFAULT_SINCE, until)
    options = incident_io.Options(
        since=start,
        until=end,
        service_map=fetching.name_map("--service-map", service_map or [], "NAME=SERVICE"),
        env=_name("--env", env),
        team=_name("--team", team),
        services_field=_field("--services-field", services_field),
        resolved_timestamp=_field("--resolved-timestamp", resolved_timestamp),
        started_timestamp=_field("--started-timestamp", started_timestamp),
    )
    settings = Settings({"db": db, "backend": backend})
    _, sender = opt.prepare(settings, dry_run=dry_run)
    with (
        opt.connect_source(settings, incident_io) as client,
        Progress("Fetching", counting="incidents") as bar,
    ):
        fetched = incident_io.fetch(client, options, progress=bar.count)
    _keep(fetched, "incident.io", settings, dry_run=dry_run, sender=sender)


def _field(flag: str, value: str) -> str:
    if not value.strip():
        raise UsageError(f"{flag}: must not be empty")
    return value.strip()
