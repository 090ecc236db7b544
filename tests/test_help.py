"""What `--help` says, for every command and subcommand: the tree is walked, so that a new
command is checked without anyone adding it here."""

from __future__ import annotations

import inspect
import re

import pytest
import typer
from typer import _click
from typer.core import TyperGroup

from dora.cli import app

#: The commands that record what happens now: a time without a zone is local time there. In
#: every other command (reports, imports, exports) it is UTC.
RECORDING = {"deployment", "incident open", "incident resolve"}


def all_commands() -> list[tuple[list[str], typer.core.TyperCommand]]:
    root = typer.main.get_command(app)

    def walk(command, path):
        yield path, command
        if isinstance(command, TyperGroup):  # loaded as the CLI loads them, when asked
            ctx = _click.Context(command)
            for name in command.list_commands(ctx):
                sub = command.get_command(ctx, name)
                if not sub.hidden:  # an old name, kept working (tested where it is used)
                    yield from walk(sub, [*path, name])

    return list(walk(root, []))


COMMANDS = all_commands()


def name(path: list[str]) -> str:
    return " ".join(path) or "dora"


def time_options() -> list[tuple[list[str], str]]:
    """(command path, flag) of every option that takes a time."""
    return [
        (path, param.opts[0])
        for path, command in COMMANDS
        for param in command.params
        if param.param_type_name == "option" and "TIME" in (param.metavar or "")
    ]


def option_row(help_text: str, flag: str) -> str:
    """The line of ``flag`` in the options panel (rendered wide enough to be one line)."""
    rows = [line for line in help_text.splitlines() if re.match(rf"│\s+{flag}\b", line)]
    assert len(rows) == 1, help_text
    return rows[0]


def test_every_command_that_takes_a_time_is_checked():
    assert {name(path) for path, _ in time_options()} == {
        "deployment",
        "deployment list",
        "incident open",
        "incident resolve",
        "incident list",
        "fetch pagerduty",
        "metrics",
        "report",
        "export",
        "fetch datadog",
        "fetch github",
        "fetch gitlab",
        "fetch opsgenie",
        "fetch incident-io",
    }


@pytest.mark.parametrize(
    ("path", "flag"), time_options(), ids=[f"{name(p)} {f}" for p, f in time_options()]
)
def test_time_options_say_how_a_time_without_a_zone_is_read(dora, monkeypatch, path, flag):
    monkeypatch.setenv("COLUMNS", "400")

    row = option_row(dora(*path, "--help").stdout, flag)

    if name(path) in RECORDING:
        assert "a time without a zone is local time" in row
        assert "UTC" not in row
    else:
        assert "a time without a zone is UTC" in row
        assert "local time" not in row


# --- every command: help text, words for values, examples that can be pasted ----------------


def examples(command) -> list[str]:
    """The example lines of a command, as its docstring writes them: the indented lines
    under ``Examples:``."""
    doc = inspect.getdoc(command.callback) or ""
    block = doc.partition("\nExamples:\n")[2]
    lines = []
    for line in block.splitlines():
        if line.strip() and not line[0].isspace():
            break  # the next part (a heading)
        if line.strip():
            lines.append(line.strip())
    return lines


def panel_rows(help_text: str) -> dict[str, list[str]]:
    """Each row of the Arguments and Options panels, as its cells, by its first name
    (``--since``, ``FILE...``); rendered wide enough that every row is one line."""
    rows = {}
    for line in help_text.splitlines():
        if not line.startswith("│ "):
            continue
        cells = re.split(r"\s{2,}", line.strip("│ "))
        cells = [cell for cell in cells if cell != "*"]  # the required mark
        rows[cells[0]] = cells
    return rows


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=[name(p) for p, _ in COMMANDS])
def test_every_command_has_help_with_an_example(dora, path, command):
    result = dora(*path, "--help")

    assert result.exit_code == 0
    assert command.help.strip()
    assert any(line.startswith(f"dora {' '.join(path)}".strip()) for line in examples(command))


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=[name(p) for p, _ in COMMANDS])
def test_flags_show_no_value_and_values_show_words(dora, monkeypatch, path, command):
    monkeypatch.setenv("COLUMNS", "400")

    help_text = dora(*path, "--help").stdout

    assert "<bool>" not in help_text
    assert not re.search(r"<\w+(\[.*?\])?>|list\[|\b(str|int|float|bool)\b", help_text)
    rows = panel_rows(help_text)
    for param in command.get_params(typer.Context(command)):
        if param.param_type_name == "argument":
            cells = rows[param.metavar + ("..." if param.nargs != 1 else "")]
            assert cells[1] == param.help  # the help right after the name: no type
            continue
        cells = next(row for row in rows.values() if row[0] in param.opts)
        shown = next(cell for cell in cells if not cell.startswith("-"))  # after the names
        if param.is_flag:
            assert param.help.startswith(shown.split(" [")[0])  # the help: no value
        else:
            word = shown.split(" [")[0]  # without a number range
            # words, as gh writes them: ID, TIME|DURATION, OWNER/NAME, 'FROM=TO'
            assert re.fullmatch(r"[A-Z][A-Z:|/]*(\.\.\.)?|'[A-Z =/]+'|[a-z]+(\|[a-z]+)+", word), (
                param.opts,
                word,
            )


def test_arguments_show_their_word_in_the_usage_line(dora):
    def usage(*path: str) -> str:
        lines = dora(*path, "--help").stdout.splitlines()
        return next(line.strip() for line in lines if "Usage:" in line)

    assert usage("import") == "Usage: dora import [OPTIONS] FILE..."
    assert usage("incident", "resolve") == "Usage: dora incident resolve [OPTIONS] ID"


@pytest.mark.parametrize("columns", ["80", "60"])
@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=[name(p) for p, _ in COMMANDS])
def test_examples_come_out_as_written_one_per_line(dora, monkeypatch, columns, path, command):
    monkeypatch.setenv("COLUMNS", columns)
    wanted = examples(command)

    lines = dora(*path, "--help").stdout.splitlines()

    start = lines.index(" Examples:")
    assert lines[start - 1] == ""
    assert lines[start + 1 : start + 1 + len(wanted)] == [f"   {line}" for line in wanted]
    assert all(len(f"   {line}") <= 80 for line in wanted)  # no terminal of 80 folds them


@pytest.mark.parametrize("columns", [120, 85, 80, 73, 60, 40])
@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=[name(p) for p, _ in COMMANDS])
def test_help_fits_the_terminal_and_cuts_no_word(dora, monkeypatch, columns, path, command):
    monkeypatch.setenv("COLUMNS", str(columns))
    pasted = {f"   {line}" for line in examples(command)}  # never wrapped, by design
    ctx = typer.Context(command)
    words = [p.display_type_rich(ctx=ctx) for p in command.get_params(ctx)]

    text = dora(*path, "--help").stdout
    lines = text.splitlines()

    assert not [line for line in lines if "\u2026" in line]  # nothing ends in "..."
    assert not [line for line in lines if len(line) > columns and line not in pasted]
    assert not [word for word in words if word and word not in text]  # none folded


def test_a_help_whose_table_would_cut_stacks_each_option_over_its_help(dora, monkeypatch):
    monkeypatch.setenv("COLUMNS", "60")

    def row(text: str) -> str:  # a line of a panel 60 columns wide
        return f"│{text.ljust(58)}│"

    lines = dora("fetch", "github", "--help").stdout.splitlines()

    at = lines.index(row(" * --repo OWNER/NAME"))
    assert lines[at + 1 : at + 3] == [
        row("     The repository to read; repeat for several."),
        row("     [required]"),
    ]
    since = lines.index(row("   --since TIME|DURATION"))
    text = " ".join(line.strip("│ ") for line in lines[since + 1 : since + 6])
    assert "ISO 8601 such as 2026-11-24T09:30:00Z (a time without a zone is UTC)" in text
    assert row("   --verbose, -v") in lines
    assert row(" * FILE...") in dora("import", "--help").stdout.splitlines()
    listed = dora("deployment", "list", "--help").stdout.splitlines()
    assert row("   --limit, -L N [0<=x<=1000000]") in listed  # its range too


def test_a_help_whose_table_fits_keeps_it(dora, monkeypatch):
    monkeypatch.setenv("COLUMNS", "60")
    dora("fetch", "github", "--help")  # stacked, then put back
    monkeypatch.setenv("COLUMNS", "120")

    help_text = dora("fetch", "github", "--help").stdout

    assert re.search(
        r"│ \* +--repo +OWNER/NAME +The repository to read; repeat for several\.", help_text
    )


def test_incident_version_is_the_version_that_was_running(dora, monkeypatch):
    monkeypatch.setenv("COLUMNS", "400")

    row = option_row(dora("incident", "open", "--help").stdout, "--version")

    assert "Version of the service that was running when the incident began" in row
    assert "deployed" not in row
