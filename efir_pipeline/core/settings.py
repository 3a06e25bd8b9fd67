"""Where the database is and how long we are willing to wait for it.

Everything comes from the environment so the CLI, Dagster and the tests agree:

- ``DATABASE_URL``: a ``postgresql://`` URL. Unset means the embedded server.
- ``EFIR_DATA_DIR``: the project data folder (embedded cluster, DAGSTER_HOME).
- ``EFIR_LOCK_TIMEOUT`` / ``EFIR_STATEMENT_TIMEOUT`` / ``EFIR_REFRESH_WAIT_TIMEOUT``:
  PostgreSQL durations for refreshes.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from efir_pipeline.core.errors import ConfigError

_ACCEPTED_SCHEMES = {
    "postgres",
    "postgresql",
    "postgresql+psycopg",
    "postgresql+psycopg2",
}
# A unit is required: PostgreSQL reads a bare number as milliseconds (600 = 0.6 s).
_DURATION = re.compile(r"^\s*(\d+(\.\d+)?)\s*(us|ms|s|min|h|d)\s*$")
PROJECT_ROOT = Path(__file__).resolve().parents[2]


def validate_url(url: str) -> str:
    """Return a libpq URL (``postgresql://...``) or raise ConfigError saying what is wrong."""
    try:
        parts = urlsplit(url.strip())
    except ValueError as exc:
        raise ConfigError(f"DATABASE_URL is malformed ({exc}): {mask_password(url)}") from exc
    if parts.scheme not in _ACCEPTED_SCHEMES:
        raise ConfigError(
            f"DATABASE_URL must start with postgresql:// (got {parts.scheme or 'no scheme'!r}): "
            f"{mask_password(url)}"
        )
    try:
        parts.port  # noqa: B018 - raises on a non-numeric port
    except ValueError as exc:
        raise ConfigError(f"DATABASE_URL has an invalid port: {mask_password(url)}") from exc
    if not parts.path.strip("/") and "dbname=" not in parts.query:
        raise ConfigError(f"DATABASE_URL names no database: {mask_password(url)}")
    return urlunsplit(parts._replace(scheme="postgresql"))


def mask_password(url: str) -> str:
    """The URL with any password hidden, in the userinfo or as a query parameter."""
    url = re.sub(r"(//[^:/@]+:)[^@]*@", r"\1***@", url)
    return re.sub(r"(?i)(password=)[^&]*", r"\1***", url)


def with_driver(url: str, driver: str) -> str:
    """``postgresql+<driver>://`` for SQLAlchemy (psycopg) or dagster-postgres (psycopg2)."""
    return re.sub(r"^[a-z0-9+]+://", f"postgresql+{driver}://", url)


def describe_target(url: str) -> str:
    """Host, port and database of a URL, for error messages (never the password)."""
    parts = urlsplit(url)
    query = dict(p.split("=", 1) for p in parts.query.split("&") if "=" in p)
    host = parts.hostname or query.get("host") or "localhost"
    port = parts.port or query.get("port") or 5432
    db = parts.path.lstrip("/") or query.get("dbname", "?")
    return f"{host}:{port}/{db}" if not host.startswith("/") else f"socket {host} db {db}"


def data_dir() -> Path:
    """The project data folder: ``EFIR_DATA_DIR``, else ``.efir`` in the checkout.

    As root, a folder under /root is not used: the embedded server runs as an
    unprivileged user that cannot enter /root, and opening /root up is not ours to do.
    """
    configured = os.environ.get("EFIR_DATA_DIR")
    if configured:
        return Path(configured).expanduser().resolve()
    default = PROJECT_ROOT / ".efir"
    if hasattr(os, "geteuid") and os.geteuid() == 0 and default.is_relative_to("/root"):
        digest = hashlib.sha256(str(PROJECT_ROOT).encode()).hexdigest()[:10]
        return Path("/var/tmp") / f"efir-pipeline-{digest}"
    return default


def check_duration(name: str, value: str) -> str:
    """A positive PostgreSQL duration with a unit, checked before it reaches SET.

    Zero would switch the timeout off, and nothing may wait forever.
    """
    match = _DURATION.match(value)
    if not match or float(match.group(1)) <= 0:
        raise ConfigError(
            f"{name}={value!r} is not a positive PostgreSQL duration with a unit, "
            "such as 30s, 500ms, 5min"
        )
    return value.strip()


def duration(name: str, default: str) -> str:
    """``check_duration`` of the environment variable ``name`` (or ``default``)."""
    return check_duration(name, os.environ.get(name, default))


@dataclass(frozen=True)
class RefreshSettings:
    lock_timeout: str = "30s"
    """Waiting for PostgreSQL locks on the view itself (e.g. behind DDL)."""
    statement_timeout: str = "10min"
    """The whole refresh transaction's statements."""
    wait_timeout: str = "15min"
    """Waiting for another refresh of the same view to finish."""

    @classmethod
    def from_env(cls) -> RefreshSettings:
        return cls(
            lock_timeout=duration("EFIR_LOCK_TIMEOUT", cls.lock_timeout),
            statement_timeout=duration("EFIR_STATEMENT_TIMEOUT", cls.statement_timeout),
            wait_timeout=duration("EFIR_REFRESH_WAIT_TIMEOUT", cls.wait_timeout),
        )
