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


# --- every form git accepts as a remote ---------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("git@github.com:x/y.git?token=ghp_SECRET", "git@github.com:x/y.git"),
        ("git@github.com:x/y.git#ghp_SECRET", "git@github.com:x/y.git"),
        ("user:ghp_SECRET@github.com:x/y.git", "github.com:x/y.git"),
        ("git:ghp_SECRET@github.com:x/y.git", "github.com:x/y.git"),
        ("deploy:pa/ss:ghp_SECRET@git.example.com:g/p.git", "git.example.com:g/p.git"),
        ("ghp_SECRET0123456789abcdefghijklmnopqrstu@github.com:x/y.git", "github.com:x/y.git"),
        ("glpat-SECRET@gitlab.com:g/p.git", "gitlab.com:g/p.git"),
        ("github.com:x/y.git?private_token=ghp_SECRET", "github.com:x/y.git"),
        ("git@[::1]:x/y.git?token=ghp_SECRET", "git@[::1]:x/y.git"),
        ("ssh://ghp_SECRET0123456789abcdefghijklmnopqrstu@github.com/x/y", "ssh://github.com/x/y"),
        (
            "persistent-https::https://u:ghp_SECRET@host.example/x",
            "persistent-https::https://host.example/x",
        ),
        (
            "codecommit::https://u:ghp_SECRET@h.example/r?token=ghp_SECRET",
            "codecommit::https://h.example/r",
        ),
    ],
    ids=[
        "scp-query",
        "scp-fragment",
        "scp-user-password",
        "scp-login-password",
        "scp-password-with-slash-and-colon",
        "scp-token-as-user",
        "scp-gitlab-token-as-user",
        "scp-no-user-query",
        "scp-ipv6-query",
        "ssh-token-as-user",
        "remote-helper",
        "remote-helper-query",
    ],
)
def test_scp_like_and_helper_remotes_lose_their_credentials(url, expected):
    result = strip_credentials(url)

    assert result == expected
    assert "SECRET" not in result


@pytest.mark.parametrize(
    "url",
    [
        "git@github.com:o/r.git",
        "deploy@git.example.com:/srv/r.git",
        "github.com:org/repo@v1",
        "myhost:repo.git",
        "./relative:path",
        "/srv/git/with:colon.git",
        "C:\\repos\\r",
        "file:///srv/git/r.git",
    ],
)
def test_remotes_without_secrets_are_kept_as_git_reads_them(url):
    assert strip_credentials(url) == url


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "remote user:ghp_SECRET@github.com:x/y.git failed",
            "remote user:***@github.com:x/y.git failed",
        ),
        (
            "fetch git@github.com:x/y.git?token=ghp_SECRET done",
            "fetch git@github.com:x/y.git?token=*** done",
        ),
        (
            "clone ghp_SECRET0123456789abcdefghijklmnopqrstu@github.com:x/y.git",
            "clone ***@github.com:x/y.git",
        ),
        (
            "cloning https://ghp_SECRET0123456789abcdefghijklmnopqrstu:x-oauth-basic@github.com/o/r",
            "cloning https://***@github.com/o/r",
        ),
    ],
)
def test_scrub_masks_scp_like_remotes_and_token_user_names_in_text(text, expected):
    result = scrub(text)

    assert result == expected
    assert "SECRET" not in result
