"""Keeping credentials out of events, the store and everything printed.

CI systems put tokens in remote URLs (``https://gitlab-ci-token:TOKEN@gitlab.com/...``,
``https://x-access-token:TOKEN@github.com/...``, or a bare token as the user name), and
database URLs carry passwords. Two functions, one reading of a URL:

* ``strip_credentials`` removes the user-info (and any query or fragment) from a URL that
  identifies a repository: nothing secret is needed for that;
* ``scrub`` masks the user-info and secret query values of every URL inside free text (log
  lines, error messages, settings shown to the user, free-text fields of an event).

The user-info of a URL is everything between ``://`` and the last ``@`` of its authority
(which ends at the first ``/``, ``?`` or ``#``). A password may itself hold ``/``, ``?`` or
``#`` when a tool did not escape it, cutting the authority short; so when the authority has
no ``@``, the first ``@`` after it still ends the user-info if what precedes it reads as
``user:password`` rather than ``host:port/path``.
"""

from __future__ import annotations

import re

_SCHEME_URL = re.compile(r"\b([A-Za-z][A-Za-z0-9+.-]*)://(\S+)")
_AUTHORITY_END = re.compile(r"[/?#]")
_USER_AND_PASSWORD = re.compile(r"[^/?#:@]+:")
# a host with a port: a dotted name, localhost or an IP literal, then up to five digits
_HOST_AND_PORT = re.compile(
    r"(?:localhost|[^/?#:@]*\.[^/?#:@]*|\[[0-9A-Fa-f:.]+\]):[0-9]{1,5}(?:[/?#]|$)"
)
_SECRET_QUERY = re.compile(
    r"([?&;][^=&;#\s]*(?:pass|token|secret|key|auth|signature|sig)[^=&;#\s]*=)[^&;#\s]*",
    re.IGNORECASE,
)
_SSH_SCHEMES = ("ssh", "git+ssh", "ssh+git")


def _userinfo_end(rest: str) -> int:
    """Index in ``rest`` (what follows ``://``) of the ``@`` that ends the user-info, or -1."""
    cut = _AUTHORITY_END.search(rest)
    authority = rest[: cut.start()] if cut else rest
    if "@" in authority:
        return authority.rfind("@")
    # No "@" in the authority: an unescaped "/", "?" or "#" in a password may have cut it
    # short. "user:secret/more@host/..." reads so; "host:8443/path/@x" does not.
    at = rest.find("@")
    if at < 0:
        return -1
    candidate = rest[:at]
    if _USER_AND_PASSWORD.match(candidate) and not _HOST_AND_PORT.match(candidate):
        return at
    return -1


def strip_credentials(url: str) -> str:
    """``url`` without user name, password, query or fragment.

    The scp-like SSH form (``git@github.com:org/repo.git``) has no password and is kept.
    Over SSH the user name is a login, not a secret, so it stays; for every other scheme a
    bare user name may be a token, so it goes too.
    """
    url = url.strip()
    match = _SCHEME_URL.fullmatch(url)
    if not match:
        return url
    scheme, rest = match[1], match[2]
    end = _userinfo_end(rest)
    kept_user = ""
    if end >= 0:
        user = rest[:end].partition(":")[0]
        if scheme.lower() in _SSH_SCHEMES and user:
            kept_user = f"{user}@"
        rest = rest[end + 1 :]
    rest = re.split(r"[?#]", rest, maxsplit=1)[0]
    return f"{scheme}://{kept_user}{rest}"


def scrub(text: str) -> str:
    """``text`` with the user-info and secret query values of every URL in it masked."""
    if "://" not in text:
        return text
    return _SCHEME_URL.sub(_mask, text)


def _mask(match: re.Match[str]) -> str:
    scheme, rest = match[1], match[2]
    end = _userinfo_end(rest)
    if end >= 0:
        user, colon, _password = rest[:end].partition(":")
        # keep the user beside a masked password; a lone user-info may be a token itself
        rest = (f"{user}:***@" if colon and user else "***@") + rest[end + 1 :]
    rest = _SECRET_QUERY.sub(r"\1***", rest)
    return f"{scheme}://{rest}"
