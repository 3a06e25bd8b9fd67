"""The statements ``efir-pipeline db roles`` runs to bring a database to the design.

Every run converges (idempotent): what is missing is granted, what is extra on a
classified object is revoked, for our four roles only. On the budget app's own
database that means: the tables the views read get our grants added, nobody else's
privileges touched; the app's other tables and the schema's other grants are not
looked at. Run it as the migration owner (superuser or not): a non-superuser admin
is made a member of the pipeline role, which PostgreSQL requires to hand objects to
it (and later migrations, to alter them).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import psycopg
from psycopg import sql

from efir_pipeline.core import catalog
from efir_pipeline.core.catalog import SCHEMA
from efir_pipeline.core.db.roles.design import (
    MANAGED_VIEW,
    PIPELINE_OWNED,
    SOURCE,
    function_execute,
    function_owner,
    intended_privileges,
)
from efir_pipeline.core.db.roles.inventory import Inventory, inspect
from efir_pipeline.core.db.roles.names import KINDS, LOGIN_KINDS, RoleNames
from efir_pipeline.core.errors import ConfigError

_LOCK_KEY = 0x45464952, 0x524F4C45  # "EFIR", "ROLE": one `db roles` at a time
ESCAPES = ("SUPERUSER", "CREATEROLE", "REPLICATION", "BYPASSRLS")
"""Role attributes that put a role above the privileges the design gives it."""


@dataclass(frozen=True)
class Statement:
    sql: sql.Composable
    why: str = ""


@dataclass
class Script:
    """The statements ``db roles`` runs, in order, with why; and what it left alone."""

    statements: list[Statement] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    created: list[str] = field(default_factory=list)

    def add(self, statement: sql.Composable, why: str = "") -> None:
        self.statements.append(Statement(statement, why))

    def render(self, conn: psycopg.Connection) -> str:
        """A psql script: ``efir-pipeline db roles --dry-run | psql "$ADMIN_URL"`` applies it."""
        lines = [f"-- {note}" for note in self.notes]
        lines.append("BEGIN;")
        for st in self.statements:
            if st.why:
                lines.append(f"-- {st.why}")
            lines.append(st.sql.as_string(conn) + ";")
        lines.append("COMMIT;")
        return "\n".join(lines)


@dataclass(frozen=True)
class _Admin:
    """Who runs ``db roles``, and the roles that already exist."""

    name: str
    superuser: bool
    existing: Mapping[str, tuple[bool, tuple[str, ...]]]
    """role name -> (can log in, the attributes that put it above privileges)."""


def _roles(names: Iterable[str]) -> sql.Composed:
    return sql.SQL(", ").join(sql.Identifier(n) for n in names)


def _privileges(privileges: Iterable[str]) -> sql.Composed:
    return sql.SQL(", ").join(sql.SQL(p) for p in privileges)


def build_script(conn: psycopg.Connection, names: RoleNames, *, login: bool = True) -> Script:
    """Everything needed to bring the database to the design, given what is there now."""
    inventory = inspect(conn)
    admin = _admin(conn, names)
    _check_roles(names, admin, inventory)
    script = Script()
    _create_roles(script, names, admin, login=login)
    _membership(script, conn, names, admin)
    _ownership(script, names, admin, inventory)
    _schema(script, names)
    _relation_privileges(script, names, inventory)
    _function_privileges(script, names, inventory)
    _notes(script, inventory)
    return script


def _admin(conn: psycopg.Connection, names: RoleNames) -> _Admin:
    me, superuser = conn.execute(
        "SELECT current_user, rolsuper FROM pg_roles WHERE rolname = current_user"
    ).fetchone()
    existing = {
        name: (can_login, tuple(a for a, held in zip(ESCAPES, flags, strict=True) if held))
        for name, can_login, *flags in conn.execute(
            "SELECT rolname, rolcanlogin, rolsuper, rolcreaterole, rolreplication, rolbypassrls "
            "FROM pg_roles WHERE rolname = ANY(%s)",
            (list(names.as_dict().values()),),
        ).fetchall()
    }
    return _Admin(me, superuser, existing)


def _check_roles(names: RoleNames, admin: _Admin, inventory: Inventory) -> None:
    """Refuse designs that would silently mean nothing."""
    for kind in KINDS:
        name = names[kind]
        if name == admin.name:
            raise ConfigError(
                f"the {kind} role {name!r} is the role running `db roles`: run it as the "
                "migration owner (an admin), with other names for the pipeline's roles"
            )
        escapes = admin.existing.get(name, (False, ()))[1]
        if escapes:
            undo = " ".join(f"NO{a}" for a in escapes)
            raise ConfigError(
                f"the {kind} role {name!r} has {', '.join(escapes)}: privileges do not hold "
                f"it (a CREATEROLE role can grant itself any other role); choose another name "
                f"or ALTER ROLE {name} {undo}"
            )
    ours = set(names.as_dict().values())
    for r in inventory.relations:
        if r.category not in PIPELINE_OWNED and r.owner in ours:
            raise ConfigError(
                f"{SCHEMA}.{r.name} ({r.category or 'an app table'}) is owned by {r.owner}, "
                f"which would keep every right on it: ALTER TABLE {SCHEMA}.{r.name} OWNER TO "
                f"{admin.name}"
            )


def _create_roles(script: Script, names: RoleNames, admin: _Admin, *, login: bool) -> None:
    for kind in KINDS:
        name = names[kind]
        logs_in = login and kind in LOGIN_KINDS
        attribute = sql.SQL("LOGIN" if logs_in else "NOLOGIN")
        if name not in admin.existing:
            script.add(
                sql.SQL("CREATE ROLE {} {}").format(sql.Identifier(name), attribute),
                f"{kind} role",
            )
            script.created.append(name)
        elif admin.existing[name][0] != logs_in:
            script.add(sql.SQL("ALTER ROLE {} {}").format(sql.Identifier(name), attribute))


def _membership(script: Script, conn: psycopg.Connection, names: RoleNames, admin: _Admin):
    for owner in (names.pipeline, names.capture):
        if not admin.superuser and not _is_member(conn, admin.name, owner):
            script.add(
                sql.SQL("GRANT {} TO {}").format(sql.Identifier(owner), sql.Identifier(admin.name)),
                "a non-superuser can hand objects to (and later migrations alter) only roles "
                "it is a member of",
            )
    script.add(
        sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(
            sql.Identifier(conn.info.dbname), _roles(names[k] for k in LOGIN_KINDS)
        )
    )


def _ownership(script: Script, names: RoleNames, admin: _Admin, inventory: Inventory) -> None:
    owners = {kind: sql.Identifier(names[kind]) for kind in ("pipeline", "capture")}
    transfers = [r for r in inventory.by_category(*PIPELINE_OWNED) if r.owner != names.pipeline]
    functions = [
        f for f in inventory.functions if f.managed and f.owner != names[function_owner(f.name)]
    ]
    if (transfers or functions) and not admin.superuser:
        script.add(
            sql.SQL("GRANT CREATE ON SCHEMA {} TO {}").format(
                sql.Identifier(SCHEMA), _roles(names[k] for k in owners)
            ),
            "ALTER ... OWNER needs the new owner to have CREATE here (revoked just below)",
        )
    for r in transfers:
        script.add(
            sql.SQL("ALTER {} {} OWNER TO {}").format(
                sql.SQL(r.sql_kind), r.ident, owners["pipeline"]
            ),
            "REFRESH needs ownership in PostgreSQL 15" if r.category == MANAGED_VIEW else "",
        )
    for f in functions:
        kind = function_owner(f.name)
        script.add(
            sql.SQL("ALTER FUNCTION {} OWNER TO {}").format(sql.SQL(f.signature), owners[kind]),
            "SECURITY DEFINER for every writer: owned by a role nobody logs in as"
            if kind == "capture"
            else "",
        )


def _schema(script: Script, names: RoleNames) -> None:
    schema = sql.Identifier(SCHEMA)
    everyone = _roles(names.as_dict().values())
    script.add(
        sql.SQL("REVOKE CREATE ON SCHEMA {} FROM {}").format(schema, everyone),
        "none of ours may create objects (the schema's other grants are the app's)",
    )
    script.add(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(schema, everyone))


def _relation_privileges(script: Script, names: RoleNames, inventory: Inventory) -> None:
    everyone = [names[k] for k in KINDS]
    for r in inventory.managed:
        owner = names.pipeline if r.category in PIPELINE_OWNED else r.owner
        # PUBLIC loses its rights on what the pipeline made; on the app's tables it keeps
        # whatever the app gave it (not ours to decide).
        public = [] if r.category == SOURCE else [sql.SQL("PUBLIC")]
        revoke_from = [*public, *(sql.Identifier(n) for n in everyone if n != owner)]
        script.add(
            sql.SQL("REVOKE ALL ON {} FROM {}").format(r.ident, sql.SQL(", ").join(revoke_from)),
            f"{r.category} {r.name}",
        )
        for kind, privileges in intended_privileges(r.name, r.category).items():
            if privileges and privileges != ("OWNER",):
                script.add(
                    sql.SQL("GRANT {} ON {} TO {}").format(
                        _privileges(privileges), r.ident, sql.Identifier(names[kind])
                    )
                )


def _function_privileges(script: Script, names: RoleNames, inventory: Inventory) -> None:
    for f in inventory.functions:
        if not f.managed:
            continue
        owner = function_owner(f.name)
        others = [names[k] for k in KINDS if k != owner]
        script.add(
            sql.SQL("REVOKE ALL ON FUNCTION {} FROM PUBLIC, {}").format(
                sql.SQL(f.signature), _roles(others)
            ),
            f"function {f.name}",
        )
        allowed = function_execute(
            f.name, called_by_dashboard_view=f.signature in inventory.dashboard_functions
        )
        callers = [names[k] for k, may in allowed.items() if may and k != owner]
        if callers:
            script.add(
                sql.SQL("GRANT EXECUTE ON FUNCTION {} TO {}").format(
                    sql.SQL(f.signature), _roles(callers)
                )
            )


def _notes(script: Script, inventory: Inventory) -> None:
    others = [r.name for r in inventory.left_alone]
    if others:
        shown = ", ".join(others[:8]) + (f" and {len(others) - 8} more" if len(others) > 8 else "")
        script.notes.append(
            f"left alone: {len(others)} other relation(s) of {SCHEMA} that no managed view "
            f"reads ({shown}): no privilege on them is granted, revoked or read"
        )
    for f in inventory.functions:
        if not f.managed:
            script.notes.append(f"left alone: function {f.signature} (not the pipeline's)")
    present = {r.name for r in inventory.relations}
    missing = [v.name for v in catalog.VIEWS if v.name not in present]
    if missing:
        script.notes.append(
            f"not in this database yet: {', '.join(missing)} (run `efir-pipeline db upgrade`, "
            "then `efir-pipeline db roles` again)"
        )


def _is_member(conn: psycopg.Connection, me: str, role: str) -> bool:
    if conn.execute("SELECT to_regrole(%s)", (role,)).fetchone()[0] is None:
        return False
    return conn.execute("SELECT pg_has_role(%s, %s, 'MEMBER')", (me, role)).fetchone()[0]


def apply(
    url: str, names: RoleNames, *, login: bool = True, dry_run: bool = False
) -> tuple[Script, str]:
    """Build and (unless ``dry_run``) run the script in one transaction; returns it and its SQL.

    One transaction: a failure leaves privileges exactly as they were, and readers never
    see a half-granted state. An advisory lock serializes concurrent runs.
    """
    from efir_pipeline.core.db.connection import connect

    with connect(url) as conn:
        conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", _LOCK_KEY)
        script = build_script(conn, names, login=login)
        text = script.render(conn)
        if dry_run:
            conn.rollback()
            return script, text
        for statement in script.statements:
            conn.execute(statement.sql)
        conn.commit()
    return script, text
