"""Database URLs: what libpq accepts, and what may be shown of one.

libpq, not ``urllib``, decides what a URL means, so validation asks libpq's own
parser (``psycopg.conninfo``) and never rebuilds the URL: a socket URL such as
``postgresql:///efir?host=/run/postgresql`` passes through untouched. Anything
printed names the host, port, database and user, never the password: masking
works on libpq's reading of the URL, and :func:`redact` scrubs the password out of
any message a driver produced (libpq quotes host names, and a password with an
unencoded ``@`` would otherwise spill into one).
"""

from __future__ import annotations

import contextlib
import re

import psycopg
from psycopg.conninfo import conninfo_to_dict

from efir_pipeline.core.errors import ConfigError

SCHEMES = ("postgresql", "postgres", "postgresql+psycopg", "postgresql+psycopg2")
_SCHEME = re.compile(r"^([a-z][a-z0-9+.-]*)://", re.IGNORECASE)
_INTEGER_PARAMETERS = ("port", "connect_timeout", "keepalives", "keepalives_idle")


def validate_url(url: str) -> str:
    """A libpq URL (``postgresql://...``), or ConfigError saying what is wrong.

    The password is never part of the message.
    """
    text = url.strip()
    match = _SCHEME.match(text)
    if not match or match.group(1).lower() not in SCHEMES:
        shown = match.group(1) if match else "no scheme"
        raise ConfigError(f"DATABASE_URL must start with postgresql:// (got {shown!r})")
    libpq = as_libpq(text)
    try:
        params = conninfo_to_dict(libpq)
    except psycopg.ProgrammingError as exc:
        raise ConfigError(f"DATABASE_URL is malformed ({redact(str(exc), libpq)})") from None
    if "@" in params.get("host", ""):
        raise ConfigError(
            "DATABASE_URL has an @ in its password or user name: write it as %40 "
            f"({describe_target(libpq)})"
        )
    for name in _INTEGER_PARAMETERS:
        value = params.get(name)
        if value is not None and not all(p.strip().isdigit() for p in value.split(",")):
            raise ConfigError(f"DATABASE_URL has an invalid {name} {value!r}")
    if not params.get("dbname"):
        raise ConfigError(f"DATABASE_URL names no database ({describe_target(libpq)})")
    return libpq


def with_driver(url: str, driver: str) -> str:
    """``postgresql+<driver>://`` for SQLAlchemy (psycopg) or dagster-postgres (psycopg2)."""
    return _SCHEME.sub(f"postgresql+{driver}://", url.strip(), count=1)


def as_libpq(url: str) -> str:
    """The URL with the scheme libpq reads (``postgresql+psycopg://`` -> ``postgresql://``)."""
    return _SCHEME.sub("postgresql://", url.strip(), count=1)


def _userinfo(url: str) -> tuple[int, int, str]:
    """Where the authority is in ``url`` and its text (userinfo up to the *last* @)."""
    match = _SCHEME.match(url)
    start = match.end() if match else 0
    end = min([p for p in (url.find("/", start), url.find("?", start)) if p != -1] or [len(url)])
    return start, end, url[start:end]


def passwords_of(url: str) -> set[str]:
    """The password as libpq reads it and as written (they differ around an unencoded @)."""
    found = set()
    with contextlib.suppress(psycopg.ProgrammingError):
        found.add(conninfo_to_dict(as_libpq(url)).get("password") or "")
    _, _, authority = _userinfo(url)
    if "@" in authority and ":" in authority.rsplit("@", 1)[0]:
        found.add(authority.rsplit("@", 1)[0].split(":", 1)[1])
    return {p for p in found if p}


def mask_password(url: str) -> str:
    """The URL as written, with any password (userinfo or query parameter) hidden."""
    start, end, authority = _userinfo(url)
    if "@" in authority:
        userinfo, host = authority.rsplit("@", 1)
        if ":" in userinfo:
            url = f"{url[:start]}{userinfo.split(':', 1)[0]}:***@{host}{url[end:]}"
    return re.sub(r"(?i)(password=)[^&]*", r"\1***", url)


def describe_target(url: str) -> str:
    """``host:port/db (user u)`` (or the socket folder) for messages: never the password."""
    try:
        params = conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return mask_password(url)
    # An unencoded @ in a password makes libpq read its tail as the host: show none of it.
    host = (params.get("host") or "localhost").rsplit("@", 1)[-1]
    port = params.get("port") or "5432"
    db = params.get("dbname") or "?"
    user = f" (user {params['user']})" if params.get("user") else ""
    if host.startswith("/"):
        return f"socket {host} db {db}{user}"
    return f"{host}:{port}/{db}{user}"


def redact(message: str, url: str | None) -> str:
    """``message`` without the URL's password, nor any piece of it a parser split off."""
    pieces: set[str] = set()
    for secret in passwords_of(url) if url else ():
        pieces |= {secret, *(p for p in re.split(r"[@:/?&]", secret) if len(p) >= 3)}
    for piece in sorted(pieces, key=len, reverse=True):
        message = message.replace(piece, "***")
    return message
