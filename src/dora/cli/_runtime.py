"""What every command shares at run time: one error boundary, logging, and output streams.

Errors become one line on stderr and an exit status (``EXIT_*``); an unexpected exception
shows its traceback only with ``--verbose`` or ``DORA_DEBUG=1``. Data goes to stdout;
status, warnings and errors to stderr, every line scrubbed of URL credentials.
"""

from __future__ import annotations

import errno
import logging
import os
import sys
import time
from collections.abc import Sequence
from typing import Any

import typer

from dora.cli._help import Group
from dora.errors import DoraError
from dora.redact import scrub

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

# stdout errors that are the world's doing, not a bug: a full disk, a closed terminal, a
# closed descriptor (`dora ... >&-`)
_OUTPUT_ERRORS = {errno.ENOSPC, errno.EIO, errno.EDQUOT, errno.EFBIG, errno.EBADF}


class _Closed:
    """Stands for a standard stream the command was started without (``>&-``), which Python
    leaves as None: writing to it is an output error like any other, not an AttributeError."""

    def __init__(self, name: str) -> None:
        self.name = name

    def write(self, text: str) -> int:
        raise OSError(errno.EBADF, f"{self.name} is closed")

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        raise OSError(errno.EBADF, f"{self.name} is closed")


def _stand_in_for_closed_streams() -> None:
    if sys.stdout is None:
        sys.stdout = _Closed("standard output")
    if sys.stderr is None:  # nowhere to say anything: say nothing
        sys.stderr = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the process


class _State:
    verbose = False
    #: Let unexpected exceptions through untouched; the test suite turns this on.
    reraise = False


state = _State()


def debug_enabled() -> bool:
    return state.verbose or os.environ.get("DORA_DEBUG", "").lower() in ("1", "true", "yes", "on")


def set_verbose(value: bool) -> None:
    if value:
        state.verbose = True
    logging.getLogger("dora").setLevel(logging.DEBUG if debug_enabled() else logging.WARNING)


def terminal_width() -> int | None:
    """How wide the tables may be: ``COLUMNS`` if set, else the terminal's width; None (no
    limit) when stdout is a file or a pipe, which gets every column whole."""
    import shutil

    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    if sys.stdout.isatty():
        return shutil.get_terminal_size().columns
    return None


def status(message: str) -> None:
    """A status line for the person at the terminal, on stderr."""
    sys.stderr.write(scrub(message) + "\n")


def note(message: str) -> None:
    """A status line that says what a table left out or cut, wrapped at the table's width
    so that it fits the terminal too."""
    from dora import layout

    for line in layout.wrap(message, terminal_width()):
        status(line)


def error_line(message: str) -> None:
    """``dora: error: ...``; a second line of the message (what happens next) follows as
    ``dora: ...``."""
    first, *rest = scrub(message).splitlines() or [""]
    sys.stderr.write(f"dora: error: {first}\n")
    for line in rest:
        sys.stderr.write(f"dora: {line}\n")


class _Formatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        text = scrub(record.getMessage())
        if record.exc_info and debug_enabled():
            text += "\n" + scrub(self.formatException(record.exc_info))
        return f"dora: {record.levelname.lower()}: {text}"


class _StderrHandler(logging.Handler):
    """Writes to whatever ``sys.stderr`` is at the time (test runners swap it)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(self.format(record) + "\n")
        except Exception:  # pragma: no cover - logging's own policy for broken streams
            self.handleError(record)


def _setup_logging() -> None:
    logger = logging.getLogger("dora")
    if not any(isinstance(h, _StderrHandler) for h in logger.handlers):
        handler = _StderrHandler()
        handler.setFormatter(_Formatter())
        logger.addHandler(handler)
        logger.propagate = False
    set_verbose(False)


class DoraGroup(Group):
    """The root command: runs the CLI and turns every failure into one line and a status."""

    def main(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        state.verbose = False
        _stand_in_for_closed_streams()
        _setup_logging()
        code = self._run(args, prog_name or "dora", complete_var, **extra)
        if standalone_mode:
            sys.exit(code)
        return code

    def _run(
        self, args: Sequence[str] | None, prog_name: str, complete_var: str | None, **extra: Any
    ) -> int:
        try:
            result = super().main(
                args=args,
                prog_name=prog_name,
                complete_var=complete_var,
                standalone_mode=False,
                **extra,
            )
            sys.stdout.flush()  # so that a failing stdout is reported here, not at exit
        except typer.TyperException as exc:  # Click's usage and other errors
            return _click_failure(exc)
        except DoraError as exc:
            logging.getLogger("dora").debug("failed", exc_info=True)
            error_line(exc.message)
            return exc.exit_code
        except (KeyboardInterrupt, typer.Abort):
            error_line("interrupted")
            return EXIT_INTERRUPTED
        except BrokenPipeError:  # the reader went away (`dora ... | head`): end quietly,
            _silence_stdout()  # with the status Typer and rich give it too
            return EXIT_FAILURE
        except OSError as exc:
            if exc.errno not in _OUTPUT_ERRORS or debug_enabled():
                raise
            error_line(f"cannot write the output: {exc.strerror}")
            return EXIT_FAILURE
        except Exception as exc:
            if debug_enabled() or state.reraise:
                raise
            error_line(
                f"unexpected {type(exc).__name__}: {exc} "
                "(run with --verbose for the traceback, and please report it)"
            )
            return EXIT_FAILURE
        if result == EXIT_INTERRUPTED:  # Click turns Ctrl-C into Exit(130) on its own
            error_line("interrupted")
        return result if isinstance(result, int) else EXIT_OK


def _click_failure(exc: typer.TyperException) -> int:
    """One line for an error Click raised while parsing; a usage error points at --help."""
    code = int(getattr(exc, "exit_code", EXIT_FAILURE))
    message = exc.format_message()
    ctx = getattr(exc, "ctx", None)
    if code == EXIT_USAGE and ctx is not None:
        message += f" (see '{ctx.command_path} --help')"
    error_line(message)
    return code


def print_help(ctx: typer.Context) -> None:
    """The help of ``ctx``'s command, on stdout (rich help prints itself; plain help is
    returned)."""
    if text := ctx.get_help().strip():
        sys.stdout.write(text + "\n")


def _silence_stdout() -> None:
    # stdout's reader went away (`dora ... | head`): flushing at exit must not fail again
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


def shows_progress() -> bool:
    ci = os.environ.get("CI", "").lower() not in ("", "0", "false")
    return sys.stderr.isatty() and not ci and os.environ.get("TERM") != "dumb"


class Progress:
    """A progress bar on stderr while a long step runs, only for a person at a terminal:
    none when stderr is redirected, in CI (``CI`` set, as every CI service does, even one
    that gives its jobs a terminal), or on a dumb terminal. ``advance`` and ``update``
    count done work; ``total`` may be unknown. With ``counting`` (a plural noun), a second
    figure set by ``count`` is shown beside it: ``12,345 records``.

    The bar is told at most every ``_EVERY`` seconds (and once more at the end), so a caller
    may report every line it reads."""

    _EVERY = 0.05

    def __init__(
        self,
        description: str,
        total: float | None = None,
        *,
        in_bytes: bool = False,
        counting: str | None = None,
    ) -> None:
        self._bar: Any = None
        self._done = 0.0
        self._total = total
        self._count = 0
        self._next = 0.0
        if not shows_progress():
            return
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        columns: list[Any] = [
            "{task.description}",
            BarColumn(),
            DownloadColumn() if in_bytes else MofNCompleteColumn(),
        ]
        if counting:
            columns.append(TextColumn(f"{{task.fields[count]:,}} {counting}"))
        self._bar = Progress(
            *columns,
            TimeElapsedColumn(),
            console=Console(file=sys.stderr, force_terminal=True),
            transient=True,
        )
        self._task = self._bar.add_task(description, total=total, count=0)

    def __enter__(self) -> Progress:
        if self._bar is not None:
            self._bar.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._bar is not None:
            self._show()  # the last figures, for the last frame
            self._bar.stop()

    def update(self, done: float, total: float | None = None) -> None:
        if self._bar is not None:
            self._done = done
            self._total = self._total if total is None else total
            self._tick()

    def advance(self, amount: float = 1) -> None:
        if self._bar is not None:
            self._done += amount
            self._tick()

    def count(self, n: int) -> None:
        if self._bar is not None:
            self._count = n
            self._tick()

    def _tick(self) -> None:
        now = time.monotonic()
        if now >= self._next:
            self._next = now + self._EVERY
            self._show()

    def _show(self) -> None:
        self._bar.update(self._task, completed=self._done, total=self._total, count=self._count)
