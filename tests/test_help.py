"""What `--help` says, for every command and subcommand: the tree is walked, so that a new
command is checked without anyone adding it here."""

from __future__ import annotations

import re

import pytest
import typer

from dora.cli import app

#: The commands that record what happens now: a time without a zone is local time there. In
#: every other command (reports, imports, exports) it is UTC.
RECORDING = {"deployment", "incident open", "incident resolve"}


def all_commands() -> list[tuple[list[str], typer.core.TyperCommand]]:
    root = typer.main.get_command(app)

    def walk(command, path):
        yield path, command
        for name, sub in getattr(command, "commands", {}).items():
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
        "incident open",
        "incident resolve",
        "incident import-pagerduty",
        "metrics",
        "export",
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
