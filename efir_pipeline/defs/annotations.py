"""What a Dagster user expects to find on a view's asset besides its refresh.

- **Code version**: a digest of the migration that defines the view's SQL (the catalog's
  ``defined_in``), so Dagster marks a view "new code version" exactly when a migration
  redefining it lands and until it is refreshed.
- **Code references**: links to that migration and to the view's catalog entry.
- **Column lineage**: for a view reading another, which of the upstream's columns each
  of its columns is computed from (declared in the catalog; a test holds the declaration
  to what PostgreSQL says the view reads).
- **Freshness policy**: a backstop in Dagster's own terms. The nightly schedule
  refreshes every view once a day, so a view not materialized for 26 hours has missed
  a night; the freshness checks do the finer, change-aware work.
- **Owners**: ``EFIR_ASSET_OWNERS``.
"""

from __future__ import annotations

import hashlib
import re
import warnings
from datetime import timedelta
from functools import cache
from pathlib import Path

import dagster as dg

from efir_pipeline.core import catalog
from efir_pipeline.core.catalog import ManagedView
from efir_pipeline.core.settings import PROJECT_ROOT
from efir_pipeline.defs.keys import view_asset_key

MIGRATIONS = PROJECT_ROOT / "migrations" / "versions"
CATALOG_FILE = Path(catalog.__file__)
FRESHNESS_FAIL_WINDOW = timedelta(hours=26)
"""A day between nightly refreshes, plus two hours for a slow night."""


def migration_file(view: ManagedView) -> Path:
    return MIGRATIONS / f"{view.defined_in}.py"


@cache
def code_version(view: ManagedView) -> str:
    """``<revision>:<sha256 of its file, 12 hex digits>``; the revision alone when the
    migrations are not next to the package (an installed wheel)."""
    path = migration_file(view)
    if not path.exists():
        return view.defined_in
    return f"{view.defined_in}:{hashlib.sha256(path.read_bytes()).hexdigest()[:12]}"


def _line_of(path: Path, pattern: str) -> int | None:
    if not path.exists():
        return None
    regex = re.compile(pattern)
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if regex.search(line):
            return number
    return None


def code_references(view: ManagedView) -> dg.CodeReferencesMetadataValue:
    migration = migration_file(view)
    with warnings.catch_warnings():  # beta in 1.13, and what the UI's "source" links read
        warnings.simplefilter("ignore", dg.BetaWarning)
        return _code_references(view, migration)


def _code_references(view: ManagedView, migration: Path) -> dg.CodeReferencesMetadataValue:
    return dg.CodeReferencesMetadataValue(
        code_references=[
            dg.LocalFileCodeReference(
                file_path=str(migration),
                line_number=_line_of(migration, rf"VIEW efir_budget\.{view.live_view}\b"),
                label=f"SQL: migration {view.defined_in}",
            ),
            dg.LocalFileCodeReference(
                file_path=str(CATALOG_FILE),
                line_number=_line_of(CATALOG_FILE, rf'name="{view.name}"'),
                label="catalog entry",
            ),
        ]
    )


def column_lineage(view: ManagedView) -> dg.TableColumnLineage | None:
    if not view.column_lineage:
        return None
    upstream = view_asset_key(view.depends_on[0])
    return dg.TableColumnLineage(
        deps_by_column={
            column: [dg.TableColumnDep(asset_key=upstream, column_name=c) for c in sources]
            for column, sources in view.column_lineage
        }
    )


def freshness_policy() -> dg.FreshnessPolicy:
    return dg.FreshnessPolicy.time_window(fail_window=FRESHNESS_FAIL_WINDOW)
