"""Settings, each from the first place that gives it: flag > environment > config file > default.

The config file is TOML at ``$DORA_CONFIG``, or ``config.toml`` in the platform's user
config directory (``~/.config/dora/config.toml`` on Linux)::

    db = "/var/lib/dora/dora.db"
    service = "api"
    env = "prod"
    team = "payments"
    retry_budget = 60

Every value is a string in quotes, except ``retry_budget``, a number of seconds (a string
such as ``"60"`` works too).
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
        Key("site", "", ("DATADOG_SITE", "DD_SITE"), "Datadog site, e.g. datadoghq.eu"),
        Key("api_url", "", ("DORA_API_URL",), "a Datadog-compatible API instead of the site"),
        Key("api_key", "", ("DATADOG_API_KEY", "DD_API_KEY"), "Datadog API key", secret=True),
    )
}


def _default(name: str) -> str | None:
    if name == "db":
        return str(default_db_path())
    return {"backend": "local", "retry_budget": "30"}.get(name)


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
    """The effective settings for one run, and where each came from."""

    def __init__(
        self, flags: Mapping[str, str | None] | None = None, env: Mapping[str, str] | None = None
    ) -> None:
        self._flags = dict(flags or {})
        for name, value in self._flags.items():
            if value is not None and not value.strip():
                raise UsageError(f"{KEYS[name].flag}: must not be empty")
        self._env = os.environ if env is None else env
        self.path = config_path(self._env)
        self._file: dict[str, str] | None = None

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
        if name in self.file:
            return Setting(key, self.file[name].strip(), "config file")
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
        """The config file's settings, read once; an absent file is an empty one."""
        if self._file is None:
            self._file = self._read_file()
        return self._file

    def _read_file(self) -> dict[str, str]:
        try:
            handle = self.path.open("rb")
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise ConfigError(f"config file {self.path}: {exc.strerror}") from None
        if sys.version_info >= (3, 11):
            import tomllib
        else:  # pragma: no cover
            import tomli as tomllib
        with handle:
            try:
                data = tomllib.load(handle)
            except tomllib.TOMLDecodeError as exc:
                raise ConfigError(f"config file {self.path}: invalid TOML: {exc}") from None
            except UnicodeDecodeError:
                raise ConfigError(f"config file {self.path}: not UTF-8 text") from None
            except OSError as exc:  # e.g. the path is a directory
                raise ConfigError(f"config file {self.path}: {exc.strerror}") from None
        settings: dict[str, str] = {}
        for name, value in data.items():
            if name in KEYS and KEYS[name].secret:
                variables = " or ".join(KEYS[name].env)
                raise ConfigError(
                    f"config file {self.path}: '{name}' is a secret; set {variables} instead"
                )
            if name not in KEYS:
                known = ", ".join(key.name for key in KEYS.values() if not key.secret)
                raise ConfigError(
                    f"config file {self.path}: unknown setting '{name}' (known: {known})"
                )
            if (text := _text(KEYS[name], value)) is None:
                raise ConfigError(f"config file {self.path}: {_wrong_type(KEYS[name], value)}")
            if not text.strip():
                raise ConfigError(f"config file {self.path}: '{name}' must not be empty")
            settings[name] = text
        return settings


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
