"""Migrations: up twice is a no-op, down and up round-trips, every view documented and
refreshable concurrently. (Adopting the app's database: test_adopt.py.)"""

import psycopg

from efir_pipeline.core.db import migrate


def _objects(url: str) -> set[tuple[str, str]]:
    with psycopg.connect(url) as c:
        rows = c.execute(
            """SELECT c.relkind::text, c.relname FROM pg_class c
               JOIN pg_namespace n ON n.oid = c.relnamespace
               WHERE n.nspname = 'efir_budget'"""
        ).fetchall()
    return set(rows)


def test_upgrade_twice_is_a_no_op_and_down_up_round_trips(make_database):
    url = make_database(migrated=False)
    migrate.upgrade(url)
    first = _objects(url)
    assert ("m", "mv_kpi_dashboard") in first and ("m", "mv_budget_consolidation") in first
    migrate.upgrade(url)
    assert _objects(url) == first
    assert migrate.current_revision(url) == migrate.head_revision(url)

    migrate.downgrade(url, "base")
    # alembic's record (now empty) and its primary key stay, as alembic leaves them
    assert {name for _, name in _objects(url)} <= {
        migrate.VERSION_TABLE,
        f"{migrate.VERSION_TABLE}_pkc",
    }
    assert migrate.current_revision(url) is None

    migrate.upgrade(url)
    assert _objects(url) == first


def test_each_revision_downgrades_and_upgrades_again(make_database):
    """Every step down and back up leaves the same objects (no revision leaks or loses any)."""
    url = make_database()
    top = _objects(url)
    revisions = ["0005_health", "0004_views", "0003_change_capture", "0002_refresh_history"]
    for revision in revisions[1:]:
        migrate.downgrade(url, revision)
    migrate.upgrade(url)
    assert _objects(url) == top


def test_every_view_and_view_column_has_a_comment(db_url):
    with psycopg.connect(db_url) as c:
        missing = c.execute(
            """SELECT c.relname, a.attname
               FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
               JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
               WHERE n.nspname = 'efir_budget' AND c.relkind IN ('v', 'm')
                 AND col_description(c.oid, a.attnum) IS NULL"""
        ).fetchall()
        undocumented = c.execute(
            """SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
               WHERE n.nspname = 'efir_budget' AND c.relkind IN ('v', 'm')
                 AND obj_description(c.oid, 'pg_class') IS NULL"""
        ).fetchall()
    assert missing == [] and undocumented == []


def test_every_managed_view_has_a_plain_unique_index(db_url):
    """CONCURRENTLY needs a unique index without WHERE clause or expressions."""
    from efir_pipeline.core import catalog

    with psycopg.connect(db_url) as c:
        for view in catalog.VIEWS:
            keys = c.execute(
                """SELECT array_agg(a.attname::text ORDER BY k.ord)
                   FROM pg_index i
                   CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
                   JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
                   WHERE i.indrelid = %s::regclass AND i.indisunique
                     AND i.indpred IS NULL AND i.indexprs IS NULL
                   GROUP BY i.indexrelid""",
                (view.qualified_name,),
            ).fetchall()
            assert list(view.unique_key) in [k for (k,) in keys], (view.name, keys)
