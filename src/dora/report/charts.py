"""The report's charts, drawn by matplotlib as SVG text to put inline in the page.

matplotlib is imported here alone, when a report is made (``dora report``; never on the
recording path), with its non-interactive SVG backend. Each SVG keeps its text as text
(searchable, small), has no date or random ids in it (the same report, the same bytes), and
carries a ``<title>`` and ``<desc>`` for screen readers.

Colours are the Okabe-Ito palette, told apart by readers with any common colour-vision
deficiency; each series also has its own marker and line style, so that none is known by
colour alone. Level bands are pale, and named in words at their right edge.
"""

from __future__ import annotations

import html
import io
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from dora.report.data import EDGES, Distribution

#: Okabe & Ito (2008), without its yellow (too pale on white for a line).
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#56B4E9", "#E69F00", "#000000")
MARKERS = ("o", "s", "^", "D", "v", "P", "X")
LINES = ("-", "--", "-.", ":", "-", "--", "-.")
#: The level bands' fills, pale enough for any line to read over them.
BAND_FILLS = {"elite": "#dff3e4", "high": "#e6eef8", "medium": "#fdf3d7", "low": "#fbe3e0"}
INK, GRID = "#1f2328", "#d0d7de"

_SVG_OPEN = re.compile(r"<svg\b[^>]*>")


@dataclass(frozen=True)
class Series:
    """One line: its name and a value per point (None: no value there)."""

    name: str
    values: Sequence[float | None]


@dataclass(frozen=True)
class Unit:
    """How values are shown: divided by ``scale``, named ``name``."""

    name: str
    scale: float


def time_unit(peak: float) -> Unit:
    """Minutes, hours or days, by the largest value (seconds)."""
    if peak >= 3 * 86400:
        return Unit("days", 86400)
    if peak >= 3 * 3600:
        return Unit("hours", 3600)
    return Unit("minutes", 60)


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("svg", force=True)
    matplotlib.rcParams.update(
        {
            "svg.fonttype": "none",  # text stays text
            "svg.hashsalt": "dora",  # ids do not change from run to run
            # measured with the font matplotlib ships; named in the SVG, which a browser
            # without it shows in its own sans-serif
            "font.family": "sans-serif",
            "font.sans-serif": ["DejaVu Sans"],
            "font.size": 10,
            "text.color": INK,
            "axes.labelcolor": INK,
            "axes.edgecolor": "#8c959f",
            "xtick.color": INK,
            "ytick.color": INK,
            "axes.titlesize": 12,
            "axes.titleweight": "bold",
        }
    )
    import matplotlib.pyplot as plt

    return plt


def _svg(figure: Any, title: str, description: str) -> str:
    """The figure as SVG text, with a ``<title>`` and ``<desc>`` first, its own fixed
    size replaced by a width that follows the page."""
    out = io.StringIO()
    figure.savefig(out, format="svg", metadata={"Date": None, "Creator": None})
    import matplotlib.pyplot as plt

    plt.close(figure)
    text = out.getvalue()
    text = text[text.index("<svg") :]  # no XML declaration or DOCTYPE inside HTML
    text = re.sub(r"\s*<metadata>.*?</metadata>", "", text, count=1, flags=re.DOTALL)
    match = _SVG_OPEN.search(text)
    assert match is not None  # noqa: S101 - matplotlib writes one
    opening = re.sub(r'\s(width|height)="[^"]*"', "", match.group(0))
    opening = opening.replace("<svg", '<svg role="img" width="100%"', 1)
    accessible = f"<title>{html.escape(title)}</title><desc>{html.escape(description)}</desc>"
    return opening + accessible + text[match.end() :]


def trend(
    title: str,
    starts: Sequence[datetime],
    series: Sequence[Series],
    *,
    unit: Unit,
    axis: str,
    bands: Sequence[tuple[str, float, float]] = (),
    percent: bool = False,
    description: str,
) -> str:
    """A line per series over the buckets starting at ``starts``, on pale level
    ``bands`` (in the values' own units, before ``unit``), as SVG."""
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(6.2, 3.4), layout="constrained")
    scaled = [
        [None if v is None else v / unit.scale * (100 if percent else 1) for v in one.values]
        for one in series
    ]
    present = [v for values in scaled for v in values if v is not None]
    peak = max(present, default=0.0)
    top = peak * 1.15 if peak > 0 else 1.0
    if bands:
        factor = (100 if percent else 1) / unit.scale
        visible = [(level, lo * factor, hi * factor) for level, lo, hi in bands]
        # as far up as the data go, and into the next band when it is near
        for _, lo, _ in visible:
            if peak < lo <= top * 1.6:
                top = max(top, lo * 1.1)
        for level, lo, hi in visible:
            if lo >= top:
                continue
            upper = min(hi, top)
            axes.axhspan(lo, upper, color=BAND_FILLS[level], zorder=0, linewidth=0)
            if (upper - lo) < top * 0.08:  # too thin to name without overprinting
                continue
            axes.text(
                1.005, (lo + upper) / 2, level, transform=axes.get_yaxis_transform(),
                va="center", ha="left", fontsize=9, color="#57606a",
            )  # fmt: skip
    for n, values in enumerate(scaled):
        xs = [s for s, v in zip(starts, values, strict=True) if v is not None]
        ys = [v for v in values if v is not None]
        axes.plot(
            xs, ys, label=series[n].name, color=PALETTE[n % len(PALETTE)],
            marker=MARKERS[n % len(MARKERS)], linestyle=LINES[n % len(LINES)],
            linewidth=1.8, markersize=4, zorder=3,
        )  # fmt: skip
    axes.set_ylim(0, top)
    axes.set_xlim(starts[0], starts[-1]) if len(starts) > 1 else None
    axes.set_title(title, loc="left")
    shown_unit = "%" if percent else unit.name
    axes.set_ylabel(f"{axis} ({shown_unit})" if shown_unit else axis)
    axes.set_xlabel("period starting (UTC)")
    axes.grid(axis="y", color=GRID, linewidth=0.6, zorder=1)
    axes.spines[["top", "right"]].set_visible(False)
    figure.autofmt_xdate(rotation=0, ha="center")
    if len(series) > 1:
        axes.legend(loc="upper left", bbox_to_anchor=(0, -0.3), ncol=3, frameon=False)
    return _svg(figure, title, description)


def histogram(distribution: Distribution, *, description: str) -> str:
    """The distribution's bins as bars on a scale of durations that doubles as it goes,
    with its median and 90th percentile marked by labelled lines."""
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(6.2, 3.0), layout="constrained")
    counts = distribution.counts
    positions = list(range(len(counts)))
    axes.bar(positions, counts, width=0.85, color="#0072B2", zorder=2)
    axes.set_xticks(positions, [_bin_label(n) for n in positions])
    for label, value, style in (
        ("median", distribution.median, "-"),
        ("90th percentile", distribution.p90, "--"),
    ):
        if value is None:
            continue
        x = _position(value)
        axes.axvline(x, color="#D55E00", linestyle=style, linewidth=1.6, zorder=3)
        axes.annotate(
            f"{label}: {_duration(value)}", (x, 1.0), xycoords=("data", "axes fraction"),
            xytext=(4, -4 if style == "-" else -18), textcoords="offset points",
            va="top", fontsize=9, color="#8a3200",
            bbox={"boxstyle": "square,pad=0.15", "facecolor": "white", "edgecolor": "none"},
        )  # fmt: skip
    axes.set_title(distribution.title, loc="left")
    axes.set_ylabel(distribution.counted)
    axes.set_xlabel("duration")
    axes.grid(axis="y", color=GRID, linewidth=0.6, zorder=1)
    axes.spines[["top", "right"]].set_visible(False)
    axes.set_xlim(-0.6, len(counts) - 0.4)
    return _svg(figure, distribution.title, description)


def _position(seconds: float) -> float:
    """Where ``seconds`` falls on the bins' axis: within its bin in proportion to the
    logarithm of the duration (linearly in the first bin, the last one as wide as a bin
    of 30 days to 120)."""
    for n in range(len(EDGES)):
        lo = EDGES[n]
        hi = EDGES[n + 1] if n + 1 < len(EDGES) else EDGES[-1] * 4
        if seconds < hi or n == len(EDGES) - 1:
            share = seconds / hi if lo == 0 else math.log(max(seconds, lo) / lo) / math.log(hi / lo)
            return n - 0.5 + min(1.0, share)
    return len(EDGES) - 0.5


def _bin_label(n: int) -> str:
    lo = _duration(EDGES[n], short=True)
    if n + 1 == len(EDGES):
        return f"{lo}+"
    return f"{lo}–{_duration(EDGES[n + 1], short=True)}"


def _duration(seconds: float, *, short: bool = False) -> str:
    """A duration in its largest whole unit (short: ``10m``, ``4h``, ``3d``)."""
    if short:
        if seconds == 0:
            return "0"
        for size, name in ((86400, "d"), (3600, "h"), (60, "m")):
            if seconds >= size:
                return f"{seconds / size:g}{name}"
        return f"{seconds:g}s"
    if seconds >= 86400:
        return f"{seconds / 86400:.1f} days"
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} hours"
    return f"{seconds / 60:.0f} minutes"
