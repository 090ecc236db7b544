"""``dora report``: the metrics of a window as one self-contained HTML page, with charts."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from dora.cli import _common as opt
from dora.cli._files import output_file
from dora.cli._runtime import Progress, status
from dora.cli.metrics import (
    Benchmarks,
    By,
    Interval,
    Since,
    Until,
    group_fields,
    report_settings,
)
from dora.errors import DoraError, UsageError

#: The command that installs what ``dora report`` draws its charts with.
INSTALL_REPORT = "pip install 'dora[report]'"


def report(
    output: Annotated[
        str,
        typer.Option(
            "--output",
            "-o",
            metavar="FILE",
            help="Write the page to FILE (replaced whole, only once complete); - for "
            "standard output.",
        ),
    ] = "dora-report.html",
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
            help="The charts' points: one per UTC day, week (from Monday) or month "
            "(default: by day up to 62 days, by week up to 550, else by month).",
            case_sensitive=False,
            show_default=False,
        ),
    ] = None,
    events: Annotated[
        bool,
        typer.Option(
            "--events/--no-events",
            help="Fold in the deployments and incidents behind each group's numbers, as "
            "'dora metrics --explain' lists them (at most 12 of each kind a group, 2,000 "
            "lines in all).",
        ),
    ] = True,
    benchmarks: Benchmarks = None,
    link_window: opt.LinkWindow = None,
    hotfix_pattern: opt.HotfixPattern = None,
    db: opt.Db = None,
    verbose: opt.Verbose = False,
) -> None:
    """Write the DORA metrics of a window as one HTML page, with charts.

    The page holds everything it shows (styles and charts inline, no script, nothing
    fetched), so it opens from disk, as a mail attachment or a CI artifact, offline. It
    shows: a headline per metric for the whole selection, with its level and its change
    from the window of the same length just before; a chart per metric over time, a line
    per group (the six with the most deployments), on DORA's level bands; how lead times,
    times to restore and recovery times spread, with their median and 90th percentile; the
    table 'dora metrics' gives; and, folded, the events behind each group's numbers.

    Figures mean what they mean in 'dora metrics' (see 'dora metrics --help'). The charts
    need matplotlib: pip install 'dora[report]'.

    Examples:

        dora report
        dora report --since 12w --by team -o team-report.html
        dora report --since 2026-01-01 --until 2026-04-01 --interval week --env prod
        dora report -o - | gzip > dora-report.html.gz
    """
    from dora import metrics

    try:
        import matplotlib  # noqa: F401 - only whether it is there
    except ImportError:
        raise DoraError(f"dora report draws its charts with matplotlib: {INSTALL_REPORT}") from None
    edition, window_limit, hotfix = report_settings(db, benchmarks, link_window, hotfix_pattern)
    group_by = group_fields(by)
    window = opt.window(since, until)
    filters = metrics.Filters(*opt.filters(service=service, team=team, env=env))
    if output != "-" and os.path.isdir(output):  # said before the work, not after
        raise UsageError(f"--output: {output} is a directory")
    from dora import report as page

    where, store = opt.existing_store(db)
    try:
        if store is not None:
            opt.use_hotfix(store, hotfix, reading=True)
        with Progress("Making the report", page.STEPS) as bar:
            text = page.make(
                store,
                *window,
                group_by=group_by,
                filters=filters,
                interval=interval.value if interval else None,
                benchmarks=edition,
                link_window=window_limit,
                events=events,
                progress=bar.advance,
            )
    finally:
        if store is not None:
            store.close()
    with output_file(output) as out:
        out.write(text)
    if store is None:
        status(f"Nothing has been recorded in {where} yet.")
    if output != "-":
        size = len(text.encode())
        status(f"Wrote the report to {output} ({_size(size)}).")


def _size(size: int) -> str:
    return f"{size / 1024:,.0f} KiB" if size >= 1024 else f"{size} bytes"
