"""Mermaid ``xychart-beta`` charts of a report's trend, for the Markdown summary.

GitHub renders a ```` ```mermaid ```` block in job summaries, issues and pull requests. Each
chart is one metric over the trend's buckets, one line per group. The grammar has no way to
leave a gap and (before Mermaid 11.x's ``showLegend``) no legend, so:

* a bucket without a value (a median or rate of nothing) is drawn at 0, and the note above
  the charts says so (the tables show ``n/a``);
* the lines take fixed colours, set by an ``init`` directive, and the note names each
  group's colour; at most ``MAX_SERIES`` groups are drawn, those with the most deployments,
  and the note counts the others.

Names reach a chart only inside a ``"..."`` string, which Mermaid's lexer ends at the next
``"`` with no escape, and Mermaid reads ``%%{...}%%`` anywhere in the text as a directive
and ``#name;`` as an entity: every character but letters, digits, spaces and ``.-_/:+()`` is
written as ``?``. No line of a block starts with a backtick, so none can close the fence.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from dora.metrics import Figures, Key, Report
from dora.text import visible

#: The most groups a chart draws: more lines than this cannot be told apart by colour.
MAX_SERIES = 4

#: (colour, its name in the note): readable on GitHub's light and dark themes alike.
COLOURS = (("#0969da", "blue"), ("#d1242f", "red"), ("#1a7f37", "green"), ("#8250df", "purple"))

_INIT = (
    '%%{init: {"xyChart": {"height": 320}, "themeVariables": {"xyChart": '
    f'{{"plotColorPalette": "{", ".join(colour for colour, _ in COLOURS)}"}}}}}}}}%%'
)

_SAFE = frozenset(" .-_/:+()")
_LONGEST = 40

_DAY, _HOUR = 86400.0, 3600.0


@dataclass(frozen=True)
class Metric:
    title: str  # "Median lead time": the chart's title starts with it
    axis: str  # the y-axis title without its unit: "median lead time"
    value: Callable[[Figures], float | None]
    kind: str  # "count", "rate" (a share, drawn in %) or "seconds"


METRICS = (
    Metric("Deployments", "deployments", lambda f: f.deployments, "count"),
    Metric("Median lead time", "median lead time", lambda f: f.median_lead_time_seconds, "seconds"),
    Metric("Change failure rate", "change failure rate", lambda f: f.change_failure_rate, "rate"),
    Metric(
        "Median failed deployment recovery time",
        "median recovery time",
        lambda f: f.median_recovery_time_seconds,
        "seconds",
    ),
    Metric(
        "Deployment rework rate",
        "deployment rework rate",
        lambda f: f.deployment_rework_rate,
        "rate",
    ),
    Metric(
        "Median time to restore",
        "median time to restore",
        lambda f: f.median_time_to_restore_seconds,
        "seconds",
    ),
)


@dataclass(frozen=True)
class Series:
    key: Key
    figures: list[Figures]  # one per bucket, oldest first


@dataclass(frozen=True)
class Charts:
    """What the Markdown shows: the groups drawn, how many were left out, the blocks."""

    drawn: list[Key]
    left_out: int
    blocks: list[str]  # each the text inside a ```mermaid fence, ending with a newline
    empty: list[str]  # titles of metrics without a value in any bucket: no chart


def charts(report: Report, labels: Sequence[str], interval: str) -> Charts:
    """The charts of ``report.trend``: ``labels`` are the buckets' x-axis labels."""
    by_key: dict[Key, list[Figures]] = {}
    for row in report.trend:
        by_key.setdefault(row.key, []).append(row.figures)
    order = {row.key: n for n, row in enumerate(report.groups)}
    totals = {row.key: row.figures for row in report.groups}

    def weight(key: Key) -> tuple[int, int, int]:
        figures = totals[key]
        return (-figures.deployments, -figures.failures, order[key])

    keys = [key for key in by_key if key in totals]
    drawn = sorted(sorted(keys, key=weight)[:MAX_SERIES], key=order.__getitem__)
    series = [Series(key, by_key[key]) for key in drawn]
    blocks, empty = [], []
    for metric in METRICS:
        block = chart(metric, series, labels, interval)
        if block is None:
            empty.append(metric.title)
        else:
            blocks.append(block)
    return Charts(drawn, len(keys) - len(drawn), blocks, empty)


def chart(
    metric: Metric, series: Sequence[Series], labels: Sequence[str], interval: str
) -> str | None:
    """One ``xychart-beta`` block, or None when no bucket of any series has a value."""
    raw = [[metric.value(figures) for figures in s.figures] for s in series]
    known = [value for values in raw for value in values if value is not None]
    if not known:
        return None
    unit, scale = _unit(metric.kind, max(known), interval)
    top = _nice(max(known) / scale)
    lines = [
        _INIT,
        "xychart-beta",
        f'  title "{metric.title} by {interval}"',
        f'  x-axis "{_x_title(interval)}" [{", ".join(_quoted(label) for label in labels)}]',
        f'  y-axis "{metric.axis} ({unit})" 0 --> {_number(top)}',
    ]
    for s, values in zip(series, raw, strict=True):
        points = ", ".join(_number(0 if v is None else v / scale) for v in values)
        lines.append(f"  line {_quoted(series_name(s.key))} [{points}]")
    return "\n".join(lines) + "\n"


def series_name(key: Key) -> str:
    """A group's name as the tables show it: ``api, prod``; ``all events`` for ``--by none``."""
    return ", ".join("(none)" if v is None else visible(v) for v in key) or "all events"


def _x_title(interval: str) -> str:
    return {"day": "day (UTC)", "week": "week from (UTC)", "month": "month (UTC)"}[interval]


def _unit(kind: str, peak: float, interval: str) -> tuple[str, float]:
    """The unit a chart's values are drawn in, and the number of base units in it."""
    if kind == "rate":
        return "%", 0.01
    if kind == "count":
        return f"per {interval}", 1.0
    if peak >= 2 * _DAY:
        return "days", _DAY
    if peak >= 2 * _HOUR:
        return "hours", _HOUR
    return "minutes", 60.0


def _nice(peak: float) -> float:
    """The axis top: the least of 1, 2, 2.5 and 5 times a power of ten not under ``peak``."""
    if peak <= 0:
        return 1.0
    power = 10.0 ** math.floor(math.log10(peak))
    return next(step * power for step in (1, 2, 2.5, 5, 10) if step * power >= peak * (1 - 1e-9))


def _number(value: float) -> str:
    """``12``, ``0.5``, ``1.25``: two decimals at most, never an exponent."""
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def _quoted(text: str) -> str:
    """``text`` as a Mermaid string that cannot end early or hold a directive or entity."""
    text = "".join(c if c.isalnum() or c in _SAFE else "?" for c in text)
    if len(text) > _LONGEST:
        text = text[: _LONGEST - 1] + "…"
    return f'"{text}"'
