"""Realistic demo data for the efir_budget schema, generated set-based inside PostgreSQL.

Why it is built this way:

- Set-based. Each table is filled by ONE ``INSERT ... SELECT`` over generate_series,
  small parameter tables (``VALUES``) and joins with the reference tables. Python sends
  about forty statements whatever the scale: EFIR scale (10 versions, 3,191 rows) takes
  0.2 s, the network scale (600 schools x 20 versions, 3.8 M rows) 1.5 to 2 minutes on
  two cores (78 s on the machine of docs/performance.md), most of it in writing the rows
  with their indexes, foreign-key checks and change capture, not in computing them.
- Deterministic without a random generator. Every "random" figure is
  ``hashtextextended('<seed>:<key>', 0)`` of a key naming what it is for (school,
  fiscal year, version slot, level, nationality, account ...), and every id is
  ``md5('<seed>:<table>:<key>')::uuid``; timestamps are derived from the fiscal year
  and the same hashes, never from now(). The schema has no default for ids and
  timestamps (the budget app's ORM supplies them), so the loader supplies them too.
  Nothing depends on execution order, parallel workers or the database's own reference
  ids, so the same seed gives identical rows (ids and timestamps included) in any
  database, and another seed other data. The seed is baked into a few ``pg_temp`` SQL
  functions created for the load (inlined by the planner) and dropped at its end.
- Consistent like the budget application's own data. Each table is derived from the
  ones before it: enrollment -> classes -> DHG hours -> teacher allocations ->
  teaching salaries; enrollment -> revenue; every plan -> budget_consolidations. The
  KPIs therefore agree with each other (students per class, H/E ratio, FTE gap, margin),
  and every row satisfies the app's own CHECKs (no negative amount, classes of at most
  35, FTE > 0) by construction rather than by clamping.
- Recognised by name. ``organizations`` has no code, and the seed changes the ids, so
  a demo school is known by its name (``schools``): a second load refuses to create it
  again, and ``replace`` deletes exactly the schools it is about to generate, whatever
  seed made them, and never another organization.
- One transaction. A failed or interrupted load leaves nothing behind; ``replace``
  deletes the schools' previous data inside the same transaction, so readers see the
  old data or the new, never a mix.

Scales: ``orgs=1`` is EFIR itself (~1,800 students, 10 versions over fiscal 2024-2026
unless ``versions_per_org`` says otherwise); ``orgs>1`` are network schools of 300 to
3,000 students with the same proportions, each with ``versions_per_org`` versions (4 per
fiscal year, the latest year ending on the one working version), or EFIR's version set
when it is None. The calendar is in ``versions``, the school model in ``curriculum``
and ``accounts``.
"""

from __future__ import annotations

from efir_pipeline.cli.demo_data.errors import DemoDataError, DemoDataExists
from efir_pipeline.cli.demo_data.load import (
    STEPS,
    TABLES,
    DemoSummary,
    Progress,
    has_data,
    load_demo_data,
)
from efir_pipeline.cli.demo_data.schools import EFIR_NAME, NETWORK_NAME_PREFIX
from efir_pipeline.cli.demo_data.versions import (
    LATEST_FISCAL_YEAR,
    VersionSpec,
    academic_year,
    efir_versions,
    network_versions,
)

SCALES: dict[str, tuple[int, int | None]] = {"efir": (1, None), "network": (600, 20)}
MAX_ORGS = 10_000
"""Past this a load takes hours (600 schools take one to two minutes): surely a typo."""
MAX_VERSIONS_PER_ORG = 100

__all__ = [
    "EFIR_NAME",
    "LATEST_FISCAL_YEAR",
    "MAX_ORGS",
    "MAX_VERSIONS_PER_ORG",
    "NETWORK_NAME_PREFIX",
    "SCALES",
    "STEPS",
    "TABLES",
    "DemoDataError",
    "DemoDataExists",
    "DemoSummary",
    "Progress",
    "VersionSpec",
    "academic_year",
    "efir_versions",
    "has_data",
    "load_demo_data",
    "network_versions",
]
