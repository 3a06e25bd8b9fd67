"""Roles for tests: names unique to the run, logging in as them, dropping them after.

Roles belong to the whole server, not to one database, so every test run names its
own and drops them (with what they own) when done.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterable
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

from efir_pipeline.core.db.roles import KINDS, RoleNames

RUN = uuid.uuid4().hex[:8]
PASSWORD = secrets.token_hex(12)  # ignored by trust auth, needed by md5/scram servers


def role_names(label: str) -> RoleNames:
    return RoleNames(*(f"efir_t_{RUN}_{label}{kind}" for kind in KINDS))


def login_url(url: str, role: str) -> str:
    """``url`` with ``role`` (and the test password) as the user."""
    parts = urlsplit(url)
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit(parts._replace(netloc=f"{role}:{PASSWORD}@{host}"))


def set_passwords(url: str, names: RoleNames | Iterable[str]) -> None:
    with psycopg.connect(url, autocommit=True) as c:
        for name in names.as_dict().values() if isinstance(names, RoleNames) else names:
            c.execute(
                sql.SQL("ALTER ROLE {} PASSWORD {}").format(
                    sql.Identifier(name), sql.Literal(PASSWORD)
                )
            )


class RoleCleanup:
    """Databases and the roles to drop from them (and from the server) at the end."""

    def __init__(self, server_url: str) -> None:
        self.server_url = server_url
        self.registered: list[tuple[str, list[str]]] = []

    def __call__(self, url: str, names: RoleNames | Iterable[str]) -> None:
        self.registered.append(
            (url, list(names.as_dict().values()) if isinstance(names, RoleNames) else list(names))
        )

    def drop(self) -> None:
        everyone = sorted({r for _, names in self.registered for r in names})
        for url, names in self.registered:
            try:
                with psycopg.connect(url, autocommit=True) as c:
                    existing = [
                        n for n in names if c.execute("SELECT to_regrole(%s)", (n,)).fetchone()[0]
                    ]
                    if existing:
                        idents = sql.SQL(", ").join(map(sql.Identifier, existing))
                        c.execute(sql.SQL("REASSIGN OWNED BY {} TO CURRENT_USER").format(idents))
                        c.execute(sql.SQL("DROP OWNED BY {}").format(idents))
            except psycopg.OperationalError:
                pass  # the database is gone already: nothing of the roles is left in it
        with psycopg.connect(self.server_url, autocommit=True) as c:
            for name in everyone:
                c.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))
