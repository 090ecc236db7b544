"""The report as one HTML page: everything inline (styles and SVG charts; no script, no
font, no address to fetch), so that it reads the same from disk, in a mail attachment or
as a CI artifact, with no network.

Every text from the store is escaped; levels are words as well as colours; tables have
real headers; the charts carry their own titles and descriptions.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from dora import __version__, render
from dora.metrics import Figures, Report

#: How many groups a chart draws, those with the most deployments (then incidents).
MOST_GROUPS = 6
#: How many events of each kind (deployments, incidents, failed deployments, ...) a
#: group's folded list shows, how many lines in all, and all the groups' lists together
#: (about 100 bytes a line: the page stays small enough to mail). Only those are read
#: into memory; the others are counted.
EACH_KIND = 12
MOST_EVENTS = 100
MOST_EVENT_LINES = 2000

_STYLE = """
:root { color-scheme: light; --ink: #1f2328; --muted: #57606a; --line: #d0d7de; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
  color: var(--ink); background: #fff; }
main { max-width: 1100px; margin: 0 auto; padding: 24px 20px 48px; }
h1 { font-size: 26px; margin: 0 0 4px; }
h2 { font-size: 20px; margin: 36px 0 12px; border-bottom: 1px solid var(--line);
  padding-bottom: 4px; }
h3 { font-size: 15px; margin: 0; }
.meta { color: var(--muted); margin: 2px 0; }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(230px, 1fr));
  gap: 12px; }
.card { border: 1px solid var(--line); border-radius: 8px; padding: 12px 14px; }
.value { font-size: 24px; font-weight: 600; margin: 4px 0 2px; }
.change { color: var(--muted); font-size: 13px; margin: 0; }
.level { display: inline-block; font-size: 12px; font-weight: 600; border-radius: 10px;
  padding: 1px 8px; border: 1px solid currentColor; }
.elite { color: #116329; background: #dafbe1; }
.high { color: #0a3069; background: #ddf4ff; }
.medium { color: #7d4e00; background: #fff8c5; }
.low { color: #82071e; background: #ffebe9; }
.charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(460px, 1fr));
  gap: 8px 24px; }
figure { margin: 0 0 16px; }
figcaption { color: var(--muted); font-size: 13px; }
table { border-collapse: collapse; width: 100%; font-size: 13px; }
th, td { padding: 4px 8px; border-bottom: 1px solid var(--line); text-align: right;
  white-space: nowrap; }
th[scope="row"], thead th:first-child, td.key { text-align: left; }
thead th { position: sticky; top: 0; background: #f6f8fa; }
tbody tr.total th, tbody tr.total td { font-weight: 700; border-top: 2px solid var(--ink); }
.scroll { overflow-x: auto; }
details { border: 1px solid var(--line); border-radius: 6px; padding: 6px 10px;
  margin: 6px 0; }
summary { cursor: pointer; font-weight: 600; }
details ul { margin: 6px 0; padding-left: 20px; font: 12px/1.5 ui-monospace, monospace; }
footer { margin-top: 40px; color: var(--muted); font-size: 13px; }
"""

#: Level words, with a mark that tells them apart without colour.
_MARKS = {"elite": "★★★", "high": "★★", "medium": "★", "low": "–"}


@dataclass(frozen=True)
class Headline:
    name: str
    value: str
    level: str | None
    change: str


def _level(level: str | None) -> str:
    if level is None:
        return ""
    return f'<span class="level {level}">{_MARKS[level]} {level}</span>'


def _change(now: float | None, before: float | None, *, rate: bool, days: str) -> str:
    """How a figure moved since the window before: in percentage points for a rate, in
    per cent for the others."""
    if now is None or before is None:
        return f"no figure for the {days} before" if before is None else "n/a now"
    if rate:
        points = (now - before) * 100
        if abs(points) < 0.05:
            return f"unchanged from the {days} before"
        word = "up" if points > 0 else "down"
        return f"{word} {abs(points):.1f} points from the {days} before ({before:.1%})"
    if before == 0:
        return f"from none in the {days} before" if now else f"none in the {days} before either"
    change = (now - before) / before * 100
    if abs(change) < 0.5:
        return f"unchanged from the {days} before"
    return f"{'up' if change > 0 else 'down'} {abs(change):.0f} % from the {days} before"


def headlines(total: Figures, before: Figures, days: str) -> list[Headline]:
    """A headline per metric, for the whole selection."""
    levels = total.levels()
    seconds, rate = render._seconds, render._rate
    pairs: list[tuple[str, str, str | None, float | None, float | None, bool, str]] = [
        ("Deployment frequency", f"{render._per_day(total.deployment_frequency_per_day)} a day",
         levels["deployment_frequency"], total.deployment_frequency_per_day,
         before.deployment_frequency_per_day, False, ""),
        ("Lead time for changes", seconds(total.median_lead_time_seconds), levels["lead_time"],
         total.median_lead_time_seconds, before.median_lead_time_seconds, False, "median"),
        ("Change failure rate", rate(total.change_failure_rate), levels["change_failure_rate"],
         total.change_failure_rate, before.change_failure_rate, True,
         f"{total.failed_deployments:,} of {total.deployments:,} deployments"),
        ("Failed deployment recovery time", seconds(total.median_recovery_time_seconds),
         levels["recovery_time"], total.median_recovery_time_seconds,
         before.median_recovery_time_seconds, False,
         f"median of {total.recovered_failed_deployments:,}"),
        ("Deployment rework rate", rate(total.deployment_rework_rate), None,
         total.deployment_rework_rate, before.deployment_rework_rate, True,
         f"{total.rework_deployments:,} of {total.deployments:,} deployments"),
        ("Time to restore service", seconds(total.median_time_to_restore_seconds),
         levels["time_to_restore"], total.median_time_to_restore_seconds,
         before.median_time_to_restore_seconds, False,
         f"median of {total.resolved_failures:,} incidents"),
    ]  # fmt: skip
    found = []
    for name, value, level, now, then, is_rate, note in pairs:
        change = _change(now, then, rate=is_rate, days=days)
        found.append(Headline(name, value, level, f"{note}; {change}" if note else change))
    return found


def page(
    report: Report,
    *,
    headlines: Sequence[Headline],
    trends: Sequence[tuple[str, str]],
    trend_note: str,
    distributions: Sequence[tuple[str, str]],
    made_at: datetime,
) -> str:
    """The whole page. ``trends`` and ``distributions`` are (SVG, caption) pairs."""
    e = html.escape
    window = render._window(report)
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>DORA metrics, {e(window)}</title>",
        f"<style>{_STYLE}</style></head><body><main>",
        "<header><h1>DORA metrics</h1>",
        f'<p class="meta">{e(window)}</p>',
        f'<p class="meta">Levels after the {e(report.edition)}; incidents linked to '
        f"deployments {e(_link_window(report))}. Made by dora {e(__version__)} on "
        f"{made_at.strftime('%Y-%m-%d %H:%M')} UTC.</p></header>",
        '<section aria-labelledby="headlines"><h2 id="headlines">Headlines</h2>',
        '<div class="cards">',
    ]
    for one in headlines:
        parts.append(
            f'<article class="card"><h3>{e(one.name)}</h3>'
            f'<p class="value">{e(one.value)}</p>{_level(one.level)}'
            f'<p class="change">{e(one.change)}</p></article>'
        )
    parts.append("</div></section>")
    if trends:
        parts.append(
            f'<section aria-labelledby="trends"><h2 id="trends">By {e(report.interval or "")}'
            f'</h2><p class="meta">{e(trend_note)}</p>'
        )
        parts += ['<div class="charts">', *(_figure(svg, c) for svg, c in trends), "</div>"]
        parts.append("</section>")
    parts.append('<section aria-labelledby="spread"><h2 id="spread">How long things took</h2>')
    parts += ['<div class="charts">', *(_figure(svg, c) for svg, c in distributions), "</div>"]
    parts.append("</section>")
    parts += _table(report)
    parts += _events(report)
    parts.append(
        f"<footer><p>{e(render._LEGEND)} Levels ({e(report.edition)}) are judged on "
        "medians; each is written out beside its colour. The README defines every figure."
        "</p></footer></main></body></html>"
    )
    return "\n".join(parts) + "\n"


def _link_window(report: Report) -> str:
    if report.link_window is None:
        return "however long before them"
    return f"at most {render._seconds(report.link_window.total_seconds())} before them"


def _figure(svg: str, caption: str) -> str:
    return f"<figure>{svg}<figcaption>{html.escape(caption)}</figcaption></figure>"


def _table(report: Report) -> list[str]:
    e = html.escape
    rows = report.groups if report.group_by else []
    names = list(report.group_by) or ["scope"]
    headings = [heading for heading, _, _ in render._cells(report.total)]
    parts = [
        '<section aria-labelledby="groups">',
        f'<h2 id="groups">{e("By " + ", ".join(report.group_by) if report.group_by else "In all")}'
        "</h2>",
        '<div class="scroll"><table><thead><tr>',
        *(f'<th scope="col">{e(name)}</th>' for name in [*names, *headings]),
        "</tr></thead><tbody>",
    ]

    def cells(figures: Figures) -> str:
        return "".join(
            f"<td>{e(text)}{' ' + _level(level) if level else ''}</td>"
            for _, text, level in render._cells(figures)
        )

    for row in rows:
        keys = [render._key_text(k) for k in row.key]
        parts.append(
            f'<tr><th scope="row">{e(keys[0])}</th>'
            + "".join(f'<td class="key">{e(k)}</td>' for k in keys[1:])
            + cells(row.figures)
            + "</tr>"
        )
    blank = '<td class="key"></td>' * (len(names) - 1)
    parts.append(f'<tr class="total"><th scope="row">total</th>{blank}{cells(report.total)}</tr>')
    parts.append(f"</tbody></table></div><p class=\"meta\">{e(render._open_summary(report.total))}"
                 "</p></section>")  # fmt: skip
    return parts


def _events(report: Report) -> list[str]:
    explained = [row for row in report.groups if row.evidence is not None]
    if not explained:
        return []
    e = html.escape
    parts = ['<section aria-labelledby="events"><h2 id="events">The events behind the numbers</h2>']
    room = MOST_EVENT_LINES
    for n, row in enumerate(explained):
        assert row.evidence is not None  # noqa: S101 - filtered above
        if room <= 0:
            left = len(explained) - n
            parts.append(
                f'<p class="meta">The events of {left} more group{"s" if left != 1 else ""} '
                "are left out to keep the page small; dora metrics --explain lists them.</p>"
            )
            break
        name = ", ".join(render._key_text(k) for k in row.key) or "all events"
        lines = render._evidence_lines(row.evidence)
        shown = lines[: min(MOST_EVENTS, room)]
        room -= len(shown)
        count = len(lines) + row.evidence.more
        parts.append(
            f"<details><summary>{e(name)}: {count:,} event{'s' if count != 1 else ''}</summary><ul>"
        )
        parts += [f"<li>{e(line)}</li>" for line in shown]
        parts.append("</ul>")
        if count > len(shown):
            parts.append(
                f'<p class="meta">{len(shown):,} of {count:,} shown, the first '
                f"{EACH_KIND} of each kind at most; dora metrics --explain --format json "
                "lists them all.</p>"
            )
        parts.append("</details>")
    parts.append("</section>")
    return parts


def chosen(report: Report) -> tuple[list[tuple[str | None, ...]], str]:
    """The groups the charts draw (those with the most deployments, then incidents; at
    most ``MOST_GROUPS``), and a sentence saying which."""
    rows = sorted(report.groups, key=lambda row: (-row.figures.deployments, -row.figures.failures))
    keys = [row.key for row in rows[:MOST_GROUPS]]
    if not report.group_by:
        return keys, "All the selected events, one line."
    kind = ", ".join(report.group_by)
    if len(rows) <= MOST_GROUPS:
        return keys, f"One line per {kind}."
    return keys, (
        f"The {MOST_GROUPS} of {len(rows)} groups by {kind} with the most deployments, one "
        "line each; the table below has every group."
    )


def key_name(key: Iterable[str | None]) -> str:
    return ", ".join(render._key_text(k) for k in key) or "all"
