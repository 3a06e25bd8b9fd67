"""The privilege design: which object is whose, and what each role may do with it.

| role (default name) | may | may not |
|---|---|---|
| pipeline (``efir_pipeline``) | own and refresh the managed views (``mv_*``, their ``v_*`` and the freshness views); read the tables the views read; write its own tables (:data:`PIPELINE_TABLES`) | write a source table; read any other table of the app; create anything |
| dashboard (``efir_dashboard``) | read the managed views and ``kpi_freshness`` | refresh; read source or pipeline tables; write anything |
| app (``efir_app``) | read and write (``SELECT, INSERT, UPDATE, DELETE``) the tables the views read; ask for a refresh (``request_refresh``) | refresh, alter or drop a view; write the history or the change log; TRUNCATE |
| capture (``efir_capture``, no login) | own the functions that write the change log and record outside refreshes (``SECURITY DEFINER``): insert into ``change_log`` and ``mv_refresh_log`` | anything else; nobody logs in as it |

Why a capture role: the capture functions run for every writer of the app's tables.
Owned by the pipeline, whose credential every Dagster process holds, they could be
dropped (``DROP FUNCTION ... CASCADE`` takes the triggers on the app's tables along) or
turned ``SECURITY INVOKER`` (every app write would then fail). Owned by a role nobody
logs in as, only the migration owner can change them.

The budget app's other tables (``users``, ``employees``, ...) are not ours: nothing
here grants, revokes or even lists a privilege on them, and the schema's own
privileges are left as the app has them except for our four roles.
"""

from __future__ import annotations

from efir_pipeline.core import catalog

PIPELINE_TABLES: dict[str, tuple[str, ...]] = {
    # Append-only: nobody, the pipeline included, can rewrite a refresh that happened.
    "mv_refresh_log": ("SELECT", "INSERT"),
    # A view's turn to refresh (its row lock) and the count of refreshes: no INSERT, no
    # DELETE (the migrations make one row per view).
    "refresh_state": ("SELECT", "UPDATE"),
    # DELETE: pruning. The capture functions (owned by the capture role) insert.
    "change_log": ("SELECT", "DELETE"),
    # Queued, marked delivered or given up, purged after 30 days (efir_pipeline.core.alerts).
    "alert_outbox": ("SELECT", "INSERT", "UPDATE", "DELETE"),
    # Incremental refresh bookkeeping (catalog strategy "per_version").
    "incremental_state": ("SELECT", "INSERT", "UPDATE", "DELETE"),
    # alembic's record of the schema revision: every entry point checks it first.
    "efir_pipeline_revision": ("SELECT",),
    # The app's views the pipeline replaced, kept for a downgrade: the migration owner's.
    "replaced_app_views": (),
}
"""The tables the pipeline made, with the pipeline role's privileges on each."""

CACHE_PRIVILEGES = ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE")
"""An incrementally refreshed view's cache table: the pipeline's own derived rows."""

PIPELINE_VIEWS = ("kpi_freshness", "refresh_history")
"""Plain views the pipeline owns besides the catalog's ``v_*``."""

DASHBOARD_VIEWS = ("kpi_freshness",)
"""What dashboards may read besides every catalog ``mv_*``: the "data as of" time."""

PIPELINE_FUNCTIONS = (
    "capture_change",
    "capture_truncate",
    "cluster_id",
    "is_reflected",
    "txid_floor",
    "view_source_tables",
    "upstream_views",
    "last_reflection",
    "reflection_point",
    "outstanding_changes",
    "oldest_unreflected_change",
    "request_refresh",
    "prune_change_log",
    "view_freshness",
    "unsynced_versions",
    "outside_refresh_start",
    "outside_refresh_end",
)
"""Functions the migrations made, owned by the pipeline (those of :data:`CAPTURE_FUNCTIONS`
by the capture role); EXECUTE revoked from PUBLIC."""

CAPTURE_FUNCTIONS = ("capture_change", "capture_truncate", "outside_refresh_end", "request_refresh")
"""The SECURITY DEFINER functions that write the change log or the history for others."""

CAPTURE_TABLES: dict[str, tuple[str, ...]] = {
    "change_log": ("SELECT", "INSERT"),
    "mv_refresh_log": ("SELECT", "INSERT"),
}
"""The capture role's privileges: what its functions write (and read to compute it)."""

CAPTURE_CALLS = (
    "cluster_id",
    "is_reflected",
    "last_reflection",
    "upstream_views",
    "reflection_point",
)
"""The pipeline's functions the capture role's functions call (EXECUTE)."""

APP_FUNCTIONS = ("request_refresh",)
"""What the budget app may call: ask for a refresh by name (its old REST endpoint)."""

SOURCE_PRIVILEGES = {"pipeline": ("SELECT",), "app": ("SELECT", "INSERT", "UPDATE", "DELETE")}
TABLE_PRIVILEGES = ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER")

# Categories of the schema's relations.
SOURCE = "source table"
PIPELINE_TABLE = "pipeline table"
MANAGED_VIEW = "managed view"
LIVE_VIEW = "live view"
PIPELINE_VIEW = "pipeline view"
PIPELINE_OWNED = (MANAGED_VIEW, LIVE_VIEW, PIPELINE_VIEW)
CATEGORY_ORDER = (SOURCE, PIPELINE_TABLE, MANAGED_VIEW, LIVE_VIEW, PIPELINE_VIEW)


def source_tables() -> set[str]:
    """The tables some managed view reads: the only app tables the roles touch."""
    return {t for view in catalog.VIEWS for t in view.source_tables}


def catalog_live_views() -> set[str]:
    """The plain views the catalog's views are made of: ``v_*``, and for incrementally
    refreshed views their incremental and dirty views."""
    names = set()
    for view in catalog.VIEWS:
        names.add(view.live_view)
        if view.incremental:
            names |= {view.incremental_view, view.dirty_view}
    return names


def pipeline_tables() -> dict[str, tuple[str, ...]]:
    """:data:`PIPELINE_TABLES` plus the cache tables of incrementally refreshed views."""
    caches = {view.cache_table: CACHE_PRIVILEGES for view in catalog.VIEWS if view.incremental}
    return {**PIPELINE_TABLES, **caches}


def category_of(name: str, relkind: str) -> str | None:
    """The category of a relation of the schema (None: the app's, left alone)."""
    if relkind in ("r", "p"):
        if name in pipeline_tables():
            return PIPELINE_TABLE
        return SOURCE if name in source_tables() else None
    if relkind == "m":
        return MANAGED_VIEW if name in catalog.view_names() else None
    if relkind == "v":
        if name in catalog_live_views():
            return LIVE_VIEW
        return PIPELINE_VIEW if name in PIPELINE_VIEWS else None
    return None


def function_owner(name: str) -> str:
    """Which role kind owns a managed function."""
    return "capture" if name in CAPTURE_FUNCTIONS else "pipeline"


def function_execute(name: str, *, called_by_dashboard_view: bool) -> dict[str, bool]:
    """Per role kind besides the owner, whether it may call the function."""
    return {
        "pipeline": function_owner(name) == "pipeline",
        "dashboard": called_by_dashboard_view,
        "app": name in APP_FUNCTIONS,
        "capture": name in CAPTURE_FUNCTIONS or name in CAPTURE_CALLS,
    }


def intended_privileges(relation_name: str, category: str) -> dict[str, tuple[str, ...]]:
    """Per role kind, the table privileges the design gives (``("OWNER",)`` for ownership)."""
    grants: dict[str, tuple[str, ...]] = {"pipeline": (), "dashboard": (), "app": (), "capture": ()}
    if category == SOURCE:
        grants.update(SOURCE_PRIVILEGES)
    elif category == PIPELINE_TABLE:
        grants["pipeline"] = pipeline_tables()[relation_name]
        grants["capture"] = CAPTURE_TABLES.get(relation_name, ())
    elif category in PIPELINE_OWNED:
        grants["pipeline"] = ("OWNER",)
        if category == MANAGED_VIEW or relation_name in DASHBOARD_VIEWS:
            grants["dashboard"] = ("SELECT",)
        if category == MANAGED_VIEW:
            grants["capture"] = ("SELECT",)  # to count a view refreshed outside the engine
    return grants
