"""The ``dora`` command: assembles the Typer app from one module per command, each loaded
only when that command runs (or a help or completion lists it)."""

from __future__ import annotations

from typing import Annotated

import typer

from dora import __version__
from dora.cli._common import Verbose
from dora.cli._help import Typer
from dora.cli._runtime import DoraGroup, print_help

app = Typer(
    name="dora",
    cls=DoraGroup,
    lazy={
        "deployment": "dora.cli.deployment.record:app",
        "incident": "dora.cli.incident:app",
        "metrics": "dora.cli.metrics:metrics",
        "report": "dora.cli.report:report",
        "push": "dora.cli.push:push",
        "import": "dora.cli.interchange:import_",
        "export": "dora.cli.interchange:export",
        "fetch": "dora.cli.fetch:app",
        "config": "dora.cli.config:config",
    },
    epilog="Docs: README.md. Exit status: 0 ok, 1 failure, 2 bad usage, 130 interrupted.",
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)


def _show_version(value: bool) -> None:
    if value:
        print(f"dora {__version__}")
        raise typer.Exit()


@app.callback(invoke_without_command=True)
def _root(
    ctx: typer.Context,
    version: Annotated[
        bool,
        typer.Option(
            "--version", help="Show the version and exit.", callback=_show_version, is_eager=True
        ),
    ] = False,
    verbose: Verbose = False,
) -> None:
    """Record deployments and incidents, and report DORA metrics.

    Events go to a local SQLite store (no set-up needed), or to a PostgreSQL database a
    team shares (DORA_DB=postgresql://...). Run 'dora COMMAND --help' for each command's
    options and examples.

    Examples:

        dora deployment --service api --env prod --started-at -10m
        ID=$(dora incident open --service api --name "checkout 500s")
        dora incident resolve "$ID"
    """
    if ctx.invoked_subcommand is None:
        print_help(ctx)


def main() -> None:
    """Console-script entry point."""
    typer.main.get_command(app).main(prog_name="dora")
