"""Where a command writes its output: standard output, or a file replaced whole."""

from __future__ import annotations

import contextlib
import os
import stat
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from dora.errors import UsageError


@contextlib.contextmanager
def output_file(path: str | None, flag: str = "--output") -> Iterator[IO[str]]:
    """stdout; or for a regular file (new, or through a symbolic link), a temporary file
    beside it that replaces it once complete, with the mode the file had (or a new file's);
    or anything else (a pipe, a device) written as it is."""
    if path is None or path == "-":
        yield sys.stdout
        return
    target = Path(path)
    if target.is_dir():
        raise UsageError(f"{flag}: {path} is a directory")
    real = target.resolve()
    if real.exists() and not real.is_file():
        try:
            with real.open("w", encoding="utf-8", newline="") as stream:
                yield stream
        except (FileNotFoundError, PermissionError) as exc:
            raise UsageError(f"{flag}: cannot write to {path} ({exc.strerror})") from None
        return
    if real.exists():
        mode = stat.S_IMODE(real.stat().st_mode)
    else:
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask
    import tempfile

    try:
        handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 - replaced or removed below
            "w", encoding="utf-8", newline="", dir=real.parent,
            prefix=f".{real.name}.", suffix=".tmp", delete=False,
        )  # fmt: skip
    except OSError as exc:
        raise UsageError(f"{flag}: cannot write to {path} ({exc.strerror})") from None
    try:
        with handle:
            yield handle
        os.chmod(handle.name, mode)
        os.replace(handle.name, real)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(handle.name)
        raise
