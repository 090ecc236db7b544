"""Turning results into output: rich tables for people, JSON for scripts."""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import IO, TYPE_CHECKING, Any

from dora import layout, timeparse
from dora.levels import LEVELS
from dora.metrics import FIGURES, Evidence, Failure, Figures, Report, Row
from dora.text import visible
from dora.verdicts import Outcome

if TYPE_CHECKING:
    from dora.checks import Review
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


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def settings_table(reviews: Sequence[Review], out: IO[str], width: int = 80) -> None:
    """``dora config``: a line per setting (name, value, where it came from), and under it
    what is wrong with it (``error: ...``) and worth knowing (``note: ...``). A value too
    long for its column goes on lines of its own under its name's line, cut anywhere (no
    character is lost) only if it is longer than a line; a control character is shown
    escaped (``\\n``). Plain text, so colour or none makes no difference."""
    import textwrap

    def shown(review: Review) -> str:
        return _CONTROL.sub(lambda c: repr(c.group())[1:-1], review.shown) or "-"

    name_width = max(len(r.name) for r in reviews)
    source_width = max(len(r.source) for r in reviews)
    indent = " " * (name_width + 2)
    room = width - len(indent) - 2 - source_width
    value_width = max(20, min(max(len(shown(r)) for r in reviews), room))
    for review in reviews:
        value = shown(review)
        if len(value) <= value_width:
            out.write(f"{review.name:<{name_width}}  {value:<{value_width}}  {review.source}\n")
        else:  # on lines of its own under the name's line, cut only if longer than a line
            out.write(f"{review.name:<{name_width}}  {'':<{value_width}}  {review.source}\n")
            room = max(20, width - len(indent))
            out.writelines(f"{indent}{value[i : i + room]}\n" for i in range(0, len(value), room))
        for label, texts in (("error", review.problems), ("note", review.notes)):
            for text in texts:
                lead = f"{indent}{label}: "
                out.write(
                    textwrap.fill(
                        _CONTROL.sub(" ", text),
                        max(width, len(lead) + 20),
                        initial_indent=lead,
                        subsequent_indent=" " * len(lead),
                        break_on_hyphens=False,
                    )
                    + "\n"
                )


def incidents_json(incidents: Sequence[Incident], out: IO[str]) -> None:
    json.dump([event_json(i) for i in incidents], out, indent=2)
    out.write("\n")


#: The incident list's columns; ID and NAME (what one searches to find an id) are
#: essential, the others are left out in this order when the terminal is narrow.
_INCIDENT_COLUMNS = (
    layout.Column("ID"),
    layout.Column("STARTED (UTC)"),
    layout.Column("STATE"),
    layout.Column("AFFECTS", cut_to=12),
    layout.Column("ENV", cut_to=8),
    layout.Column("NAME", cut_to=20),
)
_INCIDENT_DROPS = ("ENV", "AFFECTS", "STARTED (UTC)", "STATE")


def incidents_table(
    incidents: Sequence[Incident], out: IO[str], width: int | None = None
) -> str | None:
    """A line per incident in ``width`` columns (None: no limit); return the line that says
    what was left out or cut to fit, if anything was."""
    from rich.text import Text

    rows: list[list[Text | str]] = []
    for incident in incidents:
        if incident.is_open:
            state = Text.assemble(("open", "bold red"), f" {duration(incident)}")
        else:
            state = Text.assemble(("took", "green"), f" {duration(incident)}")
        rows.append(
            [
                incident.id,
                incident.started_at.strftime("%Y-%m-%d %H:%M"),
                state,
                visible(affects(incident)),
                visible(incident.env or ""),
                visible(" · ".join(t for t in (incident.severity, incident.name) if t)),
            ]
        )
    fitted = layout.fit_table(_INCIDENT_COLUMNS, rows, width, _INCIDENT_DROPS)
    layout.write(fitted.lines, out)
    return layout.note(fitted)


# --- dora metrics ------------------------------------------------------------------------------

#: How each performance level is coloured in tables.
LEVEL_STYLES = {"elite": "bold green", "high": "green", "medium": "yellow", "low": "red"}
_BARS = "▁▂▃▄▅▆▇█"


def _seconds(value: float | None) -> str:
    if value is None:
        return "n/a"
    return timeparse.format_duration(timedelta(seconds=value))


def _rate(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def _per_day(value: float) -> str:
    if value >= 10:
        return f"{value:.0f}"
    if value >= 1:
        return f"{value:.1f}"
    return f"{value:.2f}" if value >= 0.01 or not value else f"{value:.1g}"


def _open(figures: Figures) -> str:
    if not figures.open_failures:
        return "0"
    return f"{figures.open_failures} ({_seconds(figures.oldest_open_failure_age_seconds)})"


def _key_text(value: str | None) -> str:
    return "(none)" if value is None else visible(value)


def _when(moment: datetime) -> str:
    if moment == moment.replace(hour=0, minute=0, second=0, microsecond=0):
        return moment.strftime("%Y-%m-%d")
    return moment.strftime("%Y-%m-%d %H:%M" if not moment.second else "%Y-%m-%d %H:%M:%S")


def _bucket(moment: datetime, interval: str | None) -> str:
    """A trend row's label: ``2026-11`` for a whole month, else its first moment."""
    if interval == "month" and moment == moment.replace(
        day=1, hour=0, minute=0, second=0, microsecond=0
    ):
        return moment.strftime("%Y-%m")
    return _when(moment)


def _window(report: Report) -> str:
    """``2026-11-01 → 2026-11-08 UTC (7 days), by service, env prod``."""
    text = f"{_when(report.since)} → {_when(report.until)} UTC ({_days_text(report.days)})"
    text += ", " + ("by " + ", ".join(report.group_by) if report.group_by else "all events")
    for name, values in report.filters.as_dict().items():
        if values:
            text += f", {name} {' or '.join(map(visible, values))}"
    return text


def _days_text(days: float) -> str:
    if days >= 1 and days == int(days):
        return f"{int(days)} day{'s' if days != 1 else ''}"
    return timeparse.format_duration(timedelta(days=days))


def _open_summary(total: Figures) -> str:
    if not total.open_failures:
        return "No incidents open at the end of the window."
    oldest = _seconds(total.oldest_open_failure_age_seconds)
    if total.open_failures == 1:
        return f"1 incident open at the end of the window, for {oldest}."
    return (
        f"{total.open_failures} incidents open at the end of the window; the oldest for {oldest}."
    )


# The cells of a row, shared by the table and Markdown: (heading, text, level or None).
def _cells(figures: Figures) -> list[tuple[str, str, str | None]]:
    levels = figures.levels()
    return [
        ("deploys", str(figures.deployments), None),
        ("per day", _per_day(figures.deployment_frequency_per_day), levels["deployment_frequency"]),
        ("lead time", _seconds(figures.median_lead_time_seconds), levels["lead_time"]),
        ("failed", str(figures.failed_deployments), None),
        ("CFR", _rate(figures.change_failure_rate), levels["change_failure_rate"]),
        ("recovery", _seconds(figures.median_recovery_time_seconds), levels["recovery_time"]),
        ("rework", _rate(figures.deployment_rework_rate), None),
        ("incidents", str(figures.failures), None),
        ("restored", str(figures.resolved_failures), None),
        ("MTTR", _seconds(figures.mttr_seconds), None),
        ("TTR median", _seconds(figures.median_time_to_restore_seconds), levels["time_to_restore"]),
        ("TTR p90", _seconds(figures.p90_time_to_restore_seconds), None),
        ("open (oldest)", _open(figures), None),
    ]


#: What the short headings stand for.
_LEGEND = (
    "Failed: failed deployments; CFR: their share of deployments; recovery: their median "
    "recovery time; rework: the share of deployments that remediated one. TTR: time to "
    "restore from incidents; MTTR: its mean."
)

#: Columns a narrow terminal drops first, in this order (they have their summary elsewhere
#: or in --format json); the group keys, deploys and per day are essential.
_DROPPABLE = (
    "TTR p90", "MTTR", "restored", "incidents", "TTR median", "rework", "lead time",
    "open (oldest)", "recovery", "failed", "CFR",
)  # fmt: skip


def metrics_json(report: Report, out: IO[str]) -> None:
    """The documented JSON contract: see the README's "dora metrics" section."""
    out.write(json.dumps(_report_data(report), indent=2))  # one write: a trend is large
    out.write("\n")


def _report_data(report: Report) -> dict[str, Any]:
    def group(key: tuple[str | None, ...], figures: Figures) -> dict[str, Any]:
        return {
            **dict(zip(report.group_by, key, strict=True)),
            **figures.as_dict(),
            "levels": figures.levels(),
        }

    data: dict[str, Any] = {
        "since": timeparse.format_iso(report.since),
        "until": timeparse.format_iso(report.until),
        "group_by": list(report.group_by),
        "filters": report.filters.as_dict(),
        "levels_from": report.edition,
        "benchmarks": report.benchmarks,
        "link_window_seconds": (
            report.link_window.total_seconds() if report.link_window is not None else None
        ),
        "groups": [],
        "total": {**report.total.as_dict(), "levels": report.total.levels()},
    }
    for row in report.groups:
        entry = group(row.key, row.figures)
        if row.evidence is not None:
            entry["explain"] = _evidence_data(row.evidence)
        data["groups"].append(entry)
    if report.interval:
        data["interval"] = report.interval
        data["trend"] = [
            {
                "start": timeparse.format_iso(row.start),
                "end": timeparse.format_iso(row.end),
                **group(row.key, row.figures),
            }
            for row in report.trend
        ]
    return data


def _evidence_data(evidence: Evidence) -> dict[str, list[dict[str, Any]]]:
    def failure(item: Failure) -> dict[str, Any]:
        finished = timeparse.format_iso(item.finished_at) if item.finished_at else None
        return {
            "id": item.id,
            "started_at": timeparse.format_iso(item.started_at),
            "finished_at": finished,
        }

    return {
        "deployments": [
            {
                "id": item.id,
                "finished_at": timeparse.format_iso(item.finished_at),
                "commits": item.commits,
                "shortest_lead_time_seconds": item.shortest_lead_seconds,
                "longest_lead_time_seconds": item.longest_lead_seconds,
            }
            for item in evidence.deployments
        ],
        "failures": [failure(item) for item in evidence.failures],
        "resolved": [failure(item) for item in evidence.resolved],
        "open": [failure(item) for item in evidence.open],
        "failed_deployments": [_outcome_data(item) for item in evidence.failed],
        "recovered_deployments": [_outcome_data(item) for item in evidence.recovered],
        "unrecovered_deployments": [_outcome_data(item) for item in evidence.unrecovered],
        "rework_deployments": [
            {
                "id": placed.id,
                "finished_at": timeparse.format_iso(timeparse.from_ns(placed.finished_at)),
                "remediates": remediates,
            }
            for placed, remediates in evidence.rework
        ],
    }


def _outcome_data(outcome: Outcome) -> dict[str, Any]:
    """A failed deployment in JSON: why it failed, what remediated it, its recovery."""
    recovered = outcome.recovered_at
    recovery = outcome.recovery_ns
    return {
        "id": outcome.deployment.id,
        "finished_at": timeparse.format_iso(timeparse.from_ns(outcome.deployment.finished_at)),
        "reasons": [
            {
                "rule": reason.rule,
                "remediated_by": reason.remediated_by,
                "remediation_type": reason.remediation_type,
                "detail": reason.detail,
            }
            for reason in outcome.verdict.reasons
        ],
        "incidents": [incident.id for incident in outcome.incidents],
        "recovered_at": (
            timeparse.format_iso(timeparse.from_ns(recovered)) if recovered is not None else None
        ),
        "recovery_time_seconds": recovery / 1e9 if recovery is not None else None,
    }


def metrics_csv(report: Report, out: IO[str]) -> None:
    """One row per group (``row`` = group), the total (total) and each trend bucket and
    group (trend); empty cells where there is no data. Figures at full precision."""
    import csv

    level_names = list(report.total.levels())
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(
        ["row", "start", "end", *report.group_by, *FIGURES, *(f"{n}_level" for n in level_names)]
    )

    def line(
        kind: str, start: datetime, end: datetime, key: Sequence[str | None], figures: Figures
    ) -> None:
        values = [*key, *figures.as_dict().values(), *figures.levels().values()]
        writer.writerow(
            [
                kind,
                timeparse.format_iso(start),
                timeparse.format_iso(end),
                *(_csv_cell(value) for value in values),
            ]
        )

    for row in _group_rows(report):
        line("group", report.since, report.until, row.key, row.figures)
    line("total", report.since, report.until, [None] * len(report.group_by), report.total)
    for trend in report.trend:
        line("trend", trend.start, trend.end, trend.key, trend.figures)


def _csv_cell(value: object) -> object:
    """A CSV cell: floats at full precision, nothing for no data, and text that a spreadsheet
    would run as a formula (``=``, ``+``, ``-``, ``@`` first) made plain text with ``'``."""
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        value = visible(value)
        if value[:1] in ("=", "+", "-", "@", "\t", "\r"):
            return "'" + value
    return value


def metrics_markdown(report: Report, out: IO[str], *, charts: bool = True) -> None:
    """GitHub-flavoured Markdown, for ``$GITHUB_STEP_SUMMARY`` and pull requests; with a
    trend, a Mermaid chart of each metric after its table unless ``charts`` is false."""
    headings = [name for name, _, _ in _cells(report.total)]
    out.write(f"### DORA metrics, {_md(_window(report))}\n\n")
    out.write("| " + " | ".join([*(report.group_by or ["scope"]), *headings]) + " |\n")
    out.write("|" + "---|" * max(1, len(report.group_by)) + "---:|" * len(headings) + "\n")

    def cells(figures: Figures) -> list[str]:
        return [_md(text) + (f" _{level}_" if level else "") for _, text, level in _cells(figures)]

    for row in _group_rows(report):
        out.write(
            "| " + " | ".join([*(_md(_key_text(k)) for k in row.key), *cells(row.figures)]) + " |\n"
        )
    width = max(1, len(report.group_by))
    total = ["**total**", *[""] * (width - 1), *(f"**{c}**" for c in cells(report.total))]
    out.write("| " + " | ".join(total) + " |\n\n")
    out.write(
        f"{_open_summary(report.total)} {_LEGEND} "
        f"Levels ({report.edition}, from medians) in italics.\n"
    )
    if report.trend:
        out.write(f"\n#### By {report.interval}\n\n")
        names = [report.interval or "", *report.group_by, *headings]
        out.write("| " + " | ".join(names) + " |\n")
        out.write("|---|" + "---|" * len(report.group_by) + "---:|" * len(headings) + "\n")
        for trend in report.trend:
            key = [_md(_key_text(k)) for k in trend.key]
            out.write(
                "| "
                + " | ".join([_bucket(trend.start, report.interval), *key, *cells(trend.figures)])
                + " |\n"
            )
        if charts:
            _markdown_charts(report, out)
    evidence = [row for row in report.groups if row.evidence is not None]
    if evidence:
        out.write("\n")
    for row in evidence:
        assert row.evidence is not None  # noqa: S101 - filtered above
        name = ", ".join(_key_text(k) for k in row.key) or "all events"
        summary = html.escape(f"{name}: the events behind the numbers")
        out.write(f"<details><summary>{summary}</summary>\n\n")
        for line in _evidence_lines(row.evidence):
            out.write(f"- {_md(line)}\n")
        out.write("\n</details>\n")


def _markdown_charts(report: Report, out: IO[str]) -> None:
    """The trend as Mermaid charts, with a note saying how to read them."""
    from dora import mermaid

    interval = report.interval or "day"
    labels = list(dict.fromkeys(_bucket(row.start, interval) for row in report.trend))
    drawn = mermaid.charts(report, labels, interval)
    out.write(f"\n#### Charts by {interval}\n\n")
    names = [_md(mermaid.series_name(key)) for key in drawn.drawn]
    if len(names) > 1:
        colours = [
            f"{name} {colour}"
            for name, (_, colour) in zip(names, mermaid.COLOURS[: len(names)], strict=True)
        ]
        note = f"One line per group: {', '.join(colours)}."
    else:
        note = f"One line: {names[0]}." if names else ""
    if drawn.left_out:
        many = "group" if drawn.left_out == 1 else "groups"
        note += (
            f" The {len(names)} groups with the most deployments are drawn; "
            f"{drawn.left_out} more {many} only in the tables."
        )
    note += f" A {interval} without a value (n/a in the table) is drawn at 0."
    if drawn.empty:
        note += f" No chart of {_and(m.lower() for m in drawn.empty)}: no values."
    out.write(note.strip() + "\n")
    for block in drawn.blocks:
        out.write(f"\n```mermaid\n{block}```\n")


def _and(items: Iterable[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    words = list(items)
    return ", ".join(words[:-1]) + " and " + words[-1] if len(words) > 1 else "".join(words)


def _group_rows(report: Report) -> list[Row]:
    """The rows above the total; with ``--by none`` the total is the only one."""
    return report.groups if report.group_by else []


#: What GitHub and Slack take for a mention: @user, @org/team, @here, @channel.
_MENTION = re.compile(r"(?<![\w`@])@[A-Za-z0-9](?:[\w.-]*\w)?(?:/[\w.-]*\w)?")


def _md(text: str) -> str:
    """Text that cannot break a Markdown table, start markup or an HTML entity, notify
    anyone (a mention becomes code: ``@here`` pings nobody), or hide characters."""
    parts, start = [], 0
    text = visible(text)
    for mention in _MENTION.finditer(text):
        parts += [_md_plain(text[start : mention.start()]), f"`{mention[0]}`"]
        start = mention.end()
    return "".join([*parts, _md_plain(text[start:])])


def _md_plain(text: str) -> str:
    text = text.replace("&", "&amp;")
    for char in "\\|*_`<>[]":
        text = text.replace(char, "\\" + char)
    return text


def _evidence_lines(evidence: Evidence) -> list[str]:
    lines = []
    for deployed in evidence.deployments:
        shortest, longest = deployed.shortest_lead_seconds, deployed.longest_lead_seconds
        if not deployed.commits:
            shipped = "no commits recorded"
        elif deployed.commits == 1:
            shipped = f"1 commit, lead time {_seconds(shortest)}"
        else:
            shipped = (
                f"{deployed.commits} commits, lead time {_seconds(shortest)} to {_seconds(longest)}"
            )
        lines.append(f"deployment {deployed.id} finished {_stamp(deployed.finished_at)}, {shipped}")
    for item in evidence.failures:
        state = f"resolved {_stamp(item.finished_at)}" if item.finished_at else "not resolved"
        lines.append(f"failure {item.id} started {_stamp(item.started_at)}, {state}")
    for item in evidence.resolved:
        assert item.finished_at is not None  # noqa: S101 - resolved
        took = _seconds((item.finished_at - item.started_at).total_seconds())
        span = f"{_stamp(item.started_at)} to {_stamp(item.finished_at)}"
        lines.append(f"restored {item.id} in {took} ({span})")
    lines += [f"open {item.id} since {_stamp(item.started_at)}" for item in evidence.open]
    for outcome in evidence.failed:
        finished = _stamp(timeparse.from_ns(outcome.deployment.finished_at))
        why = "; ".join(reason.detail for reason in outcome.verdict.reasons)
        lines.append(f"failed {outcome.deployment.id} finished {finished}: {why}")
    for outcome in evidence.recovered:
        assert outcome.recovered_at is not None  # noqa: S101 - recovered
        took = _seconds((outcome.recovery_ns or 0) / 1e9)
        end = _stamp(timeparse.from_ns(outcome.recovered_at))
        lines.append(f"recovered {outcome.deployment.id} in {took} (at {end})")
    for outcome in evidence.unrecovered:
        finished = _stamp(timeparse.from_ns(outcome.deployment.finished_at))
        lines.append(f"not recovered {outcome.deployment.id}, failed at {finished}")
    for placed, remediates in evidence.rework:
        finished = _stamp(timeparse.from_ns(placed.finished_at))
        lines.append(f"rework {placed.id} finished {finished}, remediates {', '.join(remediates)}")
    return lines


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S")


#: The letter beside each figure that has a level, so that levels show without colour.
LEVEL_MARKS = {"elite": "E", "high": "H", "medium": "M", "low": "L"}


def metrics_table(
    report: Report, out: IO[str], *, color: bool | None = None, width: int | None = None
) -> list[str]:
    """The terminal report in ``width`` columns (None: no limit): a two-line title (the
    window; the grouping and filters), a table with each level marked by a letter and its
    colour, the total, open incidents, the trend with bars, and the events behind each
    group when explained. Return the lines that say what was left out or cut to fit."""
    from rich.text import Text

    rows = _group_rows(report)
    names = [name.upper() for name in report.group_by] or ["SCOPE"]
    figures = [row.figures for row in rows] + [report.total]
    cells = [_cells(f) for f in figures]
    headings = [heading.upper() for heading, _, _ in cells[-1]]
    marked = [any(row[n][2] for row in cells) for n in range(len(headings))]
    columns = [layout.Column(name, cut_to=12) for name in names]
    columns += [layout.Column(heading, right=True) for heading in headings]

    def figure(cell: tuple[str, str, str | None], marks: bool) -> Text:
        _, text, level = cell
        if marks:
            text += " " + LEVEL_MARKS[level] if level else "  "
        return Text(text, style=LEVEL_STYLES.get(level or "", ""))

    lines: list[Text | str] = []
    table_rows: list[list[Text | str]] = []
    for row, row_cells in zip(rows, cells, strict=False):
        key = [Text(_key_text(k), style="dim" if k is None else "") for k in row.key]
        table_rows.append([*key, *(figure(c, m) for c, m in zip(row_cells, marked, strict=True))])
    total: list[Text | str] = [Text("total", style="bold"), *[""] * (len(names) - 1)]
    table_rows.append([*total, *(figure(c, m) for c, m in zip(cells[-1], marked, strict=True))])
    fitted = layout.fit_table(columns, table_rows, width, [h.upper() for h in _DROPPABLE])
    period, scope = _title(report)
    lines += [Text(line, style="bold") for line in layout.wrap(period, width)]
    lines += layout.wrap(scope, width)
    lines += fitted.lines
    lines += layout.wrap(_open_summary(report.total), width)
    lines += layout.wrap(_LEGEND, width)
    marks = ", ".join(f"{LEVEL_MARKS[level]}{layout.GLUE}{level}" for level in LEVELS)
    legend = f"Levels: {marks} ({report.edition}, from medians)."
    for line in layout.wrap(legend, width):
        text = Text(line)
        for level in LEVELS:
            text.highlight_words([f"{LEVEL_MARKS[level]} {level}"], LEVEL_STYLES[level])
        lines.append(text)
    notes = [said] if (said := layout.note(fitted)) else []
    if report.trend:
        trend = _trend_table(report, width)
        lines += ["", *trend.lines]
        if said := layout.note(trend, "Trend"):
            notes.append(said)
    for row in report.groups:
        if row.evidence is None:
            continue
        name = ", ".join(_key_text(k) for k in row.key) or "all events"
        lines += [
            "",
            *(
                Text(line, style="bold")
                for line in layout.wrap(f"{name}: the events behind the numbers", width)
            ),
        ]
        for line in _evidence_lines(row.evidence) or ["no events"]:
            line = _STAMP.sub(rf"\1{layout.GLUE}\2", line)  # a date and its time together
            lines += layout.wrap(line, width, "  ", "    ")
    layout.write(lines, out, color)
    return notes


_STAMP = re.compile(r"(\d{4}-\d\d-\d\d) (\d\d:\d\d:\d\d)")


def _title(report: Report) -> tuple[str, str]:
    """The title's two lines: ``DORA metrics, 2026-11-01 → 2026-11-08 UTC (7 days)``, and
    ``Grouped by service and env; only team payments, env prod or staging.``"""
    period = f"DORA metrics, {_when(report.since)} → {_when(report.until)} UTC"
    period += f" ({_days_text(report.days)})"
    if report.group_by:
        scope = "Grouped by " + " and ".join(report.group_by)
    else:
        scope = "All events together"
    only = [
        f"{name} {' or '.join(map(visible, values))}"
        for name, values in report.filters.as_dict().items()
        if values
    ]
    if only:
        scope += "; only " + ", ".join(only)
    return period, scope + "."


#: The trend's figures; the bucket, the group keys and DEPLOYS are essential, the others
#: left out in the order of ``_TREND_DROPS`` when the terminal is narrow.
_TREND: tuple[tuple[str, Any, Any], ...] = (
    ("DEPLOYS", lambda f: f.deployments, str),
    ("LEAD TIME", lambda f: f.median_lead_time_seconds, _seconds),
    ("FAILED", lambda f: f.failed_deployments, str),
    ("CFR", lambda f: f.change_failure_rate, _rate),
    ("RECOVERY", lambda f: f.median_recovery_time_seconds, _seconds),
    ("MEDIAN RESTORE", lambda f: f.median_time_to_restore_seconds, _seconds),
    ("OPEN", lambda f: f.open_failures, str),
)
_TREND_DROPS = ("MEDIAN RESTORE", "RECOVERY", "OPEN", "FAILED", "LEAD TIME", "CFR")


def _trend_table(report: Report, width: int | None) -> layout.Fitted:
    from rich.text import Text

    columns = [layout.Column(str(report.interval).upper())]
    columns += [layout.Column(name.upper(), cut_to=12) for name in report.group_by]
    columns += [layout.Column(heading, right=True) for heading, _, _ in _TREND]
    peaks: dict[tuple[tuple[str | None, ...], str], float] = {}
    for trend in report.trend:
        for heading, value, _ in _TREND:
            peak = peaks.get((trend.key, heading), 0.0)
            peaks[trend.key, heading] = max(peak, value(trend.figures) or 0.0)
    previous = None
    rows: list[list[Text | str]] = []
    for trend in report.trend:
        cells = []
        for heading, value, text in _TREND:
            number = value(trend.figures)
            cells.append(Text(f"{text(number)} {_bar(number, peaks[trend.key, heading])}"))
        key = [_key_text(k) if trend.key != previous else "" for k in trend.key]
        rows.append([_bucket(trend.start, report.interval), *key, *cells])
        previous = trend.key
    fitted = layout.fit_table(columns, rows, width, _TREND_DROPS)
    title = Text(f"By {report.interval}", style="bold")
    fitted.lines.insert(0, title)
    return fitted


def _bar(value: float | None, peak: float) -> str:
    """One block character, as high as ``value`` is against the series' ``peak``; a blank
    for nothing, so that reading down a column shows the trend."""
    if not value or not peak:
        return " "
    return _BARS[min(len(_BARS) - 1, int(value / peak * (len(_BARS) - 1) + 0.5))]
