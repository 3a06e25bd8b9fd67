"""Least-privilege PostgreSQL roles: the pipeline, the dashboards and the budget app.

Why three roles: each client gets exactly what its job needs, so a leaked dashboard
password cannot change a budget, the budget app cannot stall or drop a view, and
the refresh history can only be written by the pipeline.

| role (default name) | may | may not |
|---|---|---|
| pipeline (``efir_pipeline``) | own and refresh the managed views (``mv_*``, their ``v_*`` and the freshness views); read every source table; write its own tables (:data:`PIPELINE_TABLES`) | write a source table; create anything |
| dashboard (``efir_dashboard``) | read the managed views and ``kpi_freshness`` | refresh; read source or pipeline tables; write anything |
| app (``efir_app``) | read and write (``SELECT, INSERT, UPDATE, DELETE``) the source tables | refresh, alter or drop a view; write the history or the change log; TRUNCATE |

Why the pipeline *owns* the views: PostgreSQL 15 lets only the owner run ``REFRESH
MATERIALIZED VIEW`` (the ``MAINTAIN`` privilege arrives in 17). A materialized view
runs its query with its owner's rights, hence the pipeline's SELECT on source tables.

Why change capture keeps working for the app: the trigger functions of migration
0004 are ``SECURITY DEFINER`` with a fixed ``search_path``; owned by the pipeline,
they insert into ``change_log`` with the pipeline's right to, while the app has no
privilege on ``change_log`` at all. ``change_log.db_user`` still names the app
(``session_user``).

Objects are found by introspection of schema ``efir_budget`` and classified with
the catalog and the lists below, so a view or table added by a later migration is
covered the next time ``efir-pipeline db roles`` runs (run it after every ``db
upgrade``). Every run converges the privileges to this design (idempotent): what
is missing is granted, what is extra on a classified object is revoked.

Run it as the migration owner (superuser or not). A non-superuser admin is made a
member of the pipeline role: PostgreSQL requires that to hand objects to it, and
later migrations need it to alter or drop the pipeline's views.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import psycopg
from psycopg import sql

from efir_pipeline.core import catalog
from efir_pipeline.core.catalog import SCHEMA
from efir_pipeline.core.errors import ConfigError, MigrationsNotApplied
from efir_pipeline.core.settings import Settings
from efir_pipeline.core.values import RoleNameKind

KINDS = ("pipeline", "dashboard", "app")
ROLE_ENV = {
    "pipeline": "EFIR_ROLE_PIPELINE",
    "dashboard": "EFIR_ROLE_DASHBOARD",
    "app": "EFIR_ROLE_APP",
}

PIPELINE_TABLES: dict[str, tuple[str, ...]] = {
    # Append-only: nobody, the pipeline included, can rewrite a refresh that happened.
    "mv_refresh_log": ("SELECT", "INSERT"),
    # INSERT: the capture triggers (SECURITY DEFINER, owned by the pipeline); DELETE: pruning.
    "change_log": ("SELECT", "INSERT", "DELETE"),
    # Queued, marked delivered or given up, purged after 30 days (efir_pipeline.defs.alerts).
    "alert_outbox": ("SELECT", "INSERT", "UPDATE", "DELETE"),
    # Incremental refresh bookkeeping (catalog strategy "per_version").
    "incremental_state": ("SELECT", "INSERT", "UPDATE", "DELETE"),
    # alembic's record of the schema revision: every entry point checks it first.
    "efir_pipeline_revision": ("SELECT",),
}
"""The tables the pipeline writes, with its privileges. Every other table of the schema
is a source table (the budget app's). A new pipeline table must be added here: a test
fails while a table without change capture triggers is not listed."""

PIPELINE_VIEWS = ("kpi_freshness", "refresh_history")
"""Plain views the pipeline owns besides the catalog's ``v_*`` (migration 0005)."""

DASHBOARD_VIEWS = ("kpi_freshness",)
"""What dashboards may read besides every catalog ``mv_*``: the "data as of" time."""

PIPELINE_FUNCTIONS = (
    "capture_change",
    "capture_truncate",
    "view_source_tables",
    "last_reflected_snapshot",
    "unreflected_changes",
    "oldest_unreflected_change",
    "prune_change_log",
    "view_freshness",
    "unsynced_versions",
)
"""Functions of migrations 0004/0005/0007, owned by the pipeline; EXECUTE revoked from PUBLIC.
Dashboards get EXECUTE on those their views call (``view_freshness``, a SECURITY
DEFINER function behind ``kpi_freshness``)."""

SOURCE_PRIVILEGES = {"pipeline": ("SELECT",), "app": ("SELECT", "INSERT", "UPDATE", "DELETE")}

TABLE_PRIVILEGES = ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER")

# Categories of the schema's relations.
SOURCE = "source table"
PIPELINE_TABLE = "pipeline table"
MANAGED_VIEW = "managed view"
LIVE_VIEW = "live view"
PIPELINE_VIEW = "pipeline view"
PIPELINE_OWNED = (MANAGED_VIEW, LIVE_VIEW, PIPELINE_VIEW)

_LOCK_KEY = 0x45464952, 0x524F4C45  # "EFIR", "ROLE": one `db roles` at a time


@dataclass(frozen=True)
class RoleNames:
    """The three role names, validated: lower-case identifiers, distinct, not ``pg_*``."""

    pipeline: str
    dashboard: str
    app: str

    def __post_init__(self) -> None:
        for kind in KINDS:
            try:
                RoleNameKind().parse(getattr(self, kind) or "")
            except ValueError as exc:
                raise ConfigError(f"{ROLE_ENV[kind]}: {exc}") from None
        if len({self.pipeline, self.dashboard, self.app}) != 3:
            raise ConfigError(f"the three roles need three different names (got {self})")

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: str | None) -> RoleNames:
        """CLI flags (``overrides``) first, then ``EFIR_ROLE_*`` (or their defaults)."""
        return cls(
            **{kind: overrides.get(kind) or getattr(settings, f"role_{kind}") for kind in KINDS}
        )

    def __getitem__(self, kind: str) -> str:
        return getattr(self, kind)

    def as_dict(self) -> dict[str, str]:
        return {kind: self[kind] for kind in KINDS}


@dataclass(frozen=True)
class Relation:
    name: str
    relkind: str  # r table, p partitioned table, v view, m materialized view, f foreign table
    owner: str
    category: str | None
    """One of the categories above; None: not ours to manage (reported, left alone)."""

    @property
    def ident(self) -> sql.Identifier:
        return sql.Identifier(SCHEMA, self.name)

    @property
    def sql_kind(self) -> str:
        return {"v": "VIEW", "m": "MATERIALIZED VIEW"}.get(self.relkind, "TABLE")


@dataclass(frozen=True)
class Function:
    name: str
    signature: str
    """``regprocedure`` text, e.g. ``efir_budget.capture_change()`` (PostgreSQL quotes it)."""
    owner: str
    managed: bool


@dataclass(frozen=True)
class Inventory:
    """What schema efir_budget holds, classified."""

    relations: tuple[Relation, ...]
    functions: tuple[Function, ...]
    dashboard_functions: frozenset[str]
    """Signatures of the functions the dashboard-readable views call."""

    def by_category(self, *categories: str) -> list[Relation]:
        return [r for r in self.relations if r.category in categories]


CACHE_PRIVILEGES = ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE")
"""An incrementally refreshed view's cache table (catalog ``cache_table``): the pipeline's
own derived rows, rebuilt at will."""


def catalog_live_views() -> set[str]:
    """The plain views the catalog's views are made of: ``v_*``, and for incrementally
    refreshed views (``strategy="per_version"``) their incremental and dirty views."""
    names = set()
    for view in catalog.VIEWS:
        names.add(view.live_view)
        if getattr(view, "incremental", False):
            names |= {view.incremental_view, view.dirty_view}
    return names


def pipeline_tables() -> dict[str, tuple[str, ...]]:
    """:data:`PIPELINE_TABLES` plus the cache tables of incrementally refreshed views."""
    caches = {
        view.cache_table: CACHE_PRIVILEGES
        for view in catalog.VIEWS
        if getattr(view, "incremental", False)
    }
    return {**PIPELINE_TABLES, **caches}


def category_of(name: str, relkind: str) -> str | None:
    """The category of a relation of the schema (None: unknown, left alone)."""
    if relkind in ("r", "p"):
        return PIPELINE_TABLE if name in pipeline_tables() else SOURCE
    if relkind == "m":
        return MANAGED_VIEW if name in catalog.view_names() else None
    if relkind == "v":
        if name in catalog_live_views():
            return LIVE_VIEW
        return PIPELINE_VIEW if name in PIPELINE_VIEWS else None
    return None


def intended_privileges(relation_name: str, category: str) -> dict[str, tuple[str, ...]]:
    """Per role kind, the table privileges the design gives (``("OWNER",)`` for ownership)."""
    grants: dict[str, tuple[str, ...]] = {kind: () for kind in KINDS}
    if category == SOURCE:
        grants.update(SOURCE_PRIVILEGES)
    elif category == PIPELINE_TABLE:
        grants["pipeline"] = pipeline_tables()[relation_name]
    elif category in PIPELINE_OWNED:
        grants["pipeline"] = ("OWNER",)
        if category == MANAGED_VIEW or relation_name in DASHBOARD_VIEWS:
            grants["dashboard"] = ("SELECT",)
    return grants


_RELATIONS = """
SELECT c.relname, c.relkind, pg_get_userbyid(c.relowner)
FROM pg_class c
WHERE c.relnamespace = %s::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
ORDER BY c.relname
"""

_FUNCTIONS = """
SELECT p.proname, p.oid::regprocedure::text, pg_get_userbyid(p.proowner)
FROM pg_proc p
WHERE p.pronamespace = %s::regnamespace
ORDER BY p.proname, 2
"""

# Functions a view's rewrite rule calls (pg_depend), e.g. kpi_freshness -> view_freshness().
# A view's functions run with the *reader's* EXECUTE right, unlike its tables.
_VIEW_FUNCTIONS = """
SELECT DISTINCT d.refobjid::regprocedure::text
FROM pg_rewrite r
JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid
                AND d.refclassid = 'pg_proc'::regclass
JOIN pg_proc p ON p.oid = d.refobjid
WHERE r.ev_class = ANY(%s::regclass[]) AND p.pronamespace = %s::regnamespace
"""


def inspect(conn: psycopg.Connection) -> Inventory:
    """Read and classify schema efir_budget; fail with the command to run if it is missing."""
    if conn.execute("SELECT to_regnamespace(%s)", (SCHEMA,)).fetchone()[0] is None:
        raise MigrationsNotApplied(
            f"the database {conn.info.dbname} has no schema {SCHEMA}: "
            "run `efir-pipeline db upgrade` first"
        )
    relations = tuple(
        Relation(name, kind, owner, category_of(name, kind))
        for name, kind, owner in conn.execute(_RELATIONS, (SCHEMA,)).fetchall()
    )
    functions = tuple(
        Function(name, signature, owner, name in PIPELINE_FUNCTIONS)
        for name, signature, owner in conn.execute(_FUNCTIONS, (SCHEMA,)).fetchall()
    )
    readable = [
        f"{SCHEMA}.{r.name}"
        for r in relations
        if r.category in PIPELINE_OWNED
        and "SELECT" in intended_privileges(r.name, r.category)["dashboard"]
    ]
    called = conn.execute(_VIEW_FUNCTIONS, (readable, SCHEMA)).fetchall() if readable else []
    return Inventory(relations, functions, frozenset(s for (s,) in called))


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


def _roles(names: Iterable[str]) -> sql.Composed:
    return sql.SQL(", ").join(sql.Identifier(n) for n in names)


def _privileges(privileges: Iterable[str]) -> sql.Composed:
    return sql.SQL(", ").join(sql.SQL(p) for p in privileges)


def build_script(conn: psycopg.Connection, names: RoleNames, *, login: bool = True) -> Script:
    """Everything needed to bring the database to the design, given what is there now."""
    inventory = inspect(conn)
    me, superuser = conn.execute(
        "SELECT current_user, rolsuper FROM pg_roles WHERE rolname = current_user"
    ).fetchone()
    existing = {
        name: (can_login, is_super, bypass_rls)
        for name, can_login, is_super, bypass_rls in conn.execute(
            "SELECT rolname, rolcanlogin, rolsuper, rolbypassrls FROM pg_roles "
            "WHERE rolname = ANY(%s)",
            (list(names.as_dict().values()),),
        ).fetchall()
    }
    _check_roles(names, me, existing, inventory)
    pipeline = sql.Identifier(names.pipeline)
    everyone = [names[k] for k in KINDS]
    schema = sql.Identifier(SCHEMA)
    script = Script()

    for kind in KINDS:
        name = names[kind]
        attribute = sql.SQL("LOGIN" if login else "NOLOGIN")
        if name not in existing:
            script.add(
                sql.SQL("CREATE ROLE {} {}").format(sql.Identifier(name), attribute), f"{kind} role"
            )
            script.created.append(name)
        elif existing[name][0] != login:
            script.add(sql.SQL("ALTER ROLE {} {}").format(sql.Identifier(name), attribute))

    if not superuser and not _is_member(conn, me, names.pipeline):
        script.add(
            sql.SQL("GRANT {} TO {}").format(pipeline, sql.Identifier(me)),
            "a non-superuser can hand objects to (and later migrations alter) only roles it is a member of",
        )
    script.add(
        sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(
            sql.Identifier(conn.info.dbname), _roles(everyone)
        )
    )

    transfers = [r for r in inventory.by_category(*PIPELINE_OWNED) if r.owner != names.pipeline]
    functions = [f for f in inventory.functions if f.managed]
    transfers_fn = [f for f in functions if f.owner != names.pipeline]
    if (transfers or transfers_fn) and not superuser:
        script.add(
            sql.SQL("GRANT CREATE ON SCHEMA {} TO {}").format(schema, pipeline),
            "ALTER ... OWNER needs the new owner to have CREATE here (revoked just below)",
        )
    for r in transfers:
        script.add(
            sql.SQL("ALTER {} {} OWNER TO {}").format(sql.SQL(r.sql_kind), r.ident, pipeline),
            "REFRESH needs ownership in PostgreSQL 15" if r.category == MANAGED_VIEW else "",
        )
    for f in transfers_fn:
        script.add(
            sql.SQL("ALTER FUNCTION {} OWNER TO {}").format(sql.SQL(f.signature), pipeline),
            "SECURITY DEFINER: runs with the pipeline's rights"
            if f.name.startswith("capture_")
            else "",
        )

    script.add(sql.SQL("REVOKE ALL ON SCHEMA {} FROM PUBLIC, {}").format(schema, _roles(everyone)))
    script.add(
        sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(schema, _roles(everyone)),
        "usage only: none of the three may create objects",
    )

    for r in _ordered(inventory.relations):
        owner = names.pipeline if r.category in PIPELINE_OWNED else r.owner
        revoke_from = ["PUBLIC", *(n for n in everyone if n != owner)]
        script.add(
            sql.SQL("REVOKE ALL ON {} FROM {}").format(
                r.ident,
                sql.SQL(", ").join(
                    sql.SQL(n) if n == "PUBLIC" else sql.Identifier(n) for n in revoke_from
                ),
            ),
            f"{r.category} {r.name}",
        )
        for kind, privileges in intended_privileges(r.name, r.category).items():
            if privileges and privileges != ("OWNER",):
                script.add(
                    sql.SQL("GRANT {} ON {} TO {}").format(
                        _privileges(privileges), r.ident, sql.Identifier(names[kind])
                    )
                )

    for f in functions:
        script.add(
            sql.SQL("REVOKE ALL ON FUNCTION {} FROM PUBLIC, {}").format(
                sql.SQL(f.signature), _roles([names.dashboard, names.app])
            ),
            f"function {f.name}",
        )
        if f.signature in inventory.dashboard_functions:
            script.add(
                sql.SQL("GRANT EXECUTE ON FUNCTION {} TO {}").format(
                    sql.SQL(f.signature), sql.Identifier(names.dashboard)
                ),
                "called by a view dashboards read",
            )

    script.add(
        sql.SQL(
            "ALTER DEFAULT PRIVILEGES FOR ROLE {} IN SCHEMA {} GRANT SELECT ON TABLES TO {}"
        ).format(sql.Identifier(me), schema, pipeline),
        "a source table added by a later migration is readable by the pipeline at once",
    )

    for r in inventory.relations:
        if r.category is None:
            script.notes.append(
                f"left alone: {SCHEMA}.{r.name} ({_RELKINDS.get(r.relkind, r.relkind)} not in "
                "the catalog nor in efir_pipeline.core.db.roles)"
            )
    for f in inventory.functions:
        if not f.managed:
            script.notes.append(f"left alone: function {f.signature} (not in PIPELINE_FUNCTIONS)")
    present = {r.name for r in inventory.relations}
    missing = [v.name for v in catalog.VIEWS if v.name not in present]
    if missing:
        script.notes.append(
            f"not in this database yet: {', '.join(missing)} (run `efir-pipeline db upgrade`, "
            "then `efir-pipeline db roles` again)"
        )
    return script


_CATEGORY_ORDER = (SOURCE, PIPELINE_TABLE, MANAGED_VIEW, LIVE_VIEW, PIPELINE_VIEW)
_RELKINDS = {
    "r": "table",
    "p": "table",
    "v": "view",
    "m": "materialized view",
    "f": "foreign table",
}


def _ordered(relations: Iterable[Relation]) -> list[Relation]:
    """The classified relations, grouped by category (sources first), then by name."""
    return sorted(
        (r for r in relations if r.category),
        key=lambda r: (_CATEGORY_ORDER.index(r.category), r.name),
    )


def _is_member(conn: psycopg.Connection, me: str, role: str) -> bool:
    if conn.execute("SELECT to_regrole(%s)", (role,)).fetchone()[0] is None:
        return False
    return conn.execute("SELECT pg_has_role(%s, %s, 'MEMBER')", (me, role)).fetchone()[0]


def _check_roles(
    names: RoleNames,
    me: str,
    existing: Mapping[str, tuple[bool, bool, bool]],
    inventory: Inventory,
) -> None:
    """Refuse designs that would silently mean nothing."""
    for kind in KINDS:
        name = names[kind]
        if name == me:
            raise ConfigError(
                f"the {kind} role {name!r} is the role running `db roles`: run it as the "
                "migration owner (an admin), with other names for the three roles"
            )
        if name in existing and (existing[name][1] or existing[name][2]):
            raise ConfigError(
                f"role {name!r} is a superuser or bypasses row security: privileges do not "
                "restrict it; choose another name or ALTER ROLE it NOSUPERUSER NOBYPASSRLS"
            )
    ours = set(names.as_dict().values())
    for r in inventory.relations:
        if r.category not in PIPELINE_OWNED and r.owner in ours:
            raise ConfigError(
                f"{SCHEMA}.{r.name} ({r.category or 'unmanaged'}) is owned by {r.owner}, which "
                f"would keep every right on it: ALTER TABLE {SCHEMA}.{r.name} OWNER TO {me}"
            )


def apply(
    url: str, names: RoleNames, *, login: bool = True, dry_run: bool = False
) -> tuple[Script, str]:
    """Script and (unless ``dry_run``) run, all in one transaction; returns the script and its SQL.

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


def privilege_matrix(conn: psycopg.Connection, names: RoleNames) -> list[dict[str, str]]:
    """What each role *can* do on every managed object, as PostgreSQL answers it.

    ``owner`` for ownership (REFRESH, ALTER, DROP), else the table privileges held
    (``EXECUTE`` for functions), ``-`` for none. Used by the tests and printed by
    ``db roles``; :func:`intended_matrix` is the design it must equal.
    """
    inventory = inspect(conn)
    rows = []
    for r in _ordered(inventory.relations):
        row = {"object": r.name, "kind": r.category}
        for kind in KINDS:
            role = names[kind]
            owner, *held = conn.execute(
                "SELECT pg_has_role(%s, c.relowner, 'USAGE'), "
                + ", ".join(f"has_table_privilege(%s, c.oid, '{p}')" for p in TABLE_PRIVILEGES)
                + " FROM pg_class c WHERE c.oid = %s::regclass",
                (role, *([role] * len(TABLE_PRIVILEGES)), f"{SCHEMA}.{r.name}"),
            ).fetchone()
            row[kind] = (
                "owner"
                if owner
                else _cell(p for p, h in zip(TABLE_PRIVILEGES, held, strict=True) if h)
            )
        rows.append(row)
    for f in inventory.functions:
        if not f.managed:
            continue
        row = {"object": f"{f.name}()", "kind": "function"}
        for kind in KINDS:
            owner, execute = conn.execute(
                "SELECT pg_has_role(%s, p.proowner, 'USAGE'), has_function_privilege(%s, p.oid, 'EXECUTE') "
                "FROM pg_proc p WHERE p.oid = %s::regprocedure",
                (names[kind], names[kind], f.signature),
            ).fetchone()
            row[kind] = "owner" if owner else ("EXECUTE" if execute else "-")
        rows.append(row)
    schema_row = {"object": SCHEMA, "kind": "schema"}
    for kind in KINDS:
        usage, create = conn.execute(
            "SELECT has_schema_privilege(%s, %s, 'USAGE'), has_schema_privilege(%s, %s, 'CREATE')",
            (names[kind], SCHEMA, names[kind], SCHEMA),
        ).fetchone()
        schema_row[kind] = _cell(p for p, h in (("USAGE", usage), ("CREATE", create)) if h)
    rows.append(schema_row)
    return rows


def intended_matrix(inventory: Inventory) -> list[dict[str, str]]:
    """The design, over the objects of ``inventory``, in :func:`privilege_matrix`'s shape."""
    rows = []
    for r in _ordered(inventory.relations):
        grants = intended_privileges(r.name, r.category)
        row = {"object": r.name, "kind": r.category}
        row.update({k: "owner" if v == ("OWNER",) else _cell(v) for k, v in grants.items()})
        rows.append(row)
    for f in inventory.functions:
        if f.managed:
            row = {"object": f"{f.name}()", "kind": "function", "pipeline": "owner"}
            row["dashboard"] = "EXECUTE" if f.signature in inventory.dashboard_functions else "-"
            row["app"] = "-"
            rows.append(row)
    rows.append({"object": SCHEMA, "kind": "schema", **dict.fromkeys(KINDS, "USAGE")})
    return rows


def _cell(privileges: Iterable[str]) -> str:
    return " ".join(privileges) or "-"
