"""``dora deployment list`` and ``show`` output, and ``dora incident show``'s: a table or
text for people, JSON for scripts. Plain words say what failed (never colour alone)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import IO, TYPE_CHECKING, Any

from dora import layout, rerecord, timeparse
from dora.deployments import Detail, Listed
from dora.text import visible

if TYPE_CHECKING:
    from rich.text import Text

    from dora.events import Incident

#: Columns a narrow terminal drops first, in this order (--format json has them all).
_DROPPABLE = ("VERSION", "ENV", "FINISHED (UTC)")


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M") if moment is not None else ""


def _moment(moment: datetime) -> str:
    """``2026-11-03 09:00 UTC``, kept on one line when wrapped."""
    return f"{_when(moment)} UTC".replace(" ", layout.GLUE)


def _duration_ns(ns: int) -> str:
    return timeparse.format_duration(timedelta(microseconds=ns // 1000))


def failed_words(item: Listed) -> str:
    """``rollback``, ``incident, hotfix``: the rules by which it failed; empty if it did
    not."""
    if item.outcome is None or not item.outcome.verdict.failed:
        return ""
    rules = dict.fromkeys(reason.rule for reason in item.outcome.verdict.reasons)
    return ", ".join(rules) or "failed"


#: The list's columns: ID, SERVICE and FAILED are essential, the others left out in the
#: order of ``_DROPPABLE`` when the terminal is narrow.
_COLUMNS = (
    layout.Column("ID"),
    layout.Column("SERVICE", cut_to=12),
    layout.Column("ENV", cut_to=8),
    layout.Column("VERSION", cut_to=12),
    layout.Column("FINISHED (UTC)"),
    layout.Column("FAILED"),
)


def deployments_table(items: Sequence[Listed], out: IO[str], width: int | None = 80) -> str | None:
    """A line per deployment in ``width`` columns (None: no limit); return the line that
    says what was left out or cut to fit, if anything was."""
    rows: list[list[Text | str]] = [
        [
            item.deployment.id,
            visible(item.deployment.service),
            visible(item.deployment.env or ""),
            visible(item.deployment.version or ""),
            _when(item.deployment.finished_at),
            failed_words(item),
        ]
        for item in items
    ]
    fitted = layout.fit_table(_COLUMNS, rows, width, _DROPPABLE, header_style="")
    layout.write(fitted.lines, out, color=False)
    return layout.note(fitted)


def _cut(text: str, size: int) -> str:
    return text if len(text) <= size else text[: size - 1] + "…"


def _deployment_data(item: Listed) -> dict[str, Any]:
    d = item.deployment
    verdict = item.outcome.verdict if item.outcome is not None else None
    git = d.git
    return {
        "id": d.id,
        "service": d.service,
        "env": d.env,
        "team": d.team,
        "version": d.version,
        "started_at": timeparse.format_iso(d.started_at),
        "finished_at": timeparse.format_iso(d.finished_at) if d.finished_at else None,
        "commit_sha": git.commit_sha if git else None,
        "repository_url": git.repository_url if git else None,
        "custom_tags": list(d.custom_tags),
        "failed": item.failed,
        "reasons": [
            {
                "rule": r.rule,
                "detail": r.detail,
                "remediated_by": r.remediated_by,
                "remediation_type": r.remediation_type,
            }
            for r in (verdict.reasons if verdict is not None and verdict.failed else [])
        ],
        "remediated_by": [
            {"id": i, "type": t}
            for i, t in (verdict.remediations if verdict is not None and verdict.failed else [])
        ],
        "remediates": list(item.remediates),
    }


def deployments_json(items: Sequence[Listed], out: IO[str]) -> None:
    json.dump([_deployment_data(item) for item in items], out, indent=2)
    out.write("\n")


def _detail_data(item: Detail) -> dict[str, Any]:
    data = _deployment_data(item)
    outcome = item.outcome
    failed = outcome is not None and outcome.verdict.failed
    recovered = outcome.recovered_at if outcome is not None and failed else None
    recovery = outcome.recovery_ns if outcome is not None and failed else None
    median = item.median_lead_ns
    data.update(
        {
            "cleared": outcome is not None and outcome.verdict.cleared,
            "incidents": [i.id for i in outcome.incidents] if outcome is not None else [],
            "recovered_at": (
                timeparse.format_iso(timeparse.from_ns(recovered))
                if recovered is not None
                else None
            ),
            "recovery_time_seconds": recovery / 1e9 if recovery is not None else None,
            "record_command": rerecord.command(item.deployment),
            "commits": [
                {
                    "sha": c.sha,
                    "committed_at": timeparse.format_iso(c.committed_at),
                    "subject": c.subject,
                    "lead_time_seconds": c.lead_ns / 1e9,
                }
                for c in item.commits
            ],
            "median_lead_time_seconds": median / 1e9 if median is not None else None,
        }
    )
    return data


def deployment_json(item: Detail, out: IO[str]) -> None:
    json.dump(_detail_data(item), out, indent=2)
    out.write("\n")


def deployment_text(item: Detail, out: IO[str], width: int | None = 80) -> str | None:
    """The fields, the commits with their lead times, and the verdict: why it failed, what
    remediated it and its recovery, and the failures it remediates; in ``width`` columns
    (None: no limit), wrapped at spaces. Return the line that says what was cut to fit (a
    commit's subject), if anything was."""
    d = item.deployment
    git = d.git
    lines: list[str] = []

    def field(label: str, value: str) -> None:
        lead = f"{label + ':':<12}"
        lines.extend(layout.wrap(visible(value) or "-", width, lead, " " * len(lead)))

    field("deployment", d.id)
    field("service", d.service)
    field("env", d.env or "")
    field("team", d.team or "")
    field("version", d.version or "")
    field("started", _moment(d.started_at))
    field("finished", _moment(d.finished_at) if d.finished_at else "")
    field("commit", (git.commit_sha or "") if git else "")
    field("repository", (git.repository_url or "") if git else "")
    if d.custom_tags:
        field("tags", ", ".join(d.custom_tags))
    median = item.median_lead_ns
    cut = False
    if item.commits and median is not None:
        field("commits", f"{len(item.commits)}, median lead time {_duration_ns(median)}")
        for c in item.commits:
            line = f"  {c.sha[:12]}  {_duration_ns(c.lead_ns):>7}  {visible(c.subject or '')}"
            if width is not None and len(line.rstrip()) > width:
                line, cut = _cut(line, width), True
            lines.append(line.rstrip())
    else:
        field("commits", "none recorded")
    outcome = item.outcome
    if outcome is None or not outcome.verdict.failed:
        field("failed", "no, cleared by a --stable mark" if outcome is not None else "no")
    else:
        field("failed", "yes")
        for reason in outcome.verdict.reasons:
            lines.extend(
                layout.wrap(f"{reason.rule}: {visible(reason.detail)}", width, "  ", "    ")
            )
        remediations = outcome.verdict.remediations
        field(
            "remediated",
            ", ".join(f"by {i} ({t or 'unknown'})" for i, t in remediations) or "no",
        )
        recovery = outcome.recovery_ns
        recovered = outcome.recovered_at
        if recovery is None or recovered is None:
            field("recovery", "not recovered")
        else:
            at = _moment(timeparse.from_ns(recovered))
            field("recovery", f"{_duration_ns(recovery)} (recovered {at})")
    field("remediates", ", ".join(item.remediates) or "none")
    lines += ["", "To correct it, change a field in this command and run it:"]
    lines += rerecord.lines(d, width)
    out.writelines(line + "\n" for line in lines)
    if not cut:
        return None
    return layout.note(layout.Fitted(cut=["commit subjects"]))


def incident_json(incident: Incident, link: tuple[str, bool] | None, out: IO[str]) -> None:
    """``dora incident show --format json``: the event's fields, the deployment it is
    linked to (None: none) and whether it names it, and the command that records it
    again."""
    from dora.render import event_json

    data = event_json(incident)
    data["linked_deployment"] = link[0] if link else None
    data["names_its_deployment"] = bool(link and link[1])
    data["record_command"] = rerecord.command(incident)
    json.dump(data, out, indent=2)
    out.write("\n")


def incident_text(
    incident: Incident, link: tuple[str, bool] | None, out: IO[str], width: int | None = 80
) -> None:
    """``dora incident show``: the fields, the deployment the incident is linked to (the
    one it names, else the latest before it), and the command that records it again; in
    ``width`` columns (None: no limit)."""
    git = incident.git
    lines: list[str] = []

    def field(label: str, value: str) -> None:
        lead = f"{label + ':':<12}"
        lines.extend(layout.wrap(visible(value) or "-", width, lead, " " * len(lead)))

    lasted = timeparse.format_duration(
        (incident.finished_at or timeparse.now()) - incident.started_at
    )
    field("incident", incident.id)
    field("name", incident.name or "")
    field("severity", incident.severity or "")
    field("services", ", ".join(incident.services))
    field("team", incident.team or "")
    field("env", incident.env or "")
    field("version", incident.version or "")
    field("started", _moment(incident.started_at))
    if incident.finished_at is None:
        field("finished", f"still open ({lasted} so far)")
    else:
        field("finished", f"{_moment(incident.finished_at)} ({lasted})")
    unrecorded = incident.deployment_id is not None and link is None
    if unrecorded:
        field("deployment", f"{incident.deployment_id} (named, not recorded here)")
    elif link is None:
        field("deployment", "none linked")
    else:
        field("deployment", f"{link[0]} ({'named' if link[1] else 'the latest before it'})")
    field("commit", (git.commit_sha or "") if git else "")
    field("repository", (git.repository_url or "") if git else "")
    if incident.custom_tags:
        field("tags", ", ".join(incident.custom_tags))
    lines += ["", "To correct it, change a field in this command and run it:"]
    lines += rerecord.lines(incident, width)
    if unrecorded:
        lines += layout.wrap(
            "(--deployment names a deployment not recorded here: record or fetch it first, "
            "or the command refuses it)",
            width,
        )
    out.writelines(line + "\n" for line in lines)
