"""``dora fetch SOURCE``: history from elsewhere into the store (``datadog``)."""

from __future__ import annotations

import sys
import time
from typing import Annotated

import typer

from dora.cli import _common as opt
from dora.cli._help import Typer
from dora.cli._runtime import Progress, print_help, status
from dora.config import Settings
from dora.errors import UsageError

app = Typer(
    name="fetch",
    lazy={"datadog": "dora.cli.fetch:datadog", "pagerduty": "dora.cli.incident:import_pagerduty"},
)


@app.callback(invoke_without_command=True)
def _fetch(ctx: typer.Context) -> None:
    """Fetch deployments and incidents recorded elsewhere into the store.

    Examples:

        dora fetch datadog --since 90d
        dora fetch pagerduty --env prod
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
