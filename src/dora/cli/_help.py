"""How every command's ``--help`` reads: like gh's or pipx's, in Typer's rich layout.

Typer's rich help is kept (usage, description, option panels), with four changes made here
once for every command, through ``Typer``, the app class every command module uses:

- a flag shows nothing after it (Typer 0.29 shows ``<bool>``, as if it took a value);
- every value shows a word (``TIME``, ``NAME``, ``ndjson|csv``, ``FILE...``), never a
  Python type (``<str>``, ``<list[str]>``);
- the lines after ``Examples:`` in a command's docstring come out exactly as written, one
  per line, never wrapped at any width, so that each can be pasted into a shell; they
  follow the options, and the epilog follows them;
- where Typer's table of options would cut a word at the terminal's width (its help column
  squeezed beside a long flag and value), each option is stacked over its help instead.

Groups also load their subcommands lazily (``Typer(lazy=...)``): a command's module is
imported, and its options built, only when that command runs or a help or completion lists
it, so that ``dora deployment`` in a CI step does not pay for ``dora metrics``.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import re
import textwrap
from collections.abc import Callable, Iterator, Mapping
from enum import Enum
from typing import Any, ClassVar, get_args, get_origin

import typer
from typer import _click  # Typer's own Click: the types its help methods take
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption
from typer.main import get_command_from_info, get_group_from_info
from typer.models import CommandInfo, TyperInfo

#: The word shown for a value of each type when an option names none (``metavar``).
_WORDS: dict[Any, str] = {str: "TEXT", int: "N", float: "NUMBER"}
_EXAMPLES = re.compile(r"^Examples?:[ \t]*$", re.MULTILINE)


class _Option(TyperOption):
    def display_type_rich(self, ctx: _click.Context) -> str | None:
        if self.is_flag or self.count:
            return None
        if self.metavar is not None:
            return self.metavar
        described = self.type_descriptor
        if described.is_choice and described.choices:
            return "|".join(
                str(c.value) if isinstance(c, Enum) else str(c) for c in described.choices
            )
        annotation: Any = described.annotation
        if get_origin(annotation) is list:
            (annotation,) = get_args(annotation)
        return _WORDS.get(annotation, (self.name or "value").upper())


class _Argument(TyperArgument):
    """Shown by its metavar alone (``FILE...``, ``ID``), in the usage line and the panel."""

    @property
    def display_name_raw(self) -> str:
        word = self.metavar or (self.name or "value").upper()
        return f"{word}..." if self.nargs != 1 else word

    def display_type_rich(self, ctx: _click.Context) -> str | None:
        return None

    def get_usage_pieces(self, ctx: _click.Context) -> list[str]:
        return [self.display_name_raw if self.required else f"[{self.display_name_raw}]"]


def _plain(param: Any) -> Any:
    """``param``, shown as this module says. Typer makes its parameters itself, with no way
    to choose their class: the help classes add no state, so a parameter is given one in
    place."""
    if isinstance(param, TyperOption) and not isinstance(param, _Option):
        param.__class__ = _Option
    elif isinstance(param, TyperArgument) and not isinstance(param, _Argument):
        if param.metavar is None:  # else rich help adds a second "..."
            param.metavar = (param.name or "value").upper()
        param.__class__ = _Argument
    return param


def split_examples(help: str | None) -> tuple[str | None, tuple[str, ...]]:
    """A docstring's prose, and its last part from ``Examples:`` on, as lines to print.

    That part is headings (``Examples:``, ``A config file:``), each followed by its
    indented lines, which are printed as they are written, two spaces in."""
    if not help:
        return help, ()
    text = inspect.cleandoc(help)
    found = _EXAMPLES.search(text)
    if found is None:
        return text, ()
    lines: list[str] = []
    for line in text[found.start() :].splitlines():
        if not line.strip():
            if lines and lines[-1] and not _is_heading(lines[-1]):
                lines.append("")  # between two parts, once
        elif line[0].isspace():
            lines.append(line)
        else:
            lines.append(line.rstrip())
    while lines and not lines[-1]:
        lines.pop()
    block = textwrap.dedent("\n".join(line for line in lines if not _is_heading(line)))
    examples = iter(block.splitlines())
    shown = [line if _is_heading(line) else "  " + next(examples) for line in lines]
    return text[: found.start()].rstrip(), tuple(line.rstrip() for line in shown)


def _is_heading(line: str) -> bool:
    return bool(line) and not line[0].isspace()


class _Help(_click.Command):
    """What the help of commands and groups shares; first in their bases."""

    examples: tuple[str, ...] = ()
    footer: str | None = None
    rich_markup_mode: Any

    def __init__(self, *args: Any, **attrs: Any) -> None:
        attrs["help"], self.examples = split_examples(attrs.get("help"))
        self.footer, attrs["epilog"] = attrs.get("epilog"), None
        super().__init__(*args, **attrs)

    def get_params(self, ctx: _click.Context) -> list[_click.Parameter]:
        # here, not in __init__: Typer adds the help and completion options later
        return [_plain(param) for param in super().get_params(ctx)]

    def format_help(self, ctx: _click.Context, formatter: _click.HelpFormatter) -> None:
        """Typer's help (its options stacked on a narrow terminal), then the examples, then
        the epilog."""
        with _stacked_if_cut(self, ctx):
            super().format_help(ctx, formatter)
        if self.rich_markup_mode is None:  # plain Click help, into the formatter
            if self.examples:
                formatter.write("".join(f"\n {line}" for line in self.examples) + "\n")
            if self.footer:
                formatter.write_paragraph()
                formatter.write_text(self.footer)
            return
        from rich.console import Console
        from rich.padding import Padding
        from rich.text import Text
        from typer import rich_utils

        console = Console(
            highlight=False,
            color_system=rich_utils.COLOR_SYSTEM,
            force_terminal=rich_utils.FORCE_TERMINAL,
            width=rich_utils.MAX_WIDTH,
        )
        if self.examples:
            console.print()
        for line in self.examples:
            if _is_heading(line):
                console.print(Text(f" {line}", style="bold"))
            else:  # never wrapped: a terminal narrower than the line folds it for show only
                console.print(Text(f" {line}" if line else ""), soft_wrap=True)
        if self.footer:
            console.print(Padding(Text(self.footer), (1, 1, 0, 1)))


@contextlib.contextmanager
def _stacked_if_cut(command: _Help, ctx: _click.Context) -> Iterator[None]:
    """Within, Typer's rich help prints its panels of options stacked (each option's names
    and value on a line, its help beneath) when its table would cut a word at the
    terminal's width: beside a long flag and value, the help column can be left a dozen
    characters, and a longer word (a time, a variable's name) loses its end to "…".

    Typer draws each panel with one function of its ``rich_utils``, found there when the
    help is printed: each panel is drawn once as Typer would, off screen at the same
    width, and when one cuts, that function is swapped for ``_stacked_panel`` for the
    while, so that every panel of the page is stacked alike."""
    from typer import rich_utils

    table = getattr(rich_utils, "_print_options_panel", None)
    if command.rich_markup_mode is None or table is None or not _cuts(table, command, ctx):
        yield
        return
    rich_utils._print_options_panel = _stacked_panel
    try:
        yield
    finally:
        rich_utils._print_options_panel = table


def _cuts(table: Callable[..., None], command: _Help, ctx: _click.Context) -> bool:
    """Whether Typer's table cuts a word of the arguments' or the options' panel: ends it
    with "…" (names, help), or folds a value's word onto the next line (its column)."""
    import io

    from rich.console import Console
    from typer import rich_utils

    width = rich_utils._get_rich_console().width
    shown = [p for p in command.get_params(ctx) if not getattr(p, "hidden", False)]
    for kind in (TyperArgument, TyperOption):
        params = [p for p in shown if isinstance(p, kind)]
        if params:
            drawn = io.StringIO()
            console = Console(width=width, file=drawn, color_system=None)
            markup = command.rich_markup_mode
            table(name="", params=params, ctx=ctx, markup_mode=markup, console=console)
            text = drawn.getvalue()
            if "\u2026" in text:  # rich's ellipsis
                return True
            if any(_word(param, ctx) not in text for param in params):
                return True
    return False


def _word(param: TyperOption | TyperArgument, ctx: _click.Context) -> str:
    """The word shown for a parameter's value (``TIME``, ``ndjson|csv``), or ""."""
    return param.display_type_rich(ctx=ctx) or ""


def _stacked_panel(
    *,
    name: str,
    params: list[TyperOption] | list[TyperArgument],
    ctx: _click.Context,
    markup_mode: Any,
    console: Any,
) -> None:
    """A panel of options as Typer draws it, each option stacked: ``* --repo OWNER/NAME``,
    then its help, defaults and environment variable four columns in."""
    from rich.console import Group
    from rich.padding import Padding
    from rich.panel import Panel
    from rich.text import Text
    from typer import rich_utils

    shown: list[Any] = []
    for param in params:
        line = Text()
        line.append(
            f"{rich_utils.REQUIRED_SHORT_STRING} " if param.required else "  ",
            style=rich_utils.STYLE_REQUIRED_SHORT,
        )
        if isinstance(param, TyperArgument):
            line.append_text(rich_utils.highlighter(param.display_name_raw))
        else:
            names = sorted(param.opts, key=lambda opt: not opt.startswith("--"))
            line.append_text(rich_utils.highlighter(", ".join(names)))
            if param.secondary_opts:
                line.append(" / ")
                line.append_text(rich_utils.negative_highlighter(", ".join(param.secondary_opts)))
        if word := _word(param, ctx):
            line.append(" ")
            line.append(word, style=rich_utils.STYLE_TYPES)
        if bounds := param._get_number_range_help_str():
            line.append(rich_utils.RANGE_STRING.format(bounds), style=rich_utils.STYLE_TYPES)
        shown.append(line)
        shown.append(
            Padding(
                rich_utils._get_parameter_help(param=param, ctx=ctx, markup_mode=markup_mode),
                (0, 0, 0, 4),
            )
        )
    if shown:
        console.print(
            Panel(
                Group(*shown),
                border_style=rich_utils.STYLE_OPTIONS_PANEL_BORDER,
                title=name,
                title_align=rich_utils.ALIGN_OPTIONS_PANEL,
            )
        )


class Command(_Help, TyperCommand):
    """A command with this module's help."""


class Group(_Help, TyperGroup):
    """A group of commands with this module's help, and subcommands made when first asked
    for (``lazy``)."""

    #: subcommands made only when asked for, in the order listed: name -> "module:attribute"
    #: of a ``Typer`` app (a group) or of a command function
    lazy: ClassVar[Mapping[str, str]] = {}

    def list_commands(self, ctx: _click.Context) -> list[str]:
        return list(dict.fromkeys([*self.lazy, *super().list_commands(ctx)]))

    def get_command(self, ctx: _click.Context, cmd_name: str) -> _click.Command | None:
        if cmd_name not in self.commands and cmd_name in self.lazy:
            self.add_command(_load(cmd_name, self.lazy[cmd_name], self.rich_markup_mode))
        return super().get_command(ctx, cmd_name)

    def resolve_command(
        self, ctx: _click.Context, args: list[str]
    ) -> tuple[str | None, _click.Command | None, list[str]]:
        if args and args[0] not in self.commands and args[0] not in self.lazy:
            for name in self.lazy:  # not a command: "did you mean" looks at every one
                self.get_command(ctx, name)
        return super().resolve_command(ctx, args)


def _load(name: str, target: str, rich_markup_mode: Any) -> _click.Command:
    """The command ``name`` from ``target`` ("module:attribute"), made as Typer makes the
    commands registered on an app."""
    module, _, attribute = target.partition(":")
    found = getattr(importlib.import_module(module), attribute)
    if isinstance(found, typer.Typer):
        return get_group_from_info(
            TyperInfo(found),
            pretty_exceptions_short=found.pretty_exceptions_short,
            suggest_commands=found.suggest_commands,
            rich_markup_mode=rich_markup_mode,
        )
    return get_command_from_info(
        CommandInfo(name=name, cls=Command, callback=found),
        pretty_exceptions_short=True,
        rich_markup_mode=rich_markup_mode,
    )


class Typer(typer.Typer):
    """``typer.Typer`` whose groups and commands have this module's help; ``lazy`` names
    the subcommands its group makes only when asked for (``Group.lazy``)."""

    def __init__(
        self,
        *,
        cls: type[TyperGroup] | None = None,
        lazy: Mapping[str, str] | None = None,
        **attrs: Any,
    ) -> None:
        group = cls or Group
        if lazy:
            group = type(group.__name__, (group,), {"lazy": dict(lazy)})
        super().__init__(cls=group, **attrs)

    def command(  # type: ignore[override]
        self, name: str | None = None, *, cls: type[TyperCommand] | None = None, **attrs: Any
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        return super().command(name, cls=cls or Command, **attrs)
