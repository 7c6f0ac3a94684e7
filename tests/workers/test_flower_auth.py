"""Flower's gate: only the exact user and password pass, whatever characters they hold."""

from __future__ import annotations

import base64

import pytest

from workers.flower_auth import FlowerCredentials, UnsafeCredentials, parse_basic


def basic(user: str, password: str) -> str:
    """An Authorization header as a browser sends it (UTF-8, RFC 7617)."""
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


AWKWARD = [",secret", "pre,fix", "a:b:c", " spaced pass ", "pässwörd✓€", "x, y:z,,", "ü"]


@pytest.mark.parametrize("password", AWKWARD)
def test_only_the_exact_password_is_admitted(password: str) -> None:
    # Given credentials with an awkward password
    creds = FlowerCredentials("admin", password)
    # When the exact pair and every near miss (comma pieces, trimmed, prefixes) are presented
    near_misses = {
        *(piece for piece in password.split(",")),
        password.strip(),
        password[:-1],
        password + ",",
        "",
    } - {password}
    # Then only the exact pair gets in
    assert creds.admits(basic("admin", password))
    for miss in near_misses:
        assert not creds.admits(basic("admin", miss)), miss
    for piece in password.split(","):
        # Flower's own parser would have turned each comma piece into a stored credential
        assert not creds.admits("Basic " + base64.b64encode(piece.encode()).decode())
    assert not creds.admits(basic("Admin", password))
    assert not creds.admits(None)


@pytest.mark.parametrize(
    ("user", "password", "problem"),
    [
        ("", "pw", "USER is empty"),
        ("admin", "", "PASSWORD is empty"),
        ("ad:min", "pw", "contains ':'"),
        ("admin", "pass\nword", "control character"),
        ("admin", "tab\there", "control character"),
        ("admin", "cafe\u0301", "NFC"),
    ],
)
def test_credentials_that_cannot_be_sent_exactly_are_refused(
    user: str, password: str, problem: str
) -> None:
    # Given / When credentials that basic auth cannot carry exactly / Then they are refused
    with pytest.raises(UnsafeCredentials, match=problem):
        FlowerCredentials(user, password)


def test_the_password_never_shows_in_the_repr() -> None:
    # Given credentials / When printed / Then the password is masked
    assert "hunter2" not in repr(FlowerCredentials("admin", "hunter2"))


@pytest.mark.parametrize(
    "header",
    ["Bearer abc", "Basic", "Basic !!!notbase64", "Basic " + base64.b64encode(b"nocolon").decode()],
)
def test_malformed_authorization_headers_parse_to_nothing(header: str) -> None:
    # Given a malformed header / When parsed / Then there are no credentials in it
    assert parse_basic(header) is None
