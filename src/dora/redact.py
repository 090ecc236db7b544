"""Keeping credentials out of events, the store and everything printed.

CI systems put tokens in remote URLs (``https://gitlab-ci-token:TOKEN@gitlab.com/...``,
``https://x-access-token:TOKEN@github.com/...``, or a bare token as the user name), and
database URLs carry passwords. Two functions, one reading of a URL:

* ``strip_credentials`` removes the user-info (and any query or fragment) from a URL that
  identifies a repository: nothing secret is needed for that;
* ``scrub`` masks the user-info and secret query values of every URL inside free text (log
  lines, error messages, settings shown to the user, free-text fields of an event).

Both read every form git accepts as a remote: a URL with a scheme (``https://``,
``ssh://``, ``git://``, ``file://``...); git's scp-like form ``[user@]host:path``, which
git recognises when no ``/`` comes before the first ``:`` (and which people also write
as ``user:password@host:path``); a remote helper's ``transport::address``; a local path.

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
# git's scp-like form: [user[:password]@]host:path, the host a name with a dot, localhost or
# a bracketed address (what tells "user:password@host:path" from "host:path@with:colon")
_HOST = (
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9-]+)+|localhost|\[[0-9A-Fa-f:.]+\])"
)
_SCP_WITH_PASSWORD = re.compile(
    rf"(?P<user>[^/:@\s]+):(?P<password>\S*)@(?P<host>{_HOST}):(?P<path>.*)"
)
_SCP = re.compile(r"(?:(?P<user>[^/:\s]+)@)?(?P<host>\[[^\]/]*\]|[^/:@\s]+):(?P<path>.*)")
# a remote helper's "transport::address" (persistent-https::https://..., codecommit::...)
_HELPER = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)::(.*)")
# scp-like remotes inside free text: the user-info and query of one are what may be secret
_SCP_IN_TEXT = re.compile(
    rf"(?<![\w@.:/+-])(?:(?P<user>[^\s/:@]+)(?::(?!//)(?P<password>[^\s@]*))?@)?(?P<host>{_HOST})"
    r":(?P<path>[^\s]*)"
)


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
    """``url`` without user name, password, query or fragment, in every form git accepts.

    Over SSH (``ssh://`` and the scp-like ``git@github.com:org/repo.git``) the user name is
    a login, not a secret, so it stays while a password goes; for every other scheme a bare
    user name may be a token, so it goes too. A local path is kept as it is.
    """
    url = url.strip()
    if helper := _HELPER.fullmatch(url):
        return f"{helper[1]}::{strip_credentials(helper[2])}"
    match = _SCHEME_URL.fullmatch(url)
    if not match:
        return _strip_scp(url)
    scheme, rest = match[1], match[2]
    end = _userinfo_end(rest)
    kept_user = ""
    if end >= 0:
        user = rest[:end].partition(":")[0]
        if scheme.lower() in _SSH_SCHEMES and _is_login(user):
            kept_user = f"{user}@"
        rest = rest[end + 1 :]
    rest = re.split(r"[?#]", rest, maxsplit=1)[0]
    return f"{scheme}://{kept_user}{rest}"


def _strip_scp(remote: str) -> str:
    """An scp-like remote (``[user[:password]@]host:path``) without password, query or
    fragment; anything else (a local path) as it is."""
    if match := _SCP_WITH_PASSWORD.fullmatch(remote):
        # SSH has no password in a remote: "user:secret@host:path" is a credential whole
        user, host, path = None, match["host"], match["path"]
    elif (match := _SCP.fullmatch(remote)) and not _is_local(remote, match["host"]):
        user, host, path = match["user"], match["host"], match["path"]
    else:
        return remote
    path = re.split(r"[?#]", path, maxsplit=1)[0]
    return f"{user}@{host}:{path}" if _is_login(user) else f"{host}:{path}"


#: How the tokens of the usual forges and chat tools begin (GitHub, GitLab, Slack).
_TOKEN_PREFIXES = re.compile(r"(?:gh[pousr]_|github_pat_|gl[a-z]{1,4}-|xox[a-z]-)")


def _is_login(user: str | None) -> bool:
    """Whether ``user`` reads as an SSH login (``git``, ``deploy``) that may be shown, rather
    than a token put where a user name goes: no known token prefix, under 20 characters."""
    return bool(user) and len(user or "") < 20 and not _TOKEN_PREFIXES.match(user or "")


def _is_local(remote: str, host: str) -> bool:
    """Whether git reads ``remote`` as a local path: a ``/`` before the first ``:`` (so no
    scp-like match at all) or, on Windows, a drive letter (``C:\\repo``)."""
    return len(host) == 1 and host.isalpha() and remote[2:3] in ("\\", "/", "")


def scrub(text: str) -> str:
    """``text`` with the user-info and secret query values of every URL in it masked,
    scp-like remotes (``user:password@host:path?token=...``) included."""
    if "://" in text:
        text = _SCHEME_URL.sub(_mask, text)
    if "@" in text or "?" in text:
        text = _SCP_IN_TEXT.sub(_mask_scp, text)
    return text


def _mask_scp(match: re.Match[str]) -> str:
    user, password, host, path = match["user"], match["password"], match["host"], match["path"]
    userinfo = ""
    if password is not None:
        userinfo = f"{user}:***@" if _is_login(user) else "***@"
    elif user is not None:
        # a login without a password is no secret (git@github.com:...); a token may be
        userinfo = f"{user}@" if _is_login(user) else "***@"
    path = _SECRET_QUERY.sub(r"\1***", path)
    return f"{userinfo}{host}:{path}"


def _mask(match: re.Match[str]) -> str:
    scheme, rest = match[1], match[2]
    end = _userinfo_end(rest)
    if end >= 0:
        user, colon, _password = rest[:end].partition(":")
        # keep a login beside a masked password; a lone user-info, or a user name that
        # reads as a token (TOKEN:x-oauth-basic@), may be the secret itself
        rest = (f"{user}:***@" if colon and _is_login(user) else "***@") + rest[end + 1 :]
    rest = _SECRET_QUERY.sub(r"\1***", rest)
    return f"{scheme}://{rest}"
