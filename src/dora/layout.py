"""Fitting text to a terminal's width: tables that drop or cut columns rather than fold a
word, and prose that wraps at spaces.

A table never splits a heading or a value mid-word. When it is too wide it first cuts the
free-text columns (names) down to a readable length, marking each cut value with ``…``;
then it leaves out columns in the order the table gives (the essential ones are not in
that order, so they stay); then, if it must, it cuts the free text further. ``note`` says
in one line what was left out or cut, in the same words for every table. A heading of
several words may wrap at its spaces.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import IO

from rich.cells import cell_len
from rich.text import Text

#: Spaces between columns.
GAP = 2
#: How narrow a free-text column may get before the last resort: its longest heading word.
_LAST_RESORT = 4


@dataclass(frozen=True)
class Column:
    """A column: its heading, right-justified (figures) or not, and for free text, how
    short its values may be cut (with ``…``) before a column is left out instead."""

    heading: str
    right: bool = False
    cut_to: int | None = None


@dataclass
class Fitted:
    """A table's lines, and the headings of the columns left out and of those cut."""

    lines: list[Text] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    cut: list[str] = field(default_factory=list)


def _word_width(heading: str) -> int:
    return max(cell_len(word) for word in heading.split())


def fit_table(
    columns: Sequence[Column],
    rows: Sequence[Sequence[Text | str]],
    width: int | None,
    drop: Sequence[str] = (),
    *,
    header_style: str = "bold",
) -> Fitted:
    """``rows`` laid out in at most ``width`` cells (None: no limit), leaving out the columns
    named in ``drop``, in that order, as far as needed."""
    cells = [[cell if isinstance(cell, Text) else Text(cell) for cell in row] for row in rows]

    def natural(c: int) -> int:
        return max([_word_width(columns[c].heading), *(cell_len(row[c].plain) for row in cells)])

    def sizes(shown: list[int], floor: bool) -> tuple[dict[int, int], int]:
        size = {c: natural(c) for c in shown}
        excess = sum(size.values()) + GAP * (len(shown) - 1) - (width or 0)
        least = {}
        for c in shown:
            cut_to = columns[c].cut_to
            if cut_to is not None:
                word = _word_width(columns[c].heading)
                least[c] = max(word, _LAST_RESORT) if floor else max(word, cut_to)
        while width is not None and excess > 0:  # the widest free text gives way first
            widest = max(least, key=lambda c: size[c] - least[c], default=None)
            if widest is None or size[widest] <= least[widest]:
                break
            size[widest] -= 1
            excess -= 1
        return size, excess

    shown = list(range(len(columns)))
    dropped: list[str] = []
    size, excess = sizes(shown, floor=False)
    for heading in drop:
        if width is None or excess <= 0:
            break
        shown.remove(next(c for c in shown if columns[c].heading == heading))
        dropped.append(heading)
        size, excess = sizes(shown, floor=False)
    if width is not None and excess > 0:
        size, excess = sizes(shown, floor=True)

    headers = {c: _wrap_heading(columns[c].heading, size[c]) for c in shown}
    depth = max(len(lines) for lines in headers.values())
    fitted = Fitted(dropped=dropped)
    for n in range(depth):
        line = []
        for c in shown:
            lines = [""] * (depth - len(headers[c])) + headers[c]  # headings sit on the rows
            line.append(Text(lines[n], style=header_style))
        fitted.lines.append(_join(line, [size[c] for c in shown], [columns[c] for c in shown]))
    cut: set[int] = set()
    for row in cells:
        line = []
        for c in shown:
            cell = row[c]
            if cell_len(cell.plain) > size[c]:
                cell = cell.copy()
                cell.truncate(size[c], overflow="ellipsis")
                cut.add(c)
            line.append(cell)
        fitted.lines.append(_join(line, [size[c] for c in shown], [columns[c] for c in shown]))
    fitted.cut = [columns[c].heading for c in shown if c in cut]
    return fitted


def _wrap_heading(heading: str, size: int) -> list[str]:
    """A heading on as few lines as ``size`` allows, broken only at spaces."""
    lines: list[str] = []
    for word in heading.split():
        if lines and cell_len(lines[-1]) + 1 + cell_len(word) <= size:
            lines[-1] += " " + word
        else:
            lines.append(word)
    return lines


def _join(cells: list[Text], sizes: list[int], columns: list[Column]) -> Text:
    line = Text()
    for n, (cell, size, column) in enumerate(zip(cells, sizes, columns, strict=True)):
        pad = " " * (size - cell_len(cell.plain))
        if n:
            line.append(" " * GAP)
        if column.right:
            line.append(pad)
            line.append_text(cell)
        else:
            line.append_text(cell)
            line.append(pad)
    line.rstrip()
    return line


def note(fitted: Fitted, table: str = "") -> str | None:
    """``Left out ENV, AFFECTS and cut NAME (…) to fit the terminal; --format json has
    all.``: what a table gave up for the width, or None if nothing. ``table`` names the
    table when a command shows more than one (``Trend: left out ...``)."""
    parts = []
    if fitted.dropped:
        parts.append("left out " + ", ".join(fitted.dropped))
    if fitted.cut:
        parts.append("cut " + ", ".join(fitted.cut) + " (…)")
    if not parts:
        return None
    text = " and ".join(parts) + " to fit the terminal; --format json has all."
    return f"{table}: {text}" if table else text[0].upper() + text[1:]


#: Joins two words that ``wrap`` keeps on one line (a date and its time); shown as a space.
GLUE = "\xa0"


def wrap(text: str, width: int | None, indent: str = "", hanging: str | None = None) -> list[str]:
    """``text`` in lines of at most ``width`` cells, broken only at spaces (a word longer
    than a line stands alone on its line, and words joined by ``GLUE`` stay together);
    later lines start with ``hanging``."""
    if width is None:
        lines = [indent + text]
    else:
        lines = textwrap.wrap(
            text,
            max(width, len(indent) + 20),
            initial_indent=indent,
            subsequent_indent=indent if hanging is None else hanging,
            break_long_words=False,
            break_on_hyphens=False,
        ) or [indent]
    return [line.replace(GLUE, " ") for line in lines]


def write(lines: Sequence[Text | str], out: IO[str], color: bool | None = None) -> None:
    """Print lines as they are (never wrapped again), coloured if ``color`` (None: if
    ``out`` is a terminal and NO_COLOR is not set)."""
    from rich.console import Console

    console = Console(
        file=out,
        highlight=False,
        no_color=True if color is False else None,  # None: as NO_COLOR says
        force_terminal=color,
        width=100_000,
    )
    for line in lines:
        console.print(line, soft_wrap=True, markup=False, emoji=False)
