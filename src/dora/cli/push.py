"""``dora push``: deliver every event still waiting in the outbox."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from dora.cli import _common as opt
from dora.cli._runtime import error_line, status
from dora.config import Settings
from dora.errors import DoraError, NotFound


def push(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="List what would be sent; send nothing.")
    ] = False,
    db: opt.Db = None,
    verbose: opt.Verbose = False,
) -> None:
    """Send every pending or failed event to the Datadog DORA API, oldest first.

    Events recorded with the datadog backend wait in the store until Datadog accepts them.
    Each is sent once, by its id. Marks ('dora deployment mark') go after the events;
    marks and deletions ('dora deployment delete', 'dora incident delete') only with an
    application key (DD_APP_KEY): without one they wait. Exits 1 if any it
    was to send remain; events that another 'dora push' running at the same time
    delivered, or is sending, are its own.

    Examples:

        dora push
        dora push --dry-run
        DORA_RETRY_BUDGET=120 dora push
    """
    from dora import checks
    from dora.backends import outbox
    from dora.backends.datadog import NO_APP_KEY
    from dora.store import open_store

    settings = Settings({"db": db})
    where = settings.get("db") or ""
    try:
        store = open_store(where, create=False)
    except NotFound:
        status(f"Nothing to push: no store at {where}.")
        return
    with store:
        waiting = store.undelivered()
        if not waiting:
            status("Nothing to push: no event is waiting in the outbox.")
            return
        if dry_run:
            for item in waiting:
                tried = f"{item.attempts} attempt{'s' * (item.attempts != 1)}"
                sys.stdout.write(
                    f"{item.event.kind}\t{item.event.id}\t{item.event.api_path}\t"
                    f"{item.state}\t{tried}\n"
                )
            status(f"{len(waiting)} event{'s' * (len(waiting) != 1)} would be sent.")
            return
        # only now is an API key needed
        with opt.connect(settings, checks.datadog_endpoint(settings)) as backend:
            only = None
            if not backend.has_app_key:  # marks and deletions wait for one; events need none
                only = {(i.event.kind, i.event.id) for i in waiting if i.event.api_method == "POST"}
            report = outbox.push(store, backend, only=only)
            kept = (
                [] if only is None else [i.event for i in waiting if i.event.api_method != "POST"]
            )
            marks = sum(event.kind == "mark" for event in kept)
        for event, code in report.delivered:
            status(f"Sent {event.kind} {event.id} ({code})")
        for event, exc in report.failed:
            error_line(f"{event.kind} {event.id}: {exc.message}")
    sent = len(report.delivered)
    if line := opt.others_line(report):
        status(line)
    if kept:
        left = " and ".join(
            f"{n} {name}{'s' * (n != 1)}"
            for n, name in ((marks, "mark"), (len(kept) - marks, "deletion"))
            if n
        )
        if report.remaining:
            left += f" and {report.remaining} other events"
        raise DoraError(
            f"{NO_APP_KEY}: delivered {sent}; {left} remain in {store.location}, "
            "'dora push' will send them once DD_APP_KEY is set"
        )
    if report.remaining:
        raise DoraError(
            f"delivered {sent}; {report.remaining} remain in {store.location}, "
            "'dora push' will try them again"
        )
    status(f"Delivered {sent} event{'s' * (sent != 1)}; nothing remains.")
