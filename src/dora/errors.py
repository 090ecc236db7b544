"""The errors dora's library raises, caught once at the command-line boundary.

Each carries one line for the user and the exit status it maps to:

    DoraError             a runtime failure (exit 1)
    ├── UsageError        bad input: a flag, an argument or a setting (exit 2)
    │   ├── InvalidEvent  an event failed validation; ``field`` names the field
    │   └── ConfigError   the config file cannot be used
    ├── NotFound          what was asked for does not exist
    └── StoreError        the store cannot be opened, read or written
"""

from __future__ import annotations


class DoraError(Exception):
    """A failure the user can act on, described in one line."""

    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class UsageError(DoraError):
    """The input is wrong; running again with the same input fails the same way."""

    exit_code = 2


class InvalidEvent(UsageError):
    """An event field failed validation.

    ``field`` is the field's dotted path in the event (``started_at``, ``git.commit_sha``),
    so that each front end can name it in its own terms: a flag, a file column.
    """

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}" if field else problem)
        self.field = field
        self.problem = problem


class ConfigError(UsageError):
    """The config file is unreadable or holds an unknown or malformed setting."""


class NotFound(DoraError):
    """An id or a record that was asked for is not in the store."""


class StoreError(DoraError):
    """The store cannot be opened, read or written."""
