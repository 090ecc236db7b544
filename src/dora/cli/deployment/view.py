"""``dora deployment list | show``: look at recorded deployments and their verdicts."""

from __future__ import annotations

import sys
from enum import Enum
from typing import Annotated

import typer

from dora.cli import _common as opt
from dora.cli._runtime import note, status, terminal_width


class ListFormat(str, Enum):
    table = "table"
    json = "json"


class ShowFormat(str, Enum):
    text = "text"
    json = "json"


def list_(
    service: opt.ServiceFilter = None,
    env: opt.EnvFilter = None,
    team: opt.TeamFilter = None,
    since: Annotated[
        str | None,
        opt.since_option(
            "Only deployments that finished from then: a length before --until such as "
            f"30d, 12w, or a time: {opt.WINDOW_TIME_FORMS} (default: all)."
        ),
    ] = None,
    until: Annotated[
        str | None,
        opt.time_option(
            "--until",
            f"Only deployments that finished before then. Same time forms; {opt.NAIVE_UTC}.",
        ),
    ] = None,
    failed: Annotated[
        bool,
        typer.Option(
            "--failed",
            help="Only deployments that failed, as 'dora metrics' counts them (a mark "
            "overrides the rules).",
        ),
    ] = False,
    limit: opt.Limit = 30,
    format: Annotated[
        ListFormat, typer.Option("--format", help="Output format.", case_sensitive=False)
    ] = ListFormat.table,
    link_window: opt.LinkWindow = None,
    hotfix_pattern: opt.HotfixPattern = None,
    db: opt.Db = None,
    verbose: opt.Verbose = False,
) -> None:
    """List recorded deployments, newest first, and whether each failed.

    The FAILED column names the rules by which a deployment failed (rollback, hotfix,
    revert, incident, manual); 'dora deployment show ID' says why.

    Examples:

        dora deployment list --service api --env prod
        dora deployment list --failed --since 30d
        dora deployment list --format json | jq -r '.[0].id'
    """
    from dora import checks
    from dora import deployments as lib
    from dora import render_deployments as render
    from dora.config import Settings

    settings = Settings({"db": db, "link_window": link_window, "hotfix_pattern": hotfix_pattern})
    window_limit, hotfix = checks.link_window(settings), checks.hotfix_pattern(settings)
    services, envs, teams = opt.filters(service=service, env=env, team=team)
    start, end = opt.optional_window(since, until)
    where, store = opt.existing_store(db)
    items: list[lib.Listed] = []
    if store is not None:
        try:
            opt.use_hotfix(store, hotfix, reading=True)  # verdicts as dora metrics gives them
            items = lib.listing(
                store,
                services=services,
                envs=envs,
                teams=teams,
                since=start,
                until=end,
                failed_only=failed,
                limit=limit + 1 if limit else None,
                link_window=window_limit,
            )
        finally:
            store.close()
    more = bool(limit) and len(items) > limit
    items = items[:limit] if limit else items
    if format is ListFormat.json:
        render.deployments_json(items, sys.stdout)
    elif items:
        if said := render.deployments_table(items, sys.stdout, terminal_width()):
            note(said)
    else:
        status(f"No {'failed ' if failed else ''}deployments recorded in {where}.")
    if more:
        status(f"Showing the newest {limit}; --limit 0 shows all.")


def show(
    deployment_id: Annotated[
        str,
        typer.Argument(
            metavar="ID", help="The deployment's id, or a prefix of it that matches only one."
        ),
    ],
    format: Annotated[
        ShowFormat, typer.Option("--format", help="Output format.", case_sensitive=False)
    ] = ShowFormat.text,
    link_window: opt.LinkWindow = None,
    hotfix_pattern: opt.HotfixPattern = None,
    db: opt.Db = None,
    verbose: opt.Verbose = False,
) -> None:
    """Show a deployment: its fields, the commits it shipped with their lead times, and
    whether it failed and why.

    A failed deployment lists each reason (the rule, and the rollback, hotfix, revert or
    incident behind it), what remediated it, and its recovery time; a deployment that
    remediated failures names them (rework).

    Examples:

        dora deployment show 01JDQ3ZK5R8W
        dora deployment show 01JDQ3ZK5R8W --link-window 7d
        dora deployment show 01JDQ3ZK5R8W --format json | jq .reasons
    """
    from dora import checks
    from dora import deployments as lib
    from dora import render_deployments as render
    from dora.config import Settings
    from dora.store import open_store

    settings = Settings({"db": db, "link_window": link_window, "hotfix_pattern": hotfix_pattern})
    window_limit, hotfix = checks.link_window(settings), checks.hotfix_pattern(settings)
    with (
        open_store(settings.get("db") or "", create=False) as store,
        opt.naming_fields({"id": "ID"}),
    ):
        opt.use_hotfix(store, hotfix, reading=True)
        item = lib.detail(store, deployment_id, link_window=window_limit)
    if format is ShowFormat.json:
        render.deployment_json(item, sys.stdout)
    elif said := render.deployment_text(item, sys.stdout, terminal_width()):
        note(said)
