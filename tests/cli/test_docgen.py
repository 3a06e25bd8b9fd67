"""The generated docs (view reference, env template, the guide's settings table) come
from the catalog, the settings and the database COMMENTs: they cannot drift.

When a test here fails after a migration, catalog or settings change, regenerate:
``efir-pipeline docs`` (with DATABASE_URL at the latest migration), and commit.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import psycopg
import pytest

from efir_pipeline.cli import docgen
from efir_pipeline.cli.docgen import settings_docs
from efir_pipeline.core import catalog
from efir_pipeline.core.db import migrate
from efir_pipeline.core.settings import specs
from tests.support.commands import run_cli


@pytest.fixture(scope="module")
def docs_db(make_database) -> str:
    """A database of its own at head: no other test's COMMENT or privilege change leaks in."""
    return make_database()


@pytest.fixture(scope="module")
def generated(docs_db) -> dict[Path, str]:
    with psycopg.connect(docs_db, autocommit=True) as c:
        return docgen.render_all(c)


def reference(files: dict[Path, str]) -> str:
    return files[docgen.PROJECT_ROOT / docgen.REFERENCE]


def run_docs(*args: str, url: str) -> subprocess.CompletedProcess:
    return run_cli("docs", *args, url=url)


def test_committed_docs_equal_the_generated_text(generated):
    for path, text in generated.items():
        committed = path.read_text() if path.exists() else ""
        if committed != text:
            pytest.fail(
                f"{path} is stale: run `efir-pipeline docs` on a database at the latest "
                "migration and commit the result.\n" + docgen.diff(committed, text, path)[:4000]
            )


def test_every_view_and_column_is_documented_with_its_comment(docs_db, generated):
    text = reference(generated)
    with psycopg.connect(docs_db, autocommit=True) as c:
        for view in catalog.VIEWS:
            assert f"### `{view.qualified_name}`" in text
            rows = c.execute(
                """SELECT a.attname, col_description(a.attrelid, a.attnum) FROM pg_attribute a
                   WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped""",
                (view.qualified_name,),
            ).fetchall()
            undocumented = [name for name, text in rows if not text]
            assert undocumented == [], f"{view.name}: columns without a COMMENT"
            for name, comment in rows:
                assert f"| `{name}` |" in text and docgen.cell(comment) in text


def test_every_setting_is_in_the_env_template_and_the_guide(generated):
    env = generated[docgen.PROJECT_ROOT / docgen.ENV_EXAMPLE]
    guide = generated[docgen.PROJECT_ROOT / docgen.GUIDE]
    for spec in specs():
        assert f"{spec.env}=" in env
        assert f"| `{spec.env}` |" in guide


def test_rendering_is_deterministic(docs_db, generated):
    with psycopg.connect(docs_db, autocommit=True) as c:
        assert docgen.render_all(c) == generated


def test_cell_keeps_a_markdown_table_intact():
    assert docgen.cell("a | b\nc") == "a \\| b c"
    assert docgen.cell(None) == ""


def test_the_guide_needs_its_markers():
    with pytest.raises(ValueError, match="markers"):
        settings_docs.splice_guide("# Guide without the settings section\n")


def test_docs_check_reports_a_stale_file_and_docs_rewrites_it(docs_db, generated, tmp_path):
    target = tmp_path / docgen.REFERENCE
    target.parent.mkdir(parents=True)
    target.write_text("# stale\n")
    stale = run_docs("--check", "--root", str(tmp_path), url=docs_db)
    assert stale.returncode == 1
    assert "stale" in stale.stderr and "+# Reference" in stale.stdout
    assert target.read_text() == "# stale\n"  # --check never writes

    written = run_docs("--root", str(tmp_path), url=docs_db)
    assert written.returncode == 0, written.stderr
    assert target.read_text() == reference(generated)
    assert run_docs("--check", "--root", str(tmp_path), url=docs_db).returncode == 0


def test_docs_refuse_a_database_behind_the_latest_migration(make_database, tmp_path):
    url = make_database(migrated=False)
    migrate.upgrade(url, "0002_refresh_history")
    result = run_docs("--root", str(tmp_path), url=url)
    assert result.returncode == 4
    assert "db upgrade" in result.stderr
    assert not (tmp_path / "docs").exists()
