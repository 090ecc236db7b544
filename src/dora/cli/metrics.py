"""``dora metrics``: the DORA metrics of a window, per group, as a table, JSON, CSV or Markdown."""

from __future__ import annotations

import sys
from enum import Enum
from typing import TYPE_CHECKING, Annotated

import typer

from dora.cli import _common as opt
from dora.cli._runtime import note, status, terminal_width
from dora.errors import UsageError

if TYPE_CHECKING:
    from datetime import timedelta


class Format(str, Enum):
    table = "table"
    json = "json"
    csv = "csv"
    markdown = "markdown"


class Interval(str, Enum):
    day = "day"
    week = "week"
    month = "month"


#: The options of a report's window, grouping and levels (``dora metrics``, ``dora report``).
Since = Annotated[
    str | None,
    opt.since_option(
        "Start of the window, included: a length before --until such as 30d, 12w, 6h "
        f"(default 30d), or a time: {opt.WINDOW_TIME_FORMS}."
    ),
]
Until = Annotated[
    str | None,
    opt.time_option(
        "--until",
        f"End of the window, excluded (default: now). Same time forms; {opt.NAIVE_UTC}.",
    ),
]
By = Annotated[
    str,
    typer.Option(
        "--by",
        metavar="FIELDS",
        help="Group by service, team or env, or a comma list such as service,env; "
        "none for one row.",
    ),
]
Benchmarks = Annotated[
    str | None,
    typer.Option(
        "--benchmarks",
        metavar="YEAR",
        help="Edition of DORA's benchmarks the levels come from: 2024 (default) or 2023 "
        "(env DORA_BENCHMARKS).",
        show_default=False,
    ),
]


def metrics(
    since: Since = None,
    until: Until = None,
    by: By = "service",
    service: opt.ServiceFilter = None,
    team: opt.TeamFilter = None,
    env: opt.EnvFilter = None,
    interval: Annotated[
        Interval | None,
        typer.Option(
            "--interval",
            help="Add a trend: one row per UTC day, week (from Monday) or month, per group.",
            case_sensitive=False,
            show_default=False,
        ),
    ] = None,
    explain: Annotated[
        bool,
        typer.Option(
            "--explain",
            help="List the deployments and incidents behind each group's numbers "
            "(table, json and markdown).",
        ),
    ] = False,
    format: Annotated[
        Format, typer.Option("--format", help="Output format.", case_sensitive=False)
    ] = Format.table,
    charts: Annotated[
        bool,
        typer.Option(
            "--charts/--no-charts",
            help="With --format markdown and --interval, a Mermaid chart of each metric "
            "after the trend table, which GitHub draws.",
        ),
    ] = True,
    benchmarks: Benchmarks = None,
    link_window: opt.LinkWindow = None,
    hotfix_pattern: opt.HotfixPattern = None,
    db: opt.Db = None,
    verbose: opt.Verbose = False,
) -> None:
    """Report DORA's metrics: deployment frequency, lead time, change failure rate, failed
    deployment recovery time and deployment rework rate, with time to restore.

    The window is [since, until) in UTC. Each figure is given per group and in total:

    * Deployments that finished in the window; deployment frequency is their number per day.

    * Lead time: the median time from a commit to the end of the deployment that shipped it.
    'dora deployment' records the commits when run inside the repository; a service's
    first deployment has none.

    * Failed deployments: deployments that finished in the window and failed: rolled back
    (a later deployment went back to an earlier SHA or version), rolled forward over (the
    next deployment is a hotfix, or reverts a commit it shipped), linked to an incident
    (named with 'dora incident open --deployment', else the latest deployment of the
    incident's service, or team, and env finished at or before it started), or marked
    with 'dora deployment mark'. Change failure rate (CFR) is failed deployments / deployments, n/a
    for a group without deployments; incidents per deployment is the old formula.

    * Recovery time of the failed deployments whose recovery ended in the window: from the
    deployment's finish to its first remediation's finish, else to its last linked
    incident's resolution. Median, mean and 90th percentile; those not yet recovered at
    the end of the window are counted and never scored.

    * Rework: deployments in the window that remediated a failure (rollbacks, hotfixes,
    reverts, a remediation a mark names) / deployments.

    * Incidents that started in the window, and time to restore (finish - start) of those
    resolved in it: MTTR (the mean), the median and the 90th percentile. Incidents still
    open at the end of the window are counted, with the age of the oldest, and never
    scored. An incident of several services counts in each service's row and once in the
    total.

    Levels (elite, high, medium, low) follow DORA's 2024 benchmarks (--benchmarks 2023 for
    the earlier ones), judged on the medians. 2024 gives no separate bound for medium on
    change failure rate and recovery time: those are elite, high or low.

    Examples:

        dora metrics
        dora metrics --since 12w --by team --env prod
        dora metrics --since 2026-01-01 --until 2026-04-01 --interval month
        dora metrics --format markdown >> "$GITHUB_STEP_SUMMARY"
        dora metrics --interval week --format markdown >> "$GITHUB_STEP_SUMMARY"
        dora metrics --interval week --format markdown --no-charts
        dora metrics --service api --explain
        dora metrics --benchmarks 2023 --link-window 7d
    """
    from dora import metrics as m
    from dora import render

    edition, window_limit, hotfix = report_settings(db, benchmarks, link_window, hotfix_pattern)
    group_by = group_fields(by)
    window = opt.window(since, until)
    if explain and format is Format.csv:
        raise UsageError("--explain: not available with --format csv; use json or markdown")
    filters = m.Filters(*opt.filters(service=service, team=team, env=env))
    where, store = opt.existing_store(db)
    try:
        if store is not None:  # the figures as if every deployment was judged with it
            opt.use_hotfix(store, hotfix, reading=True)
        report = m.report(
            store,
            *window,
            group_by=group_by,
            filters=filters,
            interval=interval.value if interval else None,
            explain=explain,
            benchmarks=edition,
            link_window=window_limit,
        )
    finally:
        if store is not None:
            store.close()
    if format is Format.json:
        render.metrics_json(report, sys.stdout)
    elif format is Format.csv:
        render.metrics_csv(report, sys.stdout)
    elif format is Format.markdown:
        render.metrics_markdown(report, sys.stdout, charts=charts)
    else:
        for said in render.metrics_table(report, sys.stdout, width=terminal_width()):
            note(said)
    if store is None:
        status(f"Nothing has been recorded in {where} yet.")
    elif not report.groups:
        status("No deployments or incidents in this window.")


def report_settings(
    db: str | None, benchmarks: str | None, link_window: str | None, hotfix_pattern: str | None
) -> tuple[str, timedelta | None, str]:
    """The benchmarks edition, link window and hotfix pattern a report uses, each from its
    flag, else the environment, the config file or its default, and checked."""
    from dora import checks
    from dora.config import Settings

    given = {"db": db, "benchmarks": benchmarks, "link_window": link_window}
    settings = Settings({**given, "hotfix_pattern": hotfix_pattern})
    return (
        checks.benchmarks(settings),
        checks.link_window(settings),
        checks.hotfix_pattern(settings),
    )


def group_fields(text: str) -> tuple[str, ...]:
    from dora.metrics import GROUP_FIELDS

    names = [name.strip().lower() for name in text.split(",")]
    if names == ["none"]:
        return ()
    for name in names:
        if name not in GROUP_FIELDS:
            shown = name or "an empty name"
            raise UsageError(f"--by: {shown!r} is not a field; use service, team, env or none")
    if len(set(names)) < len(names):
        raise UsageError(f"--by: {text!r} names a field twice")
    return tuple(names)
