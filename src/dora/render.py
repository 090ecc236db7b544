"""Turning results into output: rich tables for people, JSON for scripts."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import IO, Any

from dora import timeparse
from dora.events import Event, Incident


def event_json(event: Event) -> dict[str, Any]:
    """An event as a JSON object: every field present, times in ISO 8601 UTC."""
    data = event.model_dump(mode="python")
    for key, value in data.items():
        if key.endswith("_at") and value is not None:
            data[key] = timeparse.format_iso(value)
    return {"type": event.kind, **data}


def incidents_json(incidents: Sequence[Incident], out: IO[str]) -> None:
    json.dump([event_json(i) for i in incidents], out, indent=2)
    out.write("\n")


def incidents_table(incidents: Sequence[Incident], out: IO[str]) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    table = Table(box=None, header_style="bold", pad_edge=False)
    table.add_column("ID", no_wrap=True)
    table.add_column("STARTED (UTC)", no_wrap=True)
    table.add_column("STATE", no_wrap=True)
    table.add_column("AFFECTS", min_width=8, overflow="fold")
    table.add_column("ENV", min_width=4, overflow="fold")
    table.add_column("NAME", min_width=8, overflow="fold")
    for incident in incidents:
        if incident.is_open:
            state = f"[bold red]open[/] {incident.duration_text}"
        else:
            state = f"[green]took[/] {incident.duration_text}"
        affects = ", ".join(incident.services)
        if incident.team:
            affects = f"{affects} (team {incident.team})" if affects else f"team {incident.team}"
        table.add_row(
            incident.id,
            incident.started_at.strftime("%Y-%m-%d %H:%M"),
            state,
            escape(affects),
            escape(incident.env or ""),
            escape(" · ".join(text for text in (incident.severity, incident.name) if text)),
        )
    Console(file=out, highlight=False).print(table)
