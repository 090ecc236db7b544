"""Text that people read: what may be in a name, and how to show what may not.

A name (a service, team, environment, version, severity, incident name or tag) is shown in
terminals, Markdown summaries and spreadsheets. Characters that are not seen but change
what is seen let one name pass for another: bidirectional controls (U+202A-U+202E,
U+2066-U+2069) reorder the text around them, zero-width and other format characters
(Unicode category Cf) hide inside it, and control characters (Cc, C0 and C1: the C1
U+009B starts a terminal escape sequence) and line or paragraph separators (Zl, Zp) break
lines and tables. ``hidden`` finds them; ``visible`` shows each as ``<U+202E>``, for text
stored before dora refused them.

Spaces of other widths (Zs), private-use characters (Co) and characters this Python's
Unicode database does not know yet (Cn, such as the newest emoji) are visible, and kept.
"""

from __future__ import annotations

import unicodedata

#: The categories of characters a name may not hold.
HIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


def hidden(text: str) -> str | None:
    """The first character of ``text`` that is not seen but changes what is, or None."""
    if text.isprintable():  # the common case, at C speed: no Cc, Cf, Zl, Zp or Cs at all
        return None
    return next((char for char in text if unicodedata.category(char) in HIDDEN_CATEGORIES), None)


def describe(char: str) -> str:
    """``U+202E RIGHT-TO-LEFT OVERRIDE``: a character named so that it can be seen."""
    name = unicodedata.name(char, "")
    return f"U+{ord(char):04X} {name}".rstrip()


def visible(text: str) -> str:
    """``text`` with each hidden character shown as ``<U+202E>``."""
    if text.isprintable():
        return text
    return "".join(
        f"<U+{ord(char):04X}>" if unicodedata.category(char) in HIDDEN_CATEGORIES else char
        for char in text
    )


def plain(text: str) -> str:
    """``text`` without its hidden characters: for names that come from another tool, where
    a zero-width space or a direction mark is noise to drop, not a reason to refuse."""
    if text.isprintable():
        return text
    return "".join(char for char in text if unicodedata.category(char) not in HIDDEN_CATEGORIES)
