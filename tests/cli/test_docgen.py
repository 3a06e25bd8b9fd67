"""docs/reference.md is generated from the catalog and the database COMMENTs: it cannot drift.

When a test here fails after a migration or catalog change, regenerate the file:
``efir-pipeline docs`` (with DATABASE_URL at the latest migration), and commit it.
"""

from __future__ import annotations

import subprocess

import psycopg
import pytest

from efir_pipeline.cli import docgen
from efir_pipeline.core import catalog
from efir_pipeline.core.db import migrate
from tests.support.commands import run_cli


@pytest.fixture(scope="module")
def docs_db(make_database) -> str:
    """A database of its own at head: no other test's COMMENT or privilege change leaks in."""
    return make_database()


@pytest.fixture(scope="module")
def generated(docs_db) -> str:
    with psycopg.connect(docs_db, autocommit=True) as c:
        return docgen.render(c, migrate.head_revision(docs_db))


def run_docs(*args: str, url: str) -> subprocess.CompletedProcess:
    return run_cli("docs", *args, url=url)


def test_committed_reference_equals_the_generated_text(generated):
    committed = docgen.REFERENCE_PATH.read_text() if docgen.REFERENCE_PATH.exists() else ""
    if committed != generated:
        pytest.fail(
            "docs/reference.md is stale: run `efir-pipeline docs` on a database at the latest "
            "migration and commit the result.\n"
            + docgen.diff(committed, generated, docgen.REFERENCE_PATH)[:4000]
        )


def test_every_view_and_column_is_documented_with_its_comment(docs_db, generated):
    with psycopg.connect(docs_db, autocommit=True) as c:
        for view in catalog.VIEWS:
            assert f"### `{view.qualified_name}`" in generated
            rows = c.execute(
                """SELECT a.attname, col_description(a.attrelid, a.attnum) FROM pg_attribute a
                   WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped""",
                (view.qualified_name,),
            ).fetchall()
            undocumented = [name for name, text in rows if not text]
            assert undocumented == [], f"{view.name}: columns without a COMMENT"
            for name, text in rows:
                assert f"| `{name}` |" in generated and docgen.cell(text) in generated


def test_rendering_is_deterministic(docs_db, generated):
    with psycopg.connect(docs_db, autocommit=True) as c:
        assert docgen.render(c, migrate.head_revision(docs_db)) == generated


def test_cell_keeps_a_markdown_table_intact():
    assert docgen.cell("a | b\nc") == "a \\| b c"
    assert docgen.cell(None) == ""


def test_docs_check_reports_a_stale_file_and_docs_rewrites_it(docs_db, generated, tmp_path):
    target = tmp_path / "reference.md"
    target.write_text("# stale\n")
    stale = run_docs("--check", "--output", str(target), url=docs_db)
    assert stale.returncode == 1
    assert "stale" in stale.stderr and "+# Reference" in stale.stdout
    assert target.read_text() == "# stale\n"  # --check never writes

    written = run_docs("--output", str(target), url=docs_db)
    assert written.returncode == 0, written.stderr
    assert target.read_text() == generated
    assert run_docs("--check", "--output", str(target), url=docs_db).returncode == 0


def test_docs_refuse_a_database_behind_the_latest_migration(make_database, tmp_path):
    url = make_database(migrated=False)
    migrate.upgrade(url, "0003_kpi_views")
    result = run_docs("--output", str(tmp_path / "reference.md"), url=url)
    assert result.returncode == 4
    assert "db upgrade" in result.stderr
    assert not (tmp_path / "reference.md").exists()
