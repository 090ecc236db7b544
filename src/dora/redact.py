"""Keeping credentials out of events, the store and everything printed.

CI systems put tokens in remote URLs (``https://gitlab-ci-token:TOKEN@gitlab.com/...``,
``https://x-access-token:TOKEN@github.com/...``, or a bare token as the user name), and
database URLs carry passwords. A URL's user-info is never needed to identify a repository,
so ``strip_credentials`` removes it; ``mask_password`` keeps the user of a database URL
readable; ``scrub`` cleans any free text (log lines, error messages) that may quote a URL.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

# scheme://userinfo@  ->  the user-info part, up to the last "@" before the host
_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^/?#\s]*@)")


def strip_credentials(url: str) -> str:
    """``url`` with any user name and password removed from scheme URLs.

    The scp-like SSH form (``git@github.com:org/repo.git``) has no password and is kept.
    Over SSH the user name is a login, not a secret, so it stays; for every other scheme
    a bare user name may be a token, so it goes too.
    """
    url = url.strip()
    if "://" not in url:
        return url
    try:
        parts = urlsplit(url)
    except ValueError:
        return _USERINFO.sub(r"\g<scheme>", url)
    if "@" not in parts.netloc:
        return url
    host = parts.netloc.rpartition("@")[2]
    if parts.scheme in ("ssh", "git+ssh", "ssh+git") and parts.username and not parts.password:
        return url
    if parts.scheme in ("ssh", "git+ssh", "ssh+git") and parts.username:
        host = f"{parts.username}@{host}"
    return urlunsplit(parts._replace(netloc=host))


def mask_password(url: str) -> str:
    """``url`` with its password replaced by ``***`` (for showing a database URL)."""
    if "://" not in url or "@" not in url:
        return url
    return _USERINFO.sub(_mask_userinfo, url)


def _mask_userinfo(match: re.Match[str]) -> str:
    user, sep, _password = match["userinfo"][:-1].partition(":")
    return f"{match['scheme']}{user}{':***' if sep else ''}@"


def scrub(text: str) -> str:
    """Free text with the password of every URL in it masked."""
    if "@" not in text:
        return text
    return _USERINFO.sub(_mask_scrub, text)


def _mask_scrub(match: re.Match[str]) -> str:
    user, sep, _password = match["userinfo"][:-1].partition(":")
    # a lone user-info part may itself be a token: mask it unless it looks like a login
    if not sep and not re.fullmatch(r"[a-z_][a-z0-9_.-]{0,31}", user):
        return f"{match['scheme']}***@"
    return f"{match['scheme']}{user}{':***' if sep else ''}@"
