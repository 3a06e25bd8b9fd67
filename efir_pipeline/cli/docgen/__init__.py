"""The generated docs: ``efir-pipeline docs`` writes them, ``--check`` and a test fail
while a committed file differs from what the code and a database at head say.

Why generated: the meaning of a KPI already lives in places tests hold to the truth
(the catalog and the COMMENTs the migrations put on every view and column), and every
setting is declared once with its default and range. A hand-written copy would drift.
"""

from __future__ import annotations

from pathlib import Path

import psycopg

from efir_pipeline.cli.docgen import reference, settings_docs
from efir_pipeline.cli.docgen.markdown import cell, diff, table
from efir_pipeline.core.db import migrate
from efir_pipeline.core.settings import PROJECT_ROOT

__all__ = ["PROJECT_ROOT", "cell", "diff", "render_all", "table"]

REFERENCE = Path("docs/reference.md")
ENV_EXAMPLE = Path("docs/examples/efir.env.example")
GUIDE = Path("docs/guide.md")


def render_all(conn: psycopg.Connection, root: Path = PROJECT_ROOT) -> dict[Path, str]:
    """Every generated file under ``root``, with its text (the guide keeps its prose)."""
    guide = root / GUIDE
    base = guide if guide.exists() else PROJECT_ROOT / GUIDE
    return {
        root / REFERENCE: reference.render(conn, migrate.head()),
        root / ENV_EXAMPLE: settings_docs.env_example(),
        guide: settings_docs.splice_guide(base.read_text()),
    }
