"""Credentials never leave dora: not in events, the store, or anything printed."""

from __future__ import annotations

import pytest

from dora.redact import scrub, strip_credentials


@pytest.mark.parametrize(
    ("url", "secret", "expected"),
    [
        (
            "https://gitlab-ci-token:glcbt-abc@gitlab.com/g/p.git",
            "glcbt-abc",
            "https://gitlab.com/g/p.git",
        ),
        ("https://ghp_SECRET@github.com/o/r.git", "ghp_SECRET", "https://github.com/o/r.git"),
        ("https://x-access-token:tok@github.com/o/r", "tok", "https://github.com/o/r"),
        ("https://user:hunter2@example.com/o/r.git", "hunter2", "https://example.com/o/r.git"),
        ("http://user:hunter2@example.com/o/r.git", "hunter2", "http://example.com/o/r.git"),
        ("https://user:@example.com/o/r.git", "user", "https://example.com/o/r.git"),
        ("git://user:hunter2@example.com/o/r.git", "hunter2", "git://example.com/o/r.git"),
        ("https://user:p@ss@example.com/o/r.git", "p@ss", "https://example.com/o/r.git"),
        ("  https://u:hunter2@example.com/r.git\n", "hunter2", "https://example.com/r.git"),
    ],
    ids=[
        "gitlab-ci-token",
        "bare-token-user",
        "x-access-token",
        "user-password",
        "http",
        "empty-password",
        "git-scheme",
        "at-sign-in-password",
        "surrounding-whitespace",
    ],
)
def test_strip_credentials_removes_user_and_password(url, secret, expected):
    result = strip_credentials(url)

    assert result == expected
    assert secret not in result


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://u:hunter2@git.example.com:8443/o/r.git", "https://git.example.com:8443/o/r.git"),
        ("https://hunter2@git.example.com:8443/o/r.git", "https://git.example.com:8443/o/r.git"),
        (
            "https://u:hunter2@example.com/o/r.git?ref=main#x",
            "https://example.com/o/r.git",
        ),
    ],
)
def test_strip_credentials_keeps_port_and_path_and_drops_query_and_fragment(url, expected):
    result = strip_credentials(url)

    assert result == expected
    assert "hunter2" not in result


@pytest.mark.parametrize(
    "url",
    [
        "git@github.com:o/r.git",
        "https://github.com/o/r.git",
        "ssh://git@host/r.git",
        "ssh://git@host:2222/r.git",
        "git+ssh://git@host/r.git",
        "/srv/git/r.git",
        "",
    ],
)
def test_strip_credentials_keeps_urls_without_secrets_unchanged(url):
    assert strip_credentials(url) == url


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("ssh://git:pw-secret@host/r.git", "ssh://git@host/r.git"),
        ("ssh://git:pw-secret@host:2222/r.git", "ssh://git@host:2222/r.git"),
        ("git+ssh://git:pw-secret@host/r.git", "git+ssh://git@host/r.git"),
    ],
)
def test_strip_credentials_keeps_the_ssh_login_but_drops_its_password(url, expected):
    result = strip_credentials(url)

    assert result == expected
    assert "pw-secret" not in result


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql://user:hunter2@host:5432/db", "postgresql://user:***@host:5432/db"),
        ("postgresql://ghp_SECRETTOKEN@host:5432/db", "postgresql://***@host:5432/db"),
        ("postgresql://host:5432/db", "postgresql://host:5432/db"),
        ("mysql://root:hunter2@localhost/app?ssl=1", "mysql://root:***@localhost/app?ssl=1"),
        ("postgresql://user:@host/db", "postgresql://user:***@host/db"),
        ("/var/lib/dora/dora.db", "/var/lib/dora/dora.db"),
    ],
)
def test_scrub_keeps_the_user_beside_a_masked_password(url, expected):
    result = scrub(url)

    assert result == expected
    assert "hunter2" not in result
    assert "SECRET" not in result


def test_scrub_hides_a_database_password_containing_an_at_sign():
    # The user-info runs up to the last "@" before the host; a database password with an
    # unencoded "@" must not half-leak.
    url = "postgresql://user:hunter2@secret@host:5432/db"

    result = scrub(url)

    assert "hunter2" not in result
    assert "secret" not in result
    assert result == "postgresql://user:***@host:5432/db"


@pytest.mark.parametrize(
    ("text", "secrets", "expected"),
    [
        (
            "fatal: could not read from https://gitlab-ci-token:glcbt-abc@gitlab.com/g/p.git",
            ["glcbt-abc"],
            "fatal: could not read from https://gitlab-ci-token:***@gitlab.com/g/p.git",
        ),
        (
            "cloning https://ghp_SECRETtoken123@github.com/o/r.git failed",
            ["ghp_SECRETtoken123"],
            "cloning https://***@github.com/o/r.git failed",
        ),
        (
            "db postgresql://app:hunter2@db:5432/x and https://u:tok-9@example.com/r both down",
            ["hunter2", "tok-9"],
            "db postgresql://app:***@db:5432/x and https://u:***@example.com/r both down",
        ),
        (
            "remote is ssh://git@host/r.git",
            [],
            "remote is ssh://***@host/r.git",
        ),
        (
            "GET https://host/api?private_token=glpat-xyz&page=2 failed",
            ["glpat-xyz"],
            "GET https://host/api?private_token=***&page=2 failed",
        ),
    ],
    ids=["gitlab-token", "bare-token-user", "two-urls", "lone-user-masked", "query-token"],
)
def test_scrub_masks_passwords_inside_free_text(text, secrets, expected):
    result = scrub(text)

    assert result == expected
    for secret in secrets:
        assert secret not in result


@pytest.mark.parametrize(
    "text",
    [
        "",
        "nothing to see here",
        "deployed https://github.com/o/r.git at 09:30",
        "mail ops@example.com about it",
        "push to git@github.com:o/r.git",
    ],
)
def test_scrub_leaves_text_without_credentials_alone(text):
    assert scrub(text) == text


def test_scrub_hides_a_password_containing_an_at_sign():
    text = "connect postgresql://user:hunter2@secret@host/db failed"

    result = scrub(text)

    assert "hunter2" not in result
    assert "secret" not in result


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://user:pa/ss@github.com/a/b", "https://github.com/a/b"),
        ("https://user:ab#cd@github.com/a/b", "https://github.com/a/b"),
        ("https://user:ab?cd@github.com/a/b", "https://github.com/a/b"),
        ("https://host/a/r.git?private_token=SECRET#frag", "https://host/a/r.git"),
        ("https://github.com/org/repo@v1", "https://github.com/org/repo@v1"),
        ("https://git.example.com:8443/scope/@pkg", "https://git.example.com:8443/scope/@pkg"),
        ("https://TOKEN@gitlab.com/grp/@odd/r.git", "https://gitlab.com/grp/@odd/r.git"),
        ("https://user:SECRET@gitlab.com/g/r@v2.git", "https://gitlab.com/g/r@v2.git"),
        ("https://oauth2:SECRET@gitlab.com/g/r.git?ref=a@b", "https://gitlab.com/g/r.git"),
        ("https://user:12/SECRET@host/x", "https://host/x"),
    ],
)
def test_unescaped_password_characters_and_query_tokens_are_stripped(url, expected):
    assert strip_credentials(url) == expected
    assert scrub(url).count("pa/ss") + scrub(url).count("ab#cd") + scrub(url).count("SECRET") == 0
