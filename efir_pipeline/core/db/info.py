"""What operators and dashboards ask about a view: size, rows, freshness."""

from __future__ import annotations

from datetime import datetime

import psycopg
from psycopg import sql

from efir_pipeline.core.catalog import SCHEMA, ManagedView


def view_info(conn: psycopg.Connection, view: ManagedView) -> dict:
    """One view's state; the keys are the interface of ``efir-pipeline info --json``."""
    populated, size_bytes, comment = conn.execute(
        """SELECT c.relispopulated, pg_total_relation_size(c.oid), obj_description(c.oid, 'pg_class')
           FROM pg_class c WHERE c.oid = %s::regclass""",
        (view.qualified_name,),
    ).fetchone()
    row_count = None
    if populated:
        row_count = conn.execute(
            sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(SCHEMA, view.name))
        ).fetchone()[0]
    last = conn.execute(
        """SELECT finished_at, snapshot_at, duration_seconds, id
           FROM efir_budget.mv_refresh_log
           WHERE view_name = %s AND outcome = 'success'
           ORDER BY snapshot_at DESC LIMIT 1""",
        (view.name,),
    ).fetchone()
    last_attempt = conn.execute(
        """SELECT outcome, finished_at, error FROM efir_budget.mv_refresh_log
           WHERE view_name = %s ORDER BY id DESC LIMIT 1""",
        (view.name,),
    ).fetchone()
    return {
        "view": view.name,
        "row_count": row_count,
        "size_bytes": size_bytes,
        "populated": populated,
        "last_refresh_at": last[0] if last else None,
        "data_as_of": last[1] if last else None,
        "last_refresh_seconds": last[2] if last else None,
        "last_refresh_id": last[3] if last else None,
        "last_outcome": last_attempt[0] if last_attempt else None,
        "last_error": last_attempt[2] if last_attempt else None,
        "oldest_unreflected_change_at": oldest_unreflected_change_at(conn, view),
        "description": comment,
    }


def oldest_unreflected_change_at(conn: psycopg.Connection, view: ManagedView) -> datetime | None:
    """The oldest source change committed after the view's last refresh snapshot."""
    return conn.execute(
        "SELECT efir_budget.oldest_unreflected_change(%s)", (view.name,)
    ).fetchone()[0]
