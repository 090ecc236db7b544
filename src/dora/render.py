"""Turning results into output: rich tables for people, JSON for scripts."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import IO, Any

from dora import timeparse
from dora.config import Setting
from dora.events import Event, Incident


def event_json(event: Event) -> dict[str, Any]:
    """An event as a JSON object: every field present, times in ISO 8601 UTC."""
    data = event.model_dump(mode="python")
    for key, value in data.items():
        if key.endswith("_at") and value is not None:
            data[key] = timeparse.format_iso(value)
    return {"type": event.kind, **data}


def api_body(event: Event, out: IO[str]) -> None:
    """The event's Datadog request body, as ``--dry-run`` shows it."""
    json.dump(event.api_body(), out, indent=2)
    out.write("\n")


def duration(incident: Incident) -> str:
    """How long an incident lasted (``1h 20m``), or has lasted so far if still open."""
    end = incident.finished_at or timeparse.now()
    return timeparse.format_duration(end - incident.started_at)


def affects(incident: Incident) -> str:
    """What an incident hit, in a few words: ``api, web (team edge)``, ``team edge``."""
    services = ", ".join(incident.services)
    if not incident.team:
        return services
    return f"{services} (team {incident.team})" if services else f"team {incident.team}"


def settings_table(settings: Sequence[Setting], path: str, path_source: str, out: IO[str]) -> None:
    """``dora config``: one aligned line per setting, with where it came from."""
    rows = [("config file", path, path_source)]
    rows += [(s.key.name, s.shown() or "-", s.source) for s in settings]
    name_width = max(len(row[0]) for row in rows)
    value_width = max(len(row[1]) for row in rows)
    for name, value, source in rows:
        out.write(f"{name:<{name_width}}  {value:<{value_width}}  {source}\n")


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
            state = f"[bold red]open[/] {duration(incident)}"
        else:
            state = f"[green]took[/] {duration(incident)}"
        table.add_row(
            incident.id,
            incident.started_at.strftime("%Y-%m-%d %H:%M"),
            state,
            escape(affects(incident)),
            escape(incident.env or ""),
            escape(" · ".join(text for text in (incident.severity, incident.name) if text)),
        )
    Console(file=out, highlight=False).print(table)
