"""Database URLs: libpq decides what they mean; nothing printed carries a password."""

from __future__ import annotations

import pytest

from efir_pipeline.core.db.urls import describe_target, mask_password, redact, validate_url
from efir_pipeline.core.errors import ConfigError


@pytest.mark.parametrize(
    "url",
    [
        "postgresql:///efir?host=/run/postgresql",  # a socket folder, as psql takes it
        "postgresql://efir@/efir?host=/var/run/postgresql&port=5433",
        "postgresql://u:p%40ss@db.internal:5432/efir?sslmode=verify-full",
    ],
)
def test_valid_urls_pass_untouched(url):
    assert validate_url(url) == url


def test_other_schemes_of_postgresql_become_libpq_ones():
    assert validate_url("postgres://h/db") == "postgresql://h/db"
    assert validate_url("postgresql+psycopg2://h/db") == "postgresql://h/db"


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("mysql://x@localhost/db", "must start with postgresql://"),
        ("postgresql://x@localhost:notaport/db", "invalid port"),
        ("postgresql://h/db?connect_timeout=abc", "invalid connect_timeout"),
        ("postgresql://h", "names no database"),
        ("postgresql://u:p@ss@h/db", "write it as %40"),
    ],
)
def test_bad_urls_say_what_is_wrong(url, said):
    with pytest.raises(ConfigError, match=said):
        validate_url(url)


@pytest.mark.parametrize(
    ("url", "secret"),
    [
        ("postgresql://u:s3cret@h/db", "s3cret"),
        ("postgresql://:s3cret@h/db", "s3cret"),  # no user name
        ("postgresql://u:p@ssw0rd@h/db", "ssw0rd"),  # an unencoded @
        ("postgresql://h/db?password=s3cret&sslmode=require", "s3cret"),
    ],
)
def test_nothing_shown_carries_the_password(url, secret):
    assert secret not in mask_password(url)
    assert secret not in describe_target(url)
    try:
        validate_url(url)
    except ConfigError as exc:
        assert secret not in str(exc)


def test_driver_messages_are_scrubbed_of_every_piece_of_the_password():
    url = "postgresql://u:long@secret-part@h/db"
    message = 'could not translate host name "secret-part@h" to address'
    assert "secret-part" not in redact(message, url)
