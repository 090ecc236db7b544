"""``dora import`` and ``dora export``: events from and to NDJSON or CSV files."""

from __future__ import annotations

import contextlib
import itertools
import os
import sys
from collections.abc import Iterable, Iterator
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from dora.cli import _common as opt
from dora.cli._files import output_file
from dora.cli._runtime import Progress, error_line, status
from dora.config import Settings
from dora.errors import UsageError

if TYPE_CHECKING:
    from dora.interchange import Loaded


class Format(str, Enum):
    ndjson = "ndjson"
    csv = "csv"


def import_(
    files: Annotated[
        list[str],
        typer.Argument(
            metavar="FILE",
            help="NDJSON or CSV files of events; - reads standard input.",
            show_default=False,
        ),
    ],
    format: Annotated[
        Format | None,
        typer.Option(
            "--format",
            help="The files' format (default: from each name's suffix, .ndjson .jsonl .json "
            "or .csv, else from its first line).",
            case_sensitive=False,
            show_default=False,
        ),
    ] = None,
    skip_invalid: Annotated[
        bool,
        typer.Option(
            "--skip-invalid",
            help="Import the valid records and list the invalid ones, instead of importing "
            "nothing when one is invalid.",
        ),
    ] = False,
    backend: opt.Backend = None,
    hotfix_pattern: opt.HotfixPattern = None,
    db: opt.Db = None,
    verbose: opt.Verbose = False,
) -> None:
    """Import deployments and incidents from NDJSON or CSV files: a backfill.

    Each record is an event with the events' own fields and a type (deployment or
    incident); in CSV, services, custom_tags and commits hold items separated by ';'. Every
    record is checked as the commands check their options. By default a file with an
    invalid record imports nothing; --skip-invalid imports the rest.

    Importing is idempotent by id: a record already stored as it is is left alone, a
    changed one is updated. A record without an id gets one derived from the event (a
    deployment's service, env, version, times and commit; an incident's services, team,
    env, name and start), so reading the same file again duplicates nothing.

    With the datadog backend, new and changed events are sent after they are stored;
    those that cannot be sent wait for 'dora push'.

    Examples:

        dora import deploys.ndjson incidents.csv
        dora export --db old.db | dora import -
        dora export | dora import --db postgresql://dora@db.internal/dora -
        dora import --skip-invalid --format csv history.txt
    """
    from dora import checks, interchange

    settings = Settings({"db": db, "backend": backend, "hotfix_pattern": hotfix_pattern})
    hotfix = checks.hotfix_pattern(settings)
    _, sender = opt.prepare(settings, dry_run=False)
    with contextlib.ExitStack() as stack:
        opened = [_open(stack, name, format) for name in files]
        total = sum(size for *_, size in opened if size is not None)
        bar = stack.enter_context(
            Progress("Reading", total or None, in_bytes=True, counting="records")
        )
        loaded = interchange.load(
            (
                (label, interchange.records(lines, fmt, label, on_bytes=bar.advance))
                for label, lines, fmt, _ in opened
            ),
            progress=bar.count,
        )
    with loaded:
        _report_problems(loaded, skip_invalid=skip_invalid)
        source = opened[0][0] if len(opened) == 1 else f"{len(opened)} files"
        if not loaded.count:
            status(f"Nothing to import: {source} holds no valid records.")
            return
        opt.save_all(
            settings,
            loaded.items(),
            source=source,
            backend=sender,
            total=loaded.count,
            hotfix=hotfix,
        )


def _open(
    stack: contextlib.ExitStack, name: str, given: Format | None
) -> tuple[str, Iterable[bytes], str, int | None]:
    """(label, lines, format, size if known) of one FILE argument; ``-`` is stdin."""
    from dora import interchange

    if name == "-":
        label, stream, size = "<stdin>", sys.stdin.buffer, None
    else:
        label = name
        try:
            stream = stack.enter_context(Path(name).open("rb"))  # noqa: SIM115
            size = os.fstat(stream.fileno()).st_size
        except IsADirectoryError:
            raise UsageError(f"{name}: is a directory, not a file of events") from None
        except OSError as exc:
            raise UsageError(f"{name}: cannot read it ({exc.strerror})") from None
    first = stream.readline()
    fmt = given.value if given is not None else interchange.format_of(name, first)
    return label, itertools.chain([first], stream), fmt, size


def _report_problems(loaded: Loaded, *, skip_invalid: bool) -> None:
    if not loaded.invalid:
        return
    say = opt.log.warning if skip_invalid and not loaded.unreadable else error_line
    for problem in loaded.problems:
        say(str(problem))
    more = loaded.invalid - len(loaded.problems)
    if more:
        say(f"... and {more:,} more invalid record{'s' * (more != 1)}")
    records = f"{loaded.invalid:,} invalid record{'s' * (loaded.invalid != 1)}"
    if loaded.unreadable:
        raise UsageError(
            f"{records}, in a file that cannot be read to its end; nothing was imported"
        )
    if not skip_invalid:
        raise UsageError(f"{records}; nothing was imported (--skip-invalid imports the valid ones)")
    status(f"Skipped {records}.")


def export(
    format: Annotated[
        Format | None,
        typer.Option(
            "--format",
            help="Output format (default: csv for an --output file named .csv, else ndjson).",
            case_sensitive=False,
            show_default=False,
        ),
    ] = None,
    output: Annotated[
        str | None,
        typer.Option(
            "--output",
            "-o",
            metavar="FILE",
            help="Write to FILE (replaced whole, only once complete) instead of stdout.",
            show_default=False,
        ),
    ] = None,
    since: Annotated[
        str | None,
        opt.since_option(
            "Only the events of the window from then (default: everything): a length "
            f"before --until such as 30d, or a time: {opt.WINDOW_TIME_FORMS}."
        ),
    ] = None,
    until: Annotated[
        str | None,
        opt.time_option(
            "--until",
            f"End of the window, excluded (default: no end). Same forms; {opt.NAIVE_UTC}.",
        ),
    ] = None,
    service: opt.ServiceFilter = None,
    team: opt.TeamFilter = None,
    env: opt.EnvFilter = None,
    db: opt.Db = None,
    verbose: opt.Verbose = False,
) -> None:
    """Write the store's events as NDJSON or CSV, which 'dora import' reads back.

    Exports every deployment and incident, oldest start first, with the commits each
    deployment shipped (for lead time). With --since or --until: the deployments that
    finished in the window and the incidents open at any time in it. Filters work as in
    'dora metrics'. What is waiting to be sent to a backend is not exported.

    Examples:

        dora export > backup.ndjson
        dora export --format csv --since 90d --service api -o api.csv
        dora export --db old.db | dora import -
    """
    from dora import interchange, metrics

    window = opt.optional_window(since, until)
    filters = metrics.Filters(*opt.filters(service=service, team=team, env=env))
    where, store = opt.existing_store(db)
    if format is None:
        csv_file = output is not None and output.lower().endswith(".csv")
        format = Format.csv if csv_file else Format.ndjson
    write = interchange.write_csv if format is Format.csv else interchange.write_ndjson
    with contextlib.ExitStack() as stack:
        records: Iterator[dict[str, Any]] = iter(())
        if store is not None:
            stack.enter_context(store)
            stack.enter_context(store.snapshot())
            records = interchange.export(store, since=window[0], until=window[1], filters=filters)
        with output_file(output) as out:
            count = write(records, out)
    if store is None:
        status(f"Nothing has been recorded in {where} yet.")
    target = output if output not in (None, "-") else "standard output"
    status(f"Exported {count:,} event{'s' * (count != 1)} to {target}.")
