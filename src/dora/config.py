"""Settings, each from the first place that gives it: flag > environment > config file > default.

The config file is TOML at ``$DORA_CONFIG``, or ``config.toml`` in the platform's user
config directory (``~/.config/dora/config.toml`` on Linux)::

    db = "/var/lib/dora/dora.db"
    service = "api"
    env = "prod"
    team = "payments"
    retry_budget = 60
    benchmarks = "2024"
    link_window = "7d"
    hotfix_pattern = '(?i)\bhotfix\b'

Every value is a string in quotes, except ``retry_budget``, a number of seconds (a string
such as ``"60"`` works too). The commands refuse a file with any problem at all; ``dora
config`` reads it with ``lenient=True``, to show each problem beside its setting.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from dora.errors import ConfigError, UsageError
from dora.redact import scrub


@dataclass(frozen=True)
class Key:
    name: str
    flag: str
    env: tuple[str, ...]
    help: str
    #: never shown, and never read from the config file (a file's permissions are no vault)
    secret: bool = False
    #: a number of seconds, which the config file may give as a TOML number
    seconds: bool = False


KEYS: dict[str, Key] = {
    key.name: key
    for key in (
        Key("db", "--db", ("DORA_DB",), "the store: an SQLite file path or a postgresql:// URL"),
        Key("service", "--service", ("DD_SERVICE",), "default service of an event"),
        Key("env", "--env", ("DD_ENV",), "default environment of an event"),
        Key("team", "--team", ("DORA_TEAM",), "default team of an event"),
        Key("backend", "--backend", ("DORA_BACKEND",), "where events go besides the store"),
        Key(
            "retry_budget",
            "--retry-budget",
            ("DORA_RETRY_BUDGET",),
            "seconds a command may spend sending",
            seconds=True,
        ),
        Key(
            "benchmarks",
            "--benchmarks",
            ("DORA_BENCHMARKS",),
            "edition of DORA's benchmarks for levels: 2024 or 2023",
        ),
        Key(
            "link_window",
            "--link-window",
            ("DORA_LINK_WINDOW",),
            "longest gap from a deployment to an incident linked to it, e.g. 7d",
        ),
        Key(
            "hotfix_pattern",
            "--hotfix-pattern",
            ("DORA_HOTFIX_PATTERN",),
            "regular expression (Python re) a hotfix's version or commit subject matches",
        ),
        Key("site", "", ("DATADOG_SITE", "DD_SITE"), "Datadog site, e.g. datadoghq.eu"),
        Key("api_url", "", ("DORA_API_URL",), "a Datadog-compatible API instead of the site"),
        Key("api_key", "", ("DATADOG_API_KEY", "DD_API_KEY"), "Datadog API key", secret=True),
        Key(
            "app_key",
            "",
            ("DATADOG_APP_KEY", "DD_APP_KEY", "DD_APPLICATION_KEY"),
            "Datadog application key, to mark deployments",
            secret=True,
        ),
    )
}


def _default(name: str) -> str | None:
    if name == "db":
        return str(default_db_path())
    if name == "hotfix_pattern":
        from dora.failures import HOTFIX

        return HOTFIX
    # the site is the Datadog backend's DEFAULT_SITE (a test keeps the two the same)
    return {
        "backend": "local",
        "retry_budget": "30",
        "benchmarks": "2024",
        "link_window": "none",
        "site": "datadoghq.com",
    }.get(name)


@dataclass(frozen=True)
class FileProblem:
    """What is wrong in the config file: with one setting (``key``) or the whole file."""

    key: str | None
    message: str


@dataclass(frozen=True)
class Setting:
    key: Key
    value: str | None
    source: str  # "--db", "env DORA_DB", "config file", "default", or "unset"

    @property
    def label(self) -> str:
        """How to name where the value came from in an error: a flag, a variable, a file."""
        if self.source.startswith("env "):
            return self.source.removeprefix("env ")
        if self.source == "config file":
            return f"'{self.key.name}' in the config file"
        return self.key.flag or self.key.env[0]

    def shown(self) -> str:
        """The value as it may be printed: secrets hidden, credentials in URLs masked."""
        if self.value is None:
            return ""
        return "***" if self.key.secret else scrub(self.value)


def config_path(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    if env.get("DORA_CONFIG"):
        return Path(env["DORA_CONFIG"]).expanduser()
    import platformdirs

    return platformdirs.user_config_path("dora", appauthor=False) / "config.toml"


def default_db_path() -> Path:
    import platformdirs

    return platformdirs.user_data_path("dora", appauthor=False) / "dora.db"


class Settings:
    """The effective settings for one run, and where each came from.

    A problem in the config file is a ``ConfigError`` as soon as a setting is asked for;
    ``lenient`` settings pass over the values in trouble instead, and list them in
    ``file_problems``."""

    def __init__(
        self,
        flags: Mapping[str, str | None] | None = None,
        env: Mapping[str, str] | None = None,
        *,
        lenient: bool = False,
    ) -> None:
        self._flags = dict(flags or {})
        for name, value in self._flags.items():
            if value is not None and not value.strip():
                raise UsageError(f"{KEYS[name].flag}: must not be empty")
        self._env = os.environ if env is None else env
        self.path = config_path(self._env)
        self._lenient = lenient
        self._file: tuple[dict[str, str], list[FileProblem]] | None = None

    def get(self, name: str) -> str | None:
        return self.setting(name).value

    def setting(self, name: str) -> Setting:
        key = KEYS[name]
        # values are trimmed: a stray space must not name a different store or service
        if (flag := self._flags.get(name)) is not None:
            return Setting(key, flag.strip(), key.flag)
        for var in key.env:
            if value := self._env.get(var, "").strip():  # set but blank counts as unset
                return Setting(key, value, f"env {var}")
        values = self._read()[0] if self._lenient else self.file
        if name in values:
            return Setting(key, values[name].strip(), "config file")
        if (default := _default(name)) is not None:
            return Setting(key, default, "default")
        return Setting(key, None, "unset")

    def all(self) -> list[Setting]:
        return [self.setting(name) for name in KEYS]

    @property
    def path_source(self) -> str:
        return "env DORA_CONFIG" if self._env.get("DORA_CONFIG") else "default"

    @property
    def file(self) -> dict[str, str]:
        """The config file's settings, read once; an absent file is an empty one. Raises
        ``ConfigError`` for its first problem."""
        values, problems = self._read()
        if problems:
            raise ConfigError(f"config file {self.path}: {problems[0].message}")
        return values

    @property
    def file_problems(self) -> list[FileProblem]:
        return self._read()[1]

    def _read(self) -> tuple[dict[str, str], list[FileProblem]]:
        if self._file is None:
            self._file = self._read_file()
        return self._file

    def _read_file(self) -> tuple[dict[str, str], list[FileProblem]]:
        """The file's valid settings, and its problems (the whole file's, or each value's)."""
        try:
            handle = self.path.open("rb")
        except FileNotFoundError:
            return {}, []
        except OSError as exc:
            return {}, [FileProblem(None, str(exc.strerror))]
        if sys.version_info >= (3, 11):
            import tomllib
        else:  # pragma: no cover
            import tomli as tomllib
        with handle:
            try:
                data = tomllib.load(handle)
            except tomllib.TOMLDecodeError as exc:
                return {}, [FileProblem(None, f"invalid TOML: {exc}")]
            except RecursionError:
                return {}, [FileProblem(None, "nested too deeply")]
            except UnicodeDecodeError:
                return {}, [FileProblem(None, "not UTF-8 text")]
            except OSError as exc:  # e.g. the path is a directory
                return {}, [FileProblem(None, str(exc.strerror))]
        settings: dict[str, str] = {}
        problems: list[FileProblem] = []
        for name, value in data.items():
            if name in KEYS and KEYS[name].secret:
                variables = " or ".join(KEYS[name].env)
                problems.append(FileProblem(None, f"'{name}' is a secret; set {variables} instead"))
            elif name not in KEYS:
                known = ", ".join(key.name for key in KEYS.values() if not key.secret)
                problems.append(FileProblem(None, f"unknown setting '{name}' (known: {known})"))
            elif (text := _text(KEYS[name], value)) is None:
                problems.append(FileProblem(name, _wrong_type(KEYS[name], value)))
            elif not text.strip():
                problems.append(FileProblem(name, f"'{name}' must not be empty"))
            else:
                settings[name] = text
        return settings, problems


def _text(key: Key, value: object) -> str | None:
    """A config file's value as a setting's text: a string, or for a number of seconds, a
    TOML integer or float as well (never a boolean, which Python counts as a number)."""
    if isinstance(value, str):
        return value
    if key.seconds and isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return None


def _wrong_type(key: Key, value: object) -> str:
    if not key.seconds:
        return f"'{key.name}' must be a string in quotes"
    if isinstance(value, bool):
        return f"'{key.name}' must be a number of seconds, such as 60, not {str(value).lower()}"
    return f"'{key.name}' must be a number of seconds, such as 60"
