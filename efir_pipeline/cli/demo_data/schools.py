"""The schools to generate, and the ones already there.

``organizations`` holds only an id, a name and an active flag: there is no code to
recognise a demo school by, and its id depends on the seed. A demo school is therefore
recognised by its name, which the seed never changes: EFIR by ``EFIR_NAME``, network
school n by ``NETWORK_NAME_PREFIX`` + its city + `` (SCH000n)``. Any other school of the
database (the budget app's own organization included) is never touched.
"""

from __future__ import annotations

import psycopg
from psycopg import sql

from efir_pipeline.cli.demo_data.errors import DemoDataExists

EFIR_NAME = "École Française Internationale de Riyad"
EFIR_KEY = "EFIR"  # the school's part of every hash key and id of the load
EFIR_STUDENTS = 1800  # in BASE_FISCAL_YEAR
EFIR_GROWTH = 0.025  # students per year
NETWORK_NAME_PREFIX = "École française internationale - "
NETWORK_STUDENTS = (300, 3000)
# Small schools charge more (their classes are smaller): tuition x (EFIR_STUDENTS /
# school size) ** TARIFF_ELASTICITY, 1.0 for EFIR.
TARIFF_ELASTICITY = 0.12

CITIES = (
    "Djeddah", "Dammam", "Al Khobar", "Dubaï", "Abou Dabi", "Doha", "Koweït", "Manama",
    "Mascate", "Amman", "Beyrouth", "Le Caire", "Alexandrie", "Casablanca", "Rabat",
    "Marrakech", "Tunis", "Alger", "Dakar", "Abidjan", "Nairobi", "Istanbul", "Ankara",
    "Athènes", "Madrid", "Lisbonne", "Londres", "New York", "Montréal", "Mexico",
    "São Paulo", "Buenos Aires", "Singapour", "Hong Kong", "Shanghai", "Pékin", "Tokyo",
    "Séoul", "Bangkok", "Hanoï", "Pondichéry", "Tananarive",
)  # fmt: skip

# key: EFIR, or SCH0001... (never stored: it names the school in hash keys and ids).
_ORGS_SQL = """
CREATE TEMP TABLE _demo_orgs ON COMMIT DROP AS
WITH numbered AS (
    SELECT n AS org_no,
           CASE WHEN %(efir)s THEN %(efir_key)s
                ELSE 'SCH' || lpad(n::text, %(width)s, '0') END AS key
    FROM generate_series(1, %(orgs)s) AS n
), sized AS (
    SELECT g.org_no, g.key,
           pg_temp.demo_id('organizations:' || g.key) AS id,
           CASE WHEN %(efir)s THEN %(efir_name)s
                ELSE %(prefix)s
                     || (%(cities)s::text[])[1 + (g.org_no - 1) %% cardinality(%(cities)s::text[])]
                     || ' (' || g.key || ')'
           END AS name,
           -- more small schools than large ones
           CASE WHEN %(efir)s THEN %(efir_students)s
                ELSE %(min_students)s + (%(max_students)s - %(min_students)s)
                     * power(pg_temp.demo_unit(g.key || ':size'), 1.5)
           END::numeric AS students_base,
           CASE WHEN %(efir)s THEN %(efir_growth)s
                ELSE 0.005 + 0.04 * pg_temp.demo_unit(g.key || ':growth')
           END::numeric AS growth
    FROM numbered AS g
)
SELECT s.*,
       power(%(efir_students)s / s.students_base, %(tariff_elasticity)s::numeric) AS tariff
FROM sized AS s
"""


def create_orgs(cur: psycopg.Cursor, *, orgs: int) -> None:
    """The schools to generate: EFIR alone, or SCH0001... of 300-3,000 students."""
    cur.execute(
        _ORGS_SQL,
        {
            "efir": orgs == 1,
            "efir_key": EFIR_KEY,
            "efir_name": EFIR_NAME,
            "efir_students": EFIR_STUDENTS,
            "efir_growth": EFIR_GROWTH,
            "tariff_elasticity": TARIFF_ELASTICITY,
            "min_students": NETWORK_STUDENTS[0],
            "max_students": NETWORK_STUDENTS[1],
            "prefix": NETWORK_NAME_PREFIX,
            "cities": list(CITIES),
            "orgs": orgs,
            "width": max(4, len(str(orgs))),
        },
    )
    cur.execute("ANALYZE _demo_orgs")


def check_existing(cur: psycopg.Cursor, *, replace: bool) -> None:
    """Refuse to overwrite schools, or (replace) delete them with all their versions.

    A school exists when one of the database's organizations has its name (whatever
    seed made it) or its id (a seed's ids, under a name since changed).
    """
    cur.execute(
        """
        SELECT o.id, o.name FROM efir_budget.organizations AS o
        WHERE o.name IN (SELECT name FROM _demo_orgs) OR o.id IN (SELECT id FROM _demo_orgs)
        ORDER BY o.name, o.id
        """
    )
    existing = cur.fetchall()
    if not existing:
        return
    if not replace:
        names = [name for _, name in existing]
        shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
        raise DemoDataExists(
            f"{len(names)} demo organization(s) already exist ({shown}): use replace=True "
            "(efir-pipeline demo-data --replace) to delete them and load them again"
        )
    delete_organizations(cur, [org_id for org_id, _ in existing])


def delete_organizations(cur: psycopg.Cursor, org_ids: list) -> None:
    """Hard-delete organizations, their versions and every row referencing those versions.

    Child rows are deleted set-based, table by table, before the versions: the
    ON DELETE CASCADE of the schema would otherwise run one DELETE per version.
    """
    cur.execute(
        """
        CREATE TEMP TABLE _demo_old_versions ON COMMIT DROP AS
        SELECT id FROM efir_budget.budget_versions WHERE organization_id = ANY(%s)
        """,
        (org_ids,),
    )
    cur.execute("ANALYZE _demo_old_versions")
    for table, column in tables_referencing(cur, "efir_budget.budget_versions"):
        cur.execute(
            sql.SQL("DELETE FROM {} WHERE {} IN (SELECT id FROM _demo_old_versions)").format(
                sql.SQL(table), sql.Identifier(column)
            )
        )
    cur.execute(
        "DELETE FROM efir_budget.budget_versions WHERE id IN (SELECT id FROM _demo_old_versions)"
    )
    cur.execute("DELETE FROM efir_budget.organizations WHERE id = ANY(%s)", (org_ids,))


def tables_referencing(cur: psycopg.Cursor, table: str) -> list[tuple[str, str]]:
    """(schema-qualified table, column) of single-column foreign keys from other tables."""
    cur.execute(
        """
        SELECT format('%%I.%%I', n.nspname, r.relname), a.attname
        FROM pg_constraint AS c
        JOIN pg_class AS r ON r.oid = c.conrelid
        JOIN pg_namespace AS n ON n.oid = r.relnamespace
        JOIN pg_attribute AS a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
        WHERE c.contype = 'f' AND c.confrelid = %s::regclass AND c.conrelid <> c.confrelid
          AND cardinality(c.conkey) = 1
        ORDER BY 1, 2
        """,
        (table,),
    )
    return cur.fetchall()
