"""Realistic demo data for the efir_budget schema, generated set-based inside PostgreSQL.

Why it is built this way:

- Set-based. Each table is filled by ONE ``INSERT ... SELECT`` over generate_series,
  small parameter tables (``VALUES``) and joins with the reference tables. Python sends
  about twenty statements whatever the scale: EFIR scale (10 versions, 3,191 rows) takes
  0.2 s, the network scale (600 schools x 20 versions, 3.8 M rows) 70-85 s on two cores,
  about a third of it in the foreign-key checks every inserted row goes through.
- Deterministic without a random generator. Every "random" figure is
  ``hashtextextended('<seed>:<key>', 0)`` of a key naming what it is for (school,
  fiscal year, version slot, level, nationality, account ...), and every id is
  ``md5('<seed>:<table>:<key>')::uuid``; timestamps are derived from the fiscal year
  and the same hashes, never from now(). Nothing depends on execution order,
  parallel workers or the database's own reference ids, so the same seed gives
  identical rows (ids and timestamps included) in any database, and another seed
  other data. The seed is baked into a few ``pg_temp`` SQL functions created for the
  load (inlined by the planner) and dropped at its end.
- Consistent like the budget application's own data. Each table is derived from the
  ones before it: enrollment -> classes -> DHG hours -> teacher allocations ->
  teaching salaries; enrollment -> revenue; every plan -> budget_consolidations. The
  KPIs therefore agree with each other (students per class, H/E ratio, FTE gap, margin).
- One transaction. A failed or interrupted load leaves nothing behind; ``replace``
  deletes the schools' previous data inside the same transaction, so readers see the
  old data or the new, never a mix.

Calendar convention: fiscal_year N is the school year that starts in September N, so
its academic_year is ``'N-(N+1)'`` (fiscal 2026 = '2026-2027'). Its initial budget is
prepared from February to June of N and revised in the autumn of N (tuition billed by
trimester: 40 % / 30 % / 30 %).

Scales: ``orgs=1`` is EFIR itself (code ``EFIR``, ~1,800 students, 10 versions over
fiscal 2024-2026 unless ``versions_per_org`` says otherwise); ``orgs>1`` are schools
``SCH0001``... of 300 to 3,000 students with the same proportions, each with
``versions_per_org`` versions (4 per fiscal year, the latest year ending on the one
working version), or EFIR's version set when it is None.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date

import psycopg
from psycopg import sql

from efir_pipeline.core.errors import EfirError

SCHEMA = "efir_budget"
SCALES: dict[str, tuple[int, int | None]] = {"efir": (1, None), "network": (600, 20)}
MAX_ORGS = 10_000
"""Past this a load takes hours (600 schools take about a minute): surely a typo."""
MAX_VERSIONS_PER_ORG = 100

LATEST_FISCAL_YEAR = 2026
BASE_FISCAL_YEAR = 2025  # the year the sizes and prices below are given for
EARLIEST_FISCAL_YEAR = 2000  # ck_budget_versions_fiscal_year
VERSIONS_PER_YEAR = 4
TIMEZONE = "Asia/Riyadh"

EFIR_CODE = "EFIR"
EFIR_NAME = "École Française Internationale de Riyad"
EFIR_STUDENTS = 1800  # in BASE_FISCAL_YEAR
# "Fixed" costs (premises, management) are given for EFIR's size; a smaller school has
# smaller premises and team: they scale with (students / EFIR_STUDENTS) ** FIXED_COST_ELASTICITY.
FIXED_COST_ELASTICITY = 0.7
# Small schools charge more (their classes are smaller): tuition x (EFIR_STUDENTS /
# school size) ** TARIFF_ELASTICITY, 1.0 for EFIR.
TARIFF_ELASTICITY = 0.12
EFIR_GROWTH = 0.025  # students per year
PRICE_GROWTH = 0.03  # tuition, salaries and costs per year
NETWORK_STUDENTS = (300, 3000)

Progress = Callable[[str, int, int], None]

# --------------------------------------------------------------------------------------
# Parameters of the model (per level, cycle, nationality, category, subject, account)
# --------------------------------------------------------------------------------------

# Share of a school's students in each level (percent): fewer in PS, more in elementary.
LEVEL_SHARES: dict[str, float] = {
    "PS": 5.0, "MS": 6.0, "GS": 6.5,
    "CP": 7.5, "CE1": 7.5, "CE2": 7.5, "CM1": 7.5, "CM2": 7.5,
    "6EME": 7.0, "5EME": 7.0, "4EME": 6.5, "3EME": 6.5,
    "2NDE": 6.5, "1ERE": 6.0, "TLE": 5.5,
}  # fmt: skip
EXAM_LEVELS = ("3EME", "1ERE", "TLE")  # DNB, bac de français, baccalauréat

# Nationality mix and the tuition factor of each nationality's tariff.
NATIONALITIES: dict[str, tuple[float, float]] = {
    #          share, tuition factor
    "FRENCH": (0.35, 0.92),
    "SAUDI": (0.25, 1.05),
    "OTHER": (0.40, 1.10),
}


@dataclass(frozen=True)
class Cycle:
    max_class_size: int
    weekly_hours_per_class: float  # teaching hours a class receives (DHG), all subjects
    tuition_sar: int  # yearly tuition per student in BASE_FISCAL_YEAR, before nationality
    detached_share: float  # share of teacher FTE that are AEFE detached teachers
    funded_share: float  # ... AEFE funded (résidents); the rest are local hires
    local_salary_sar: int  # yearly cost of a local teacher FTE in BASE_FISCAL_YEAR


CYCLES: dict[str, Cycle] = {
    "MAT": Cycle(24, 27.0, 31_000, 0.10, 0.22, 185_000),
    "ELEM": Cycle(26, 31.0, 34_500, 0.12, 0.22, 190_000),
    "COLL": Cycle(28, 31.5, 40_000, 0.16, 0.26, 215_000),
    "LYC": Cycle(28, 33.0, 43_000, 0.18, 0.26, 225_000),
}

# Teacher categories: salary account and yearly cost per FTE borne by the school
# (LOCAL: per cycle, above).
TEACHER_CATEGORIES: dict[str, tuple[str, int | None]] = {
    "AEFE_DETACHED": ("64111", 500_000),
    "AEFE_FUNDED": ("64112", 320_000),
    "LOCAL": ("64113", None),
}
LOCAL_ONLY_SUBJECTS = ("ARAB", "ISLA")  # taught by local staff only

# Weekly hours per class of each subject in MAT, ELEM, COLL, LYC. Per cycle they are
# rescaled to the cycle's weekly_hours_per_class over the subjects the reference table
# holds; a reference subject missing here counts 1 h in each secondary cycle. A subject
# taught only in primary cycles has a 24 h teaching standard, any other 18 h.
CURRICULUM: dict[str, tuple[float, float, float, float]] = {
    "POLY": (24.0, 24.0, 0.0, 0.0),
    "ARAB": (2.0, 3.0, 3.0, 2.0),
    "ANGL": (1.0, 3.0, 3.5, 3.0),
    "ISLA": (0.0, 1.0, 1.0, 1.0),
    "FRAN": (0.0, 0.0, 4.5, 4.0),
    "MATH": (0.0, 0.0, 4.0, 4.5),
    "HIST": (0.0, 0.0, 3.0, 3.0),
    "ESPA": (0.0, 0.0, 2.5, 2.5),
    "ALLE": (0.0, 0.0, 0.5, 0.5),
    "LATN": (0.0, 0.0, 0.5, 0.5),
    "EPS": (0.0, 0.0, 3.0, 2.0),
    "SVT": (0.0, 0.0, 1.5, 2.0),
    "PHYS": (0.0, 0.0, 1.5, 3.0),
    "TECH": (0.0, 0.0, 1.5, 0.0),
    "NSI": (0.0, 0.0, 0.0, 1.0),
    "ARTS": (0.0, 0.0, 1.0, 0.5),
    "MUSI": (0.0, 0.0, 1.0, 0.5),
    "EMC": (0.0, 0.0, 0.5, 0.5),
    "SES": (0.0, 0.0, 0.0, 1.5),
    "PHIL": (0.0, 0.0, 0.0, 1.5),
}
PRIMARY_STANDARD_HOURS = 24
SECONDARY_STANDARD_HOURS = 18

# Revenue accounts. amount = rate x basis x price index (tuition: share of the tuition).
# basis: tuition | students | new_students | returning_students | exam_students |
# size (students / 1,800: scales a fixed amount with the school).
REVENUE_ACCOUNTS: tuple[tuple[str, str, str, int | None, str, float], ...] = (
    # account, description, category, trimester, basis, rate
    ("70111", "Frais de scolarité - 1er trimestre", "tuition", 1, "tuition", 0.40),
    ("70112", "Frais de scolarité - 2e trimestre", "tuition", 2, "tuition", 0.30),
    ("70113", "Frais de scolarité - 3e trimestre", "tuition", 3, "tuition", 0.30),
    ("70201", "Frais de dossier d'inscription", "fees", None, "new_students", 1_600),
    ("70202", "Droit annuel d'inscription (DAI)", "fees", None, "students", 3_200),
    ("70301", "Droits de première inscription", "fees", None, "new_students", 5_000),
    ("70302", "Frais de réinscription", "fees", None, "returning_students", 500),
    ("70611", "Restauration scolaire", "other", None, "students", 1_050),
    ("70621", "Transport scolaire", "other", None, "students", 750),
    ("70631", "Activités périscolaires", "other", None, "students", 300),
    ("70811", "Droits d'examens (DNB, baccalauréat)", "other", None, "exam_students", 900),
    ("70821", "Locations de salles et d'installations", "other", None, "size", 120_000),
    ("76811", "Produits financiers", "other", None, "size", 180_000),
)

# Non-teaching staff: FTE = base x size factor + students / students_per_fte (ATSEM: one
# per MAT class).
STAFF_ACCOUNTS: tuple[tuple[str, str, float, int | None, int], ...] = (
    # account, description, base FTE, students per FTE (None: ATSEM), yearly cost per FTE
    ("64121", "Rémunérations - direction", 2.0, 600, 520_000),
    ("64122", "Rémunérations - secrétariat et administration", 1.0, 120, 150_000),
    ("64123", "Rémunérations - comptabilité et finances", 1.0, 450, 210_000),
    ("64124", "Rémunérations - ressources humaines et admissions", 1.0, 700, 170_000),
    ("64125", "Rémunérations - communication et relations avec les familles", 1.0, 900, 160_000),
    ("64131", "Rémunérations - ATSEM", 0.0, None, 95_000),
    ("64132", "Rémunérations - vie scolaire et surveillance", 1.0, 100, 110_000),
    ("64133", "Rémunérations - maintenance, entretien et sécurité", 3.0, 90, 75_000),
    ("64134", "Rémunérations - informatique", 1.0, 600, 220_000),
    ("64135", "Rémunérations - infirmerie", 1.0, 1000, 180_000),
)

# Social charges: FTE covered (local staff, all staff or AEFE teachers) x yearly cost.
SOCIAL_ACCOUNTS: tuple[tuple[str, str, str, int], ...] = (
    ("64511", "Cotisations sociales GOSI (personnels locaux)", "local", 24_000),
    ("64521", "Assurance médicale des personnels", "all", 14_000),
    ("64531", "Provision pour indemnités de fin de service", "local", 10_000),
    ("64541", "Contribution pensions AEFE (part établissement)", "aefe", 42_000),
)

# Operating costs: amount = (fixed x size factor + per student x students + per class x classes)
# x price index + share of tuition; category gives the consolidation bucket.
OPERATING_ACCOUNTS: tuple[tuple[str, str, str, int, int, int, float], ...] = (
    # account, description, category, fixed, per student, per class, share of tuition
    ("60221", "Fournitures scolaires", "supplies", 20_000, 650, 0, 0.0),
    ("60225", "Manuels scolaires et ressources pédagogiques", "supplies", 0, 380, 0, 0.0),
    ("60226", "Fournitures administratives", "supplies", 60_000, 60, 0, 0.0),
    ("60228", "Produits d'entretien", "supplies", 30_000, 70, 0, 0.0),
    ("60611", "Électricité et climatisation", "utilities", 250_000, 1_200, 0, 0.0),
    ("60612", "Eau", "utilities", 40_000, 160, 0, 0.0),
    ("62610", "Télécommunications et internet", "utilities", 90_000, 45, 0, 0.0),
    ("61521", "Entretien et réparations des bâtiments", "maintenance", 150_000, 420, 0, 0.0),
    ("61551", "Maintenance des équipements", "maintenance", 40_000, 0, 3_000, 0.0),
    ("61561", "Maintenance informatique", "maintenance", 80_000, 120, 0, 0.0),
    ("61611", "Assurance multirisque des locaux", "insurance", 180_000, 120, 0, 0.0),
    ("61621", "Assurance responsabilité civile et scolaire", "insurance", 40_000, 60, 0, 0.0),
    ("61321", "Loyer des locaux scolaires", "other", 2_800_000, 2_900, 0, 0.0),
    ("62261", "Honoraires (audit, conseil juridique)", "other", 220_000, 40, 0, 0.0),
    ("62281", "Sous-traitance nettoyage et gardiennage", "other", 200_000, 250, 0, 0.0),
    ("62411", "Transport scolaire sous-traité", "other", 0, 420, 0, 0.0),
    ("62511", "Voyages, missions et sorties pédagogiques", "other", 50_000, 110, 0, 0.0),
    ("62810", "Formation continue des personnels", "other", 60_000, 0, 1_800, 0.0),
    ("62850", "Participation financière complémentaire AEFE", "other", 0, 0, 0, 0.06),
)

# Capital expenditure: quantity = base + per x basis (classes | secondary_classes |
# students | teachers); bought in the summer before the school year (month).
CAPEX_ACCOUNTS: tuple[tuple[str, str, str, float, float, int, int, int], ...] = (
    # account, description, basis, base qty, per basis, unit cost, depreciation years, month
    ("20510", "Logiciel de gestion scolaire (ERP)", "students", 1, 0.0, 180_000, 3, 7),
    ("20520", "Licences de logiciels pédagogiques", "classes", 0, 1.0, 1_800, 3, 8),
    ("21350", "Aménagement et rénovation des locaux (m²)", "students", 0, 0.35, 1_200, 20, 7),
    ("21541", "Matériel de laboratoire de sciences", "secondary_classes", 0, 0.3, 9_000, 7, 8),
    ("21543", "Tableaux numériques interactifs", "classes", 0, 0.15, 16_000, 5, 8),
    ("21550", "Équipements sportifs", "students", 2, 1 / 600, 25_000, 7, 7),
    ("21831", "Ordinateurs portables enseignants", "teachers", 0, 0.25, 5_200, 3, 8),
    ("21832", "Tablettes élèves", "students", 0, 0.04, 2_400, 3, 8),
    ("21833", "Serveurs et équipements réseau", "students", 2, 0.0, 45_000, 5, 7),
    ("21841", "Mobilier de classe (salle complète)", "classes", 0, 0.25, 25_000, 10, 7),
    ("21842", "Mobilier administratif", "students", 6, 1 / 300, 3_500, 10, 7),
)

CITIES = (
    "Djeddah", "Dammam", "Al Khobar", "Dubaï", "Abou Dabi", "Doha", "Koweït", "Manama",
    "Mascate", "Amman", "Beyrouth", "Le Caire", "Alexandrie", "Casablanca", "Rabat",
    "Marrakech", "Tunis", "Alger", "Dakar", "Abidjan", "Nairobi", "Istanbul", "Ankara",
    "Athènes", "Madrid", "Lisbonne", "Londres", "New York", "Montréal", "Mexico",
    "São Paulo", "Buenos Aires", "Singapour", "Hong Kong", "Shanghai", "Pékin", "Tokyo",
    "Séoul", "Bangkok", "Hanoï", "Pondichéry", "Tananarive",
)  # fmt: skip

# --------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------


class DemoDataError(EfirError, ValueError):
    """The demo data cannot be loaded as asked (bad arguments, schools already there)."""

    exit_code = 2


class DemoDataExists(DemoDataError):
    """The schools to generate already exist and replace was not asked for."""


@dataclass(frozen=True)
class DemoSummary:
    organizations: int
    versions: int
    rows: dict[str, int]
    seconds: float


@dataclass(frozen=True)
class VersionSpec:
    """One budget version of every generated school (the same set for each)."""

    fiscal_year: int
    slot: int  # 0 draft, 1 initial budget, 2 first revision, 3 second revision
    status: str

    @property
    def name(self) -> str:
        fy = self.fiscal_year
        return (
            f"Budget initial {fy} - brouillon",
            f"Budget initial {fy}",
            f"Révision 1 {fy}",
            f"Révision 2 {fy}",
        )[self.slot]

    @property
    def is_baseline(self) -> bool:
        return self.status == "approved" and self.slot == 1

    @property
    def notes(self) -> str:
        return {
            "working": "Version de travail en cours",
            "submitted": "Soumise au conseil d'établissement",
            "approved": "Approuvée par le conseil d'établissement",
            "forecast": "Prévision de clôture de l'exercice",
            "superseded": "Remplacée par une version ultérieure",
        }[self.status]

    @property
    def created_on(self) -> date:
        fy = self.fiscal_year
        if self.slot == 3 and self.status != "working":
            return date(fy + 1, 1, 18)
        return (date(fy, 2, 2), date(fy, 3, 9), date(fy, 9, 28), date(fy, 11, 2))[self.slot]


STEPS = (
    "prepare",
    "organizations",
    "budget_versions",
    "enrollment_plans",
    "class_structures",
    "dhg_teacher_requirements",
    "teacher_allocations",
    "revenue_plans",
    "personnel_cost_plans",
    "operating_cost_plans",
    "capex_plans",
    "budget_consolidations",
    "analyze",
)
TABLES = STEPS[1:-1]


def academic_year(fiscal_year: int) -> str:
    """Fiscal year N is the school year starting in September N."""
    return f"{fiscal_year}-{fiscal_year + 1}"


def efir_versions() -> list[VersionSpec]:
    """EFIR's own set: 10 versions over fiscal 2024-2026, every status present."""
    specs = []
    for fy in (2024, 2025):
        specs += [VersionSpec(fy, 0, "superseded"), VersionSpec(fy, 1, "approved")]
        specs += [VersionSpec(fy, 2, "forecast")]
    specs += [
        VersionSpec(2026, 0, "superseded"),
        VersionSpec(2026, 1, "approved"),
        VersionSpec(2026, 2, "submitted"),
        VersionSpec(2026, 3, "working"),
    ]
    return specs


def network_versions(count: int) -> list[VersionSpec]:
    """``count`` versions, four per fiscal year, ending in LATEST_FISCAL_YEAR.

    Per year: a superseded draft, the approved initial budget, a first revision
    (forecast, or submitted in the latest year) and a second revision (forecast); the
    very last version is the one working version (so one per school and year at most).
    """
    last_year = (count - 1) // VERSIONS_PER_YEAR
    specs = []
    for i in range(count):
        year, slot = divmod(i, VERSIONS_PER_YEAR)
        if i == count - 1:
            status = "working"
        elif slot == 2 and year == last_year:
            status = "submitted"
        else:
            status = ("superseded", "approved", "forecast", "forecast")[slot]
        specs.append(VersionSpec(LATEST_FISCAL_YEAR - last_year + year, slot, status))
    return specs


def has_data(conn: psycopg.Connection) -> bool:
    """Whether any non-deleted budget version exists (False when the schema is missing)."""
    if conn.execute("SELECT to_regclass('efir_budget.budget_versions')").fetchone()[0] is None:
        return False
    return conn.execute(
        "SELECT EXISTS (SELECT 1 FROM efir_budget.budget_versions WHERE deleted_at IS NULL)"
    ).fetchone()[0]


def load_demo_data(
    conn: psycopg.Connection,
    *,
    orgs: int = 1,
    versions_per_org: int | None = None,
    seed: int = 42,
    replace: bool = False,
    progress: Progress | None = None,
) -> DemoSummary:
    """Generate ``orgs`` schools with their budget versions and plans, in one transaction.

    Raises DemoDataExists when a school to generate already exists (by code or id,
    soft-deleted ones included) unless ``replace`` is true; then their versions and
    every child row are deleted first, in the same transaction.
    """
    specs = _version_specs(orgs, versions_per_org)
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise DemoDataError(f"seed must be an integer (got {seed!r})")
    started = time.perf_counter()
    rows: dict[str, int] = {}
    step = _stepper(progress)
    with conn.transaction(), conn.cursor() as cur:
        _prepare(cur, seed=seed, orgs=orgs, specs=specs, replace=replace)
        step("prepare")
        for table, insert in _INSERTS.items():
            cur.execute(insert())
            rows[table] = cur.rowcount
            step(table)
        cur.execute(sql.SQL("ANALYZE {}").format(sql.SQL(", ").join(map(_table, TABLES))))
        _cleanup(cur)
        step("analyze")
    return DemoSummary(
        organizations=rows["organizations"],
        versions=rows["budget_versions"],
        rows=rows,
        seconds=round(time.perf_counter() - started, 3),
    )


# --------------------------------------------------------------------------------------
# Preparation: session settings, seeded functions, the schools and versions to create
# --------------------------------------------------------------------------------------


def _version_specs(orgs: int, versions_per_org: int | None) -> list[VersionSpec]:
    if not isinstance(orgs, int) or orgs < 1:
        raise DemoDataError(f"orgs must be a positive integer (got {orgs!r})")
    if versions_per_org is None:
        return efir_versions()
    max_versions = VERSIONS_PER_YEAR * (LATEST_FISCAL_YEAR - EARLIEST_FISCAL_YEAR + 1)
    if not isinstance(versions_per_org, int) or not 1 <= versions_per_org <= max_versions:
        raise DemoDataError(
            f"versions_per_org must be between 1 and {max_versions} (got {versions_per_org!r})"
        )
    return network_versions(versions_per_org)


def _stepper(progress: Progress | None) -> Callable[[str], None]:
    done = iter(range(1, len(STEPS) + 1))

    def step(name: str) -> None:
        index = next(done)
        if progress is not None:
            progress(name, index, len(STEPS))

    return step


def _prepare(
    cur: psycopg.Cursor, *, seed: int, orgs: int, specs: list[VersionSpec], replace: bool
) -> None:
    cur.execute("SET LOCAL synchronous_commit = off")
    # Day arithmetic on timestamptz follows the session time zone (DST): fix it, so the
    # timestamps do not depend on the caller's TimeZone setting.
    cur.execute("SET LOCAL TimeZone = 'UTC'")
    cur.execute("SET LOCAL work_mem = '256MB'")
    _cleanup(cur)
    _create_functions(cur, seed)
    _create_orgs(cur, orgs=orgs, first_fiscal_year=min(s.fiscal_year for s in specs))
    _check_existing(cur, replace=replace)
    _create_versions(cur, specs)
    _create_curriculum(cur)


def _create_functions(cur: psycopg.Cursor, seed: int) -> None:
    """Seeded pseudo-random helpers: pure functions of (seed, key), inlined by the planner.

    demo_unit(key)   uniform in [0, 1)        demo_jitter(key, spread)  1 +/- spread
    demo_id(key)     md5-derived uuid          demo_created/updated      row timestamps
    """
    prefix = f"'{int(seed)}:'"
    # (signature, volatility, body). timestamptz + interval is STABLE, and a function
    # declared less volatile than its body is not inlined (14 us a call instead of 0.3).
    functions = (
        (
            "demo_unit(key text) RETURNS double precision",
            "IMMUTABLE",
            f"SELECT (hashtextextended({prefix} || key, 0) & 4503599627370495)::double precision"
            " / 4503599627370496",
        ),
        (
            "demo_jitter(key text, spread numeric) RETURNS numeric",
            "IMMUTABLE",
            "SELECT 1 + spread * (2 * pg_temp.demo_unit(key) - 1)::numeric",
        ),
        ("demo_id(key text) RETURNS uuid", "IMMUTABLE", f"SELECT md5({prefix} || key)::uuid"),
        # A row is created within two hours of its version, then edited during the
        # version's editing window (creation to last status change).
        (
            "demo_created(base timestamptz, key text) RETURNS timestamptz",
            "STABLE",
            "SELECT base + pg_temp.demo_unit(key || ':created') * interval '2 hours'",
        ),
        (
            "demo_updated(base timestamptz, edit_window interval, key text) RETURNS timestamptz",
            "STABLE",
            "SELECT pg_temp.demo_created(base, key)"
            " + pg_temp.demo_unit(key || ':updated') * edit_window",
        ),
    )
    for signature, volatility, body in functions:
        cur.execute(
            f"CREATE FUNCTION pg_temp.{signature} LANGUAGE sql {volatility} PARALLEL SAFE"
            f" AS $$ {body} $$"
        )


_TEMP_FUNCTIONS = (
    "demo_updated(timestamptz, interval, text)",
    "demo_created(timestamptz, text)",
    "demo_id(text)",
    "demo_jitter(text, numeric)",
    "demo_unit(text)",
)
_TEMP_TABLES = ("_demo_curriculum", "_demo_versions", "_demo_old_versions", "_demo_orgs")


def _cleanup(cur: psycopg.Cursor) -> None:
    """Drop this load's temporary objects (also left-overs of an earlier call in the session)."""
    cur.execute("DROP TABLE IF EXISTS " + ", ".join(f"pg_temp.{t}" for t in _TEMP_TABLES))
    for function in _TEMP_FUNCTIONS:
        cur.execute(f"DROP FUNCTION IF EXISTS pg_temp.{function}")


def _create_orgs(cur: psycopg.Cursor, *, orgs: int, first_fiscal_year: int) -> None:
    """The schools to generate: EFIR alone, or SCH0001... of 300-3,000 students."""
    cur.execute(
        """
        CREATE TEMP TABLE _demo_orgs ON COMMIT DROP AS
        WITH numbered AS (
            SELECT n AS org_no,
                   CASE WHEN %(efir)s THEN %(efir_code)s
                        ELSE 'SCH' || lpad(n::text, %(width)s, '0') END AS code
            FROM generate_series(1, %(orgs)s) AS n
        ), sized AS (
            SELECT g.org_no, g.code,
                   pg_temp.demo_id('organizations:' || g.code) AS id,
                   CASE WHEN %(efir)s THEN %(efir_name)s
                        ELSE 'École française internationale - '
                             || (%(cities)s::text[])[1 + (g.org_no - 1) %% cardinality(%(cities)s::text[])]
                             || ' (' || g.code || ')'
                   END AS name,
                   -- more small schools than large ones
                   CASE WHEN %(efir)s THEN %(efir_students)s
                        ELSE %(min_students)s + (%(max_students)s - %(min_students)s)
                             * power(pg_temp.demo_unit(g.code || ':size'), 1.5)
                   END::numeric AS students_base,
                   CASE WHEN %(efir)s THEN %(efir_growth)s
                        ELSE 0.005 + 0.04 * pg_temp.demo_unit(g.code || ':growth')
                   END::numeric AS growth,
                   make_timestamptz(%(first_fiscal_year)s - 1, 6, 1, 10, 0, 0, %(tz)s)
                       + pg_temp.demo_unit(g.code || ':created') * interval '150 days'
                       AS created_at
            FROM numbered AS g
        )
        SELECT s.*,
               power(%(efir_students)s / s.students_base, %(tariff_elasticity)s::numeric)
                   AS tariff
        FROM sized AS s
        """,
        {
            "efir": orgs == 1,
            "efir_code": EFIR_CODE,
            "efir_name": EFIR_NAME,
            "efir_students": EFIR_STUDENTS,
            "efir_growth": EFIR_GROWTH,
            "tariff_elasticity": TARIFF_ELASTICITY,
            "min_students": NETWORK_STUDENTS[0],
            "max_students": NETWORK_STUDENTS[1],
            "cities": list(CITIES),
            "orgs": orgs,
            "width": max(4, len(str(orgs))),
            "first_fiscal_year": first_fiscal_year,
            "tz": TIMEZONE,
        },
    )


def _check_existing(cur: psycopg.Cursor, *, replace: bool) -> None:
    """Refuse to overwrite schools, or (replace) delete them with all their versions."""
    cur.execute(
        """
        SELECT o.id, o.code FROM efir_budget.organizations AS o
        WHERE o.code IN (SELECT code FROM _demo_orgs) OR o.id IN (SELECT id FROM _demo_orgs)
        ORDER BY o.code
        """
    )
    existing = cur.fetchall()
    if not existing:
        return
    if not replace:
        codes = [code for _, code in existing]
        shown = ", ".join(codes[:5]) + (f" and {len(codes) - 5} more" if len(codes) > 5 else "")
        raise DemoDataExists(
            f"{len(codes)} demo organization(s) already exist ({shown}): use replace=True "
            "(efir-pipeline demo-data --replace) to delete them and load them again"
        )
    _delete_organizations(cur, [org_id for org_id, _ in existing])


def _delete_organizations(cur: psycopg.Cursor, org_ids: list) -> None:
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
    for table, column in _tables_referencing(cur, "efir_budget.budget_versions"):
        cur.execute(
            sql.SQL("DELETE FROM {} WHERE {} IN (SELECT id FROM _demo_old_versions)").format(
                sql.SQL(table), sql.Identifier(column)
            )
        )
    cur.execute(
        "DELETE FROM efir_budget.budget_versions WHERE id IN (SELECT id FROM _demo_old_versions)"
    )
    cur.execute("DELETE FROM efir_budget.organizations WHERE id = ANY(%s)", (org_ids,))


def _tables_referencing(cur: psycopg.Cursor, table: str) -> list[tuple[str, str]]:
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


def _create_versions(cur: psycopg.Cursor, specs: list[VersionSpec]) -> None:
    """Every school x every version spec, with its size, price index and timestamps."""
    cur.execute(
        """
        CREATE TEMP TABLE _demo_versions ON COMMIT DROP AS
        WITH spec AS (
            SELECT * FROM unnest(%(fiscal_year)s::int[], %(academic_year)s::text[],
                                 %(slot)s::int[], %(status)s::text[], %(name)s::text[],
                                 %(is_baseline)s::boolean[], %(notes)s::text[],
                                 %(created_on)s::date[])
                AS s (fiscal_year, academic_year, slot, status, name, is_baseline, notes,
                      created_on)
        ), keyed AS (
            SELECT o.id AS organization_id, o.code || ':' || s.fiscal_year AS year_key,
                   o.code || ':' || s.fiscal_year || ':' || s.slot AS key, o.students_base,
                   o.growth, o.tariff, s.*
            FROM _demo_orgs AS o CROSS JOIN spec AS s
        ), created AS (
            SELECT k.*,
                   (k.created_on + time '09:00') AT TIME ZONE %(tz)s
                       + pg_temp.demo_unit(k.key || ':created') * interval '5 days' AS created_at
            FROM keyed AS k
        ), submitted AS (
            SELECT c.*,
                   CASE WHEN c.status IN ('submitted', 'approved') THEN
                       c.created_at + interval '25 days'
                       + pg_temp.demo_unit(c.key || ':submitted') * interval '10 days'
                   END AS submitted_at
            FROM created AS c
        ), approved AS (
            SELECT s.*,
                   CASE WHEN s.status = 'approved' THEN
                       s.submitted_at + interval '30 days'
                       + pg_temp.demo_unit(s.key || ':approved') * interval '15 days'
                   END AS approved_at
            FROM submitted AS s
        ), stamped AS (
            SELECT pg_temp.demo_id('budget_versions:' || a.key) AS id,
                   a.organization_id, a.key, a.fiscal_year, a.academic_year, a.slot, a.status,
                   a.name,
                   a.is_baseline, a.notes, a.tariff,
                   CASE WHEN a.slot > 0 THEN
                       pg_temp.demo_id('budget_versions:' || a.year_key || ':' || (a.slot - 1))
                   END AS parent_version_id,
                   -- school size this year (growth); versions of a year differ by a few %%
                   a.students_base * power(1 + a.growth, a.fiscal_year - %(base_year)s)
                       * pg_temp.demo_jitter(a.key || ':students', 0.02) AS students,
                   power(1 + %(price_growth)s::numeric, a.fiscal_year - %(base_year)s)
                       * pg_temp.demo_jitter(a.key || ':prices', 0.01) AS price_index,
                   a.created_at, a.submitted_at, a.approved_at,
                   coalesce(a.approved_at, a.submitted_at,
                            a.created_at + interval '3 days'
                            + pg_temp.demo_unit(a.key || ':updated') * interval '12 days'
                   ) AS updated_at
            FROM approved AS a
        )
        SELECT s.*, s.updated_at - s.created_at AS edit_window FROM stamped AS s
        """,
        {
            "fiscal_year": [s.fiscal_year for s in specs],
            "academic_year": [academic_year(s.fiscal_year) for s in specs],
            "slot": [s.slot for s in specs],
            "status": [s.status for s in specs],
            "name": [s.name for s in specs],
            "is_baseline": [s.is_baseline for s in specs],
            "notes": [s.notes for s in specs],
            "created_on": [s.created_on for s in specs],
            "tz": TIMEZONE,
            "base_year": BASE_FISCAL_YEAR,
            "price_growth": PRICE_GROWTH,
        },
    )
    cur.execute("ALTER TABLE _demo_versions ADD PRIMARY KEY (id)")
    cur.execute("ANALYZE _demo_versions")


def _create_curriculum(cur: psycopg.Cursor) -> None:
    """Weekly hours per class of each (subject, cycle), scaled to the cycle's total."""
    cur.execute(
        sql.SQL(
            """
            CREATE TEMP TABLE _demo_curriculum ON COMMIT DROP AS
            WITH cycles AS (
                SELECT c.id, c.code, bool_or(l.is_secondary) AS is_secondary
                FROM efir_budget.academic_cycles AS c
                JOIN efir_budget.academic_levels AS l ON l.cycle_id = c.id AND l.deleted_at IS NULL
                WHERE c.deleted_at IS NULL
                GROUP BY c.id, c.code
            ), weights AS (
                SELECT s.id AS subject_id, s.code AS subject_code, c.id AS cycle_id,
                       c.code AS cycle_code, c.is_secondary,
                       CASE WHEN k.subject_code IS NULL THEN
                                CASE WHEN c.is_secondary THEN 1.0 ELSE 0.0 END
                            WHEN c.code = 'MAT' THEN k.mat
                            WHEN c.code = 'ELEM' THEN k.elem
                            WHEN c.code = 'COLL' THEN k.coll
                            WHEN c.code = 'LYC' THEN k.lyc
                            ELSE 0.0
                       END::numeric AS weight
                FROM efir_budget.subjects AS s
                CROSS JOIN cycles AS c
                LEFT JOIN {curriculum} AS k (subject_code, mat, elem, coll, lyc)
                    ON k.subject_code = s.code
                WHERE s.deleted_at IS NULL
            )
            SELECT w.subject_id, w.subject_code, w.cycle_id, w.cycle_code,
                   w.weight * p.weekly_hours
                       / sum(w.weight) OVER (PARTITION BY w.cycle_id) AS hours_per_class,
                   CASE WHEN bool_or(w.is_secondary) OVER (PARTITION BY w.subject_id)
                        THEN {secondary} ELSE {primary} END::numeric AS standard_hours
            FROM weights AS w
            JOIN {cycles} AS p (code, weekly_hours) ON p.code = w.cycle_code
            WHERE w.weight > 0
            """
        ).format(
            curriculum=_values((code, *hours) for code, hours in CURRICULUM.items()),
            cycles=_values((code, c.weekly_hours_per_class) for code, c in CYCLES.items()),
            secondary=sql.Literal(SECONDARY_STANDARD_HOURS),
            primary=sql.Literal(PRIMARY_STANDARD_HOURS),
        )
    )
    cur.execute("ANALYZE _demo_curriculum")


# --------------------------------------------------------------------------------------
# One INSERT ... SELECT per table, each derived from the tables before it
# --------------------------------------------------------------------------------------


def _insert_organizations() -> sql.Composable:
    return sql.SQL(
        """
        INSERT INTO efir_budget.organizations (id, code, name, created_at, updated_at)
        SELECT id, code, name, created_at, created_at FROM _demo_orgs ORDER BY org_no
        """
    )


def _insert_budget_versions() -> sql.Composable:
    return sql.SQL(
        """
        INSERT INTO efir_budget.budget_versions
            (id, organization_id, name, fiscal_year, academic_year, status, submitted_at,
             approved_at, notes, is_baseline, parent_version_id, created_at, updated_at)
        SELECT id, organization_id, name, fiscal_year, academic_year,
               status::efir_budget.budget_version_status, submitted_at, approved_at, notes,
               is_baseline, parent_version_id, created_at, updated_at
        FROM _demo_versions
        ORDER BY organization_id, fiscal_year, slot
        """
    )


def _insert_enrollment_plans() -> sql.Composable:
    """Students per level and nationality: the school's size x level share x nationality mix."""
    return sql.SQL(
        """
        INSERT INTO efir_budget.enrollment_plans
            (id, budget_version_id, level_id, nationality_type_id, student_count,
             created_at, updated_at)
        SELECT pg_temp.demo_id('enrollment_plans:' || k.key),
               v.id, l.id, n.id,
               round(v.students * ls.percent / 100
                     * pg_temp.demo_jitter(v.key || ':' || l.code, 0.06)
                     * ns.share * pg_temp.demo_jitter(k.key, 0.10))::integer,
               pg_temp.demo_created(v.created_at, k.key),
               pg_temp.demo_updated(v.created_at, v.edit_window, k.key)
        FROM _demo_versions AS v
        CROSS JOIN efir_budget.academic_levels AS l
        JOIN {level_shares} AS ls (code, percent) ON ls.code = l.code
        CROSS JOIN efir_budget.nationality_types AS n
        JOIN {nationality_shares} AS ns (code, share) ON ns.code = n.code
        CROSS JOIN LATERAL (SELECT v.key || ':' || l.code || ':' || n.code AS key) AS k
        WHERE l.deleted_at IS NULL AND n.deleted_at IS NULL
        """
    ).format(
        level_shares=_values(LEVEL_SHARES.items()),
        nationality_shares=_values((code, share) for code, (share, _) in NATIONALITIES.items()),
    )


def _insert_class_structures() -> sql.Composable:
    """Classes per level: ceil(students / the cycle's maximum class size); ATSEM in MAT."""
    return sql.SQL(
        """
        INSERT INTO efir_budget.class_structures
            (id, budget_version_id, level_id, total_students, number_of_classes,
             avg_class_size, requires_atsem, atsem_count, created_at, updated_at)
        SELECT pg_temp.demo_id('class_structures:' || s.key),
               s.version_id, s.level_id, s.students, s.classes,
               round(s.students::numeric / s.classes, 2),
               s.requires_atsem,
               CASE WHEN s.requires_atsem THEN s.classes ELSE 0 END,
               pg_temp.demo_created(s.created_at, s.key),
               pg_temp.demo_updated(s.created_at, s.edit_window, s.key)
        FROM (
            SELECT v.id AS version_id, v.key || ':' || l.code AS key, v.created_at,
                   v.edit_window, l.id AS level_id, c.requires_atsem,
                   sum(e.student_count)::integer AS students,
                   greatest(1, ceil(sum(e.student_count)::numeric / p.max_class_size))::integer
                       AS classes
            FROM _demo_versions AS v
            JOIN efir_budget.enrollment_plans AS e ON e.budget_version_id = v.id
            JOIN efir_budget.academic_levels AS l ON l.id = e.level_id
            JOIN efir_budget.academic_cycles AS c ON c.id = l.cycle_id
            JOIN {cycles} AS p (code, max_class_size) ON p.code = c.code
            WHERE e.deleted_at IS NULL
            GROUP BY v.id, l.id, l.code, c.requires_atsem, p.max_class_size
        ) AS s
        """
    ).format(cycles=_values((code, c.max_class_size) for code, c in CYCLES.items()))


# Weekly hours of each (version, subject, cycle): classes x the curriculum's hours.
_HOURS_BY_CYCLE = """
    SELECT cs.budget_version_id, cu.subject_id, cu.subject_code, cu.cycle_id, cu.cycle_code,
           cu.standard_hours, sum(cs.number_of_classes * cu.hours_per_class) AS hours
    FROM efir_budget.class_structures AS cs
    JOIN _demo_versions AS v ON v.id = cs.budget_version_id
    JOIN efir_budget.academic_levels AS l ON l.id = cs.level_id
    JOIN _demo_curriculum AS cu ON cu.cycle_id = l.cycle_id
    WHERE cs.deleted_at IS NULL
    GROUP BY cs.budget_version_id, cu.subject_id, cu.subject_code, cu.cycle_id, cu.cycle_code,
             cu.standard_hours
"""


def _insert_dhg_teacher_requirements() -> sql.Composable:
    """DHG per subject: hours -> FTE at 18 h (secondary) or 24 h (primary).

    rounded_fte keeps the whole posts and adds one when more than half a post is
    left; what the posts do not cover is paid as overtime (HSA).
    """
    return sql.SQL(
        """
        INSERT INTO efir_budget.dhg_teacher_requirements
            (id, budget_version_id, subject_id, total_hours_per_week, standard_teaching_hours,
             simple_fte, rounded_fte, hsa_hours, created_at, updated_at)
        SELECT pg_temp.demo_id('dhg_teacher_requirements:' || k.key),
               v.id, d.subject_id, d.hours, d.standard_hours, d.simple_fte, d.rounded_fte,
               greatest(0, d.hours - d.rounded_fte * d.standard_hours),
               pg_temp.demo_created(v.created_at, k.key),
               pg_temp.demo_updated(v.created_at, v.edit_window, k.key)
        FROM (
            SELECT t.*, round(t.hours / t.standard_hours, 2) AS simple_fte,
                   (floor(t.hours / t.standard_hours)
                    + CASE WHEN t.hours / t.standard_hours - floor(t.hours / t.standard_hours) > 0.5
                           THEN 1 ELSE 0 END)::integer AS rounded_fte
            FROM (
                SELECT h.budget_version_id, h.subject_id, h.subject_code, h.standard_hours,
                       round(sum(h.hours), 2) AS hours
                FROM ({hours}) AS h
                GROUP BY h.budget_version_id, h.subject_id, h.subject_code, h.standard_hours
            ) AS t
        ) AS d
        JOIN _demo_versions AS v ON v.id = d.budget_version_id
        CROSS JOIN LATERAL (SELECT v.key || ':' || d.subject_code AS key) AS k
        """
    ).format(hours=sql.SQL(_HOURS_BY_CYCLE))


def _insert_teacher_allocations() -> sql.Composable:
    """FTE per subject x cycle x category: the need, covered, split by category.

    Each version staffs 97-104 % of its need (+/-2 % per subject and cycle), so the
    allocation is close to the requirement and sometimes under it. Arabic and Islamic
    studies are taught by local staff only; elsewhere the AEFE shares of the cycle vary
    by +/-30 % per version and subject.
    """
    return sql.SQL(
        """
        INSERT INTO efir_budget.teacher_allocations
            (id, budget_version_id, subject_id, cycle_id, category_id, fte_count,
             created_at, updated_at)
        SELECT pg_temp.demo_id('teacher_allocations:' || k.key),
               a.budget_version_id, a.subject_id, a.cycle_id, tc.id, k.fte,
               pg_temp.demo_created(a.created_at, k.key),
               pg_temp.demo_updated(a.created_at, a.edit_window, k.key)
        FROM (
            SELECT h.*, v.created_at, v.edit_window,
                   (0.97 + 0.07 * pg_temp.demo_unit(v.key || ':staffing'))::numeric
                       * pg_temp.demo_jitter(sk.key || ':coverage', 0.02) AS coverage,
                   CASE WHEN h.subject_code IN ({local_only}) THEN 0
                        ELSE p.detached_share * pg_temp.demo_jitter(sk.key || ':detached', 0.3)
                   END AS detached,
                   CASE WHEN h.subject_code IN ({local_only}) THEN 0
                        ELSE p.funded_share * pg_temp.demo_jitter(sk.key || ':funded', 0.3)
                   END AS funded,
                   sk.key AS subject_key
            FROM ({hours}) AS h
            JOIN _demo_versions AS v ON v.id = h.budget_version_id
            JOIN {cycles} AS p (code, detached_share, funded_share) ON p.code = h.cycle_code
            CROSS JOIN LATERAL (
                SELECT v.key || ':' || h.subject_code || ':' || h.cycle_code AS key
            ) AS sk
        ) AS a
        CROSS JOIN efir_budget.teacher_categories AS tc
        CROSS JOIN LATERAL (
            SELECT a.subject_key || ':' || tc.code AS key,
                   round(a.hours / a.standard_hours * a.coverage
                         * CASE tc.code WHEN 'AEFE_DETACHED' THEN a.detached
                                        WHEN 'AEFE_FUNDED' THEN a.funded
                                        ELSE 1 - a.detached - a.funded END, 2) AS fte
        ) AS k
        WHERE tc.deleted_at IS NULL AND tc.code IN ('AEFE_DETACHED', 'AEFE_FUNDED', 'LOCAL')
          AND k.fte > 0
        """
    ).format(
        hours=sql.SQL(_HOURS_BY_CYCLE),
        local_only=sql.SQL(", ").join(map(sql.Literal, LOCAL_ONLY_SUBJECTS)),
        cycles=_values((code, c.detached_share, c.funded_share) for code, c in CYCLES.items()),
    )


def _insert_revenue_plans() -> sql.Composable:
    """Revenue accounts from the enrollment: tuition by tariff, fees and other income."""
    return sql.SQL(
        """
        INSERT INTO efir_budget.revenue_plans
            (id, budget_version_id, account_code, description, category, amount_sar, trimester,
             created_at, updated_at)
        SELECT pg_temp.demo_id('revenue_plans:' || k.key),
               b.id, r.account_code, r.description, r.category,
               round(CASE r.basis
                         WHEN 'tuition' THEN b.tuition * r.rate
                         ELSE r.rate * b.price_index * pg_temp.demo_jitter(k.key, 0.03)
                              * CASE r.basis
                                    WHEN 'students' THEN b.students
                                    WHEN 'new_students' THEN b.new_students
                                    WHEN 'returning_students' THEN b.students - b.new_students
                                    WHEN 'exam_students' THEN b.exam_students
                                    WHEN 'size' THEN b.students / {reference_size}
                                END
                     END, 2),
               r.trimester,
               pg_temp.demo_created(b.created_at, k.key),
               pg_temp.demo_updated(b.created_at, b.edit_window, k.key)
        FROM (
            SELECT v.id, v.key, v.created_at, v.edit_window, v.price_index,
                   sum(e.student_count)::numeric AS students,
                   round(sum(e.student_count)
                         * (0.15 + 0.07 * pg_temp.demo_unit(v.key || ':new'))::numeric)
                       AS new_students,
                   coalesce(sum(e.student_count) FILTER (WHERE l.code IN ({exam_levels})), 0)
                       AS exam_students,
                   sum(e.student_count * t.tuition_sar * nt.factor) * v.price_index * v.tariff
                       AS tuition
            FROM _demo_versions AS v
            JOIN efir_budget.enrollment_plans AS e ON e.budget_version_id = v.id
            JOIN efir_budget.academic_levels AS l ON l.id = e.level_id
            JOIN efir_budget.academic_cycles AS c ON c.id = l.cycle_id
            JOIN {tuition} AS t (code, tuition_sar) ON t.code = c.code
            JOIN efir_budget.nationality_types AS n ON n.id = e.nationality_type_id
            JOIN {nationality_factors} AS nt (code, factor) ON nt.code = n.code
            WHERE e.deleted_at IS NULL
            GROUP BY v.id
        ) AS b
        CROSS JOIN {accounts} AS r (account_code, description, category, trimester, basis, rate)
        CROSS JOIN LATERAL (SELECT b.key || ':' || r.account_code AS key) AS k
        """
    ).format(
        reference_size=sql.Literal(EFIR_STUDENTS),
        exam_levels=sql.SQL(", ").join(map(sql.Literal, EXAM_LEVELS)),
        tuition=_values((code, c.tuition_sar) for code, c in CYCLES.items()),
        nationality_factors=_values((code, f) for code, (_, f) in NATIONALITIES.items()),
        accounts=_values(
            REVENUE_ACCOUNTS, casts=("text", "text", "text", "int", "text", "numeric")
        ),
    )


def _insert_personnel_cost_plans() -> sql.Composable:
    """Teaching salaries from the allocations, staff from the school's size, then charges."""
    return sql.SQL(
        """
        INSERT INTO efir_budget.personnel_cost_plans
            (id, budget_version_id, account_code, description, category_id, cycle_id,
             fte_count, unit_cost_sar, total_cost_sar, created_at, updated_at)
        WITH teaching AS (
            SELECT a.budget_version_id, tcost.account_code,
                   'Rémunérations enseignants - ' || tc.name_fr AS description,
                   tc.id AS category_id, c.id AS cycle_id, tc.code || ':' || c.code AS line,
                   tc.is_aefe, sum(a.fte_count) AS fte,
                   coalesce(tcost.unit_cost, p.local_salary) AS unit_cost
            FROM efir_budget.teacher_allocations AS a
            JOIN _demo_versions AS v ON v.id = a.budget_version_id
            JOIN efir_budget.teacher_categories AS tc ON tc.id = a.category_id
            JOIN {categories} AS tcost (code, account_code, unit_cost) ON tcost.code = tc.code
            JOIN efir_budget.academic_cycles AS c ON c.id = a.cycle_id
            JOIN {cycles} AS p (code, local_salary) ON p.code = c.code
            WHERE a.deleted_at IS NULL
            GROUP BY a.budget_version_id, tcost.account_code, tc.id, tc.name_fr, tc.code,
                     tc.is_aefe, c.id, c.code, tcost.unit_cost, p.local_salary
        ), size AS (
            SELECT cs.budget_version_id, sum(cs.total_students) AS students,
                   sum(cs.atsem_count) AS atsem
            FROM efir_budget.class_structures AS cs
            JOIN _demo_versions AS v ON v.id = cs.budget_version_id
            WHERE cs.deleted_at IS NULL
            GROUP BY cs.budget_version_id
        ), staff AS (
            SELECT z.budget_version_id, s.account_code, s.description,
                   NULL::uuid AS category_id, NULL::uuid AS cycle_id, '' AS line,
                   false AS is_aefe,
                   CASE WHEN s.students_per_fte IS NULL THEN z.atsem
                        ELSE round((s.base_fte * power(z.students::numeric / {efir_size}, {elasticity})
                                    + z.students / s.students_per_fte) * 2
                                   * pg_temp.demo_jitter(v.key || ':' || s.account_code, 0.05))
                             / 2
                   END AS fte,
                   s.unit_cost
            FROM size AS z
            JOIN _demo_versions AS v ON v.id = z.budget_version_id
            CROSS JOIN {staff} AS s (account_code, description, base_fte, students_per_fte,
                                     unit_cost)
        ), employed AS (
            SELECT * FROM teaching UNION ALL SELECT * FROM staff
        ), social AS (
            SELECT e.budget_version_id, s.account_code, s.description,
                   NULL::uuid AS category_id, NULL::uuid AS cycle_id, '' AS line,
                   false AS is_aefe,
                   sum(e.fte) FILTER (WHERE CASE s.basis WHEN 'local' THEN NOT e.is_aefe
                                                          WHEN 'aefe' THEN e.is_aefe
                                                          ELSE true END) AS fte,
                   s.unit_cost
            FROM employed AS e
            CROSS JOIN {social} AS s (account_code, description, basis, unit_cost)
            GROUP BY e.budget_version_id, s.account_code, s.description, s.basis, s.unit_cost
        ), lines AS (
            SELECT * FROM employed UNION ALL SELECT * FROM social
        )
        SELECT pg_temp.demo_id('personnel_cost_plans:' || k.key),
               v.id, l.account_code, l.description, l.category_id, l.cycle_id,
               l.fte, k.unit_cost, round(l.fte * k.unit_cost, 2),
               pg_temp.demo_created(v.created_at, k.key),
               pg_temp.demo_updated(v.created_at, v.edit_window, k.key)
        FROM lines AS l
        JOIN _demo_versions AS v ON v.id = l.budget_version_id
        CROSS JOIN LATERAL (
            SELECT v.key || ':' || l.account_code || ':' || l.line AS key,
                   round(l.unit_cost * v.price_index
                         * pg_temp.demo_jitter(v.key || ':' || l.account_code || ':' || l.line
                                               || ':cost', 0.02), 2) AS unit_cost
        ) AS k
        WHERE l.fte > 0
        """
    ).format(
        categories=_values(
            ((code, account, cost) for code, (account, cost) in TEACHER_CATEGORIES.items()),
            casts=("text", "text", "numeric"),
        ),
        cycles=_values((code, c.local_salary_sar) for code, c in CYCLES.items()),
        staff=_values(STAFF_ACCOUNTS, casts=("text", "text", "numeric", "numeric", "numeric")),
        social=_values(SOCIAL_ACCOUNTS),
        efir_size=sql.Literal(EFIR_STUDENTS),
        elasticity=_literal(FIXED_COST_ELASTICITY),
    )


def _insert_operating_cost_plans() -> sql.Composable:
    """Operating costs driven by students, classes and tuition (the AEFE contribution)."""
    return sql.SQL(
        """
        INSERT INTO efir_budget.operating_cost_plans
            (id, budget_version_id, account_code, description, category, amount_sar,
             created_at, updated_at)
        SELECT pg_temp.demo_id('operating_cost_plans:' || k.key),
               b.id, o.account_code, o.description, o.category,
               round(((o.fixed * power(b.students::numeric / {efir_size}, {elasticity})
                       + o.per_student * b.students + o.per_class * b.classes)
                      * b.price_index + o.tuition_share * b.tuition)
                     * pg_temp.demo_jitter(k.key, 0.06), 2),
               pg_temp.demo_created(b.created_at, k.key),
               pg_temp.demo_updated(b.created_at, b.edit_window, k.key)
        FROM (
            SELECT v.id, v.key, v.created_at, v.edit_window, v.price_index,
                   sum(cs.total_students) AS students, sum(cs.number_of_classes) AS classes,
                   (SELECT coalesce(sum(r.amount_sar), 0) FROM efir_budget.revenue_plans AS r
                    WHERE r.budget_version_id = v.id AND r.account_code LIKE '701%'
                      AND r.deleted_at IS NULL) AS tuition
            FROM _demo_versions AS v
            JOIN efir_budget.class_structures AS cs ON cs.budget_version_id = v.id
            WHERE cs.deleted_at IS NULL
            GROUP BY v.id
        ) AS b
        CROSS JOIN {accounts} AS o (account_code, description, category, fixed, per_student,
                                    per_class, tuition_share)
        CROSS JOIN LATERAL (SELECT b.key || ':' || o.account_code AS key) AS k
        """
    ).format(
        accounts=_values(
            OPERATING_ACCOUNTS,
            casts=("text", "text", "text", "numeric", "numeric", "numeric", "numeric"),
        ),
        efir_size=sql.Literal(EFIR_STUDENTS),
        elasticity=_literal(FIXED_COST_ELASTICITY),
    )


def _insert_capex_plans() -> sql.Composable:
    """Equipment bought in the summer before the school year, sized by the school."""
    return sql.SQL(
        """
        INSERT INTO efir_budget.capex_plans
            (id, budget_version_id, account_code, description, quantity, unit_cost_sar,
             total_cost_sar, depreciation_years, acquisition_date, created_at, updated_at)
        SELECT pg_temp.demo_id('capex_plans:' || k.key),
               b.id, x.account_code, x.description, k.quantity, k.unit_cost,
               k.quantity * k.unit_cost, x.depreciation_years,
               make_date(b.fiscal_year, x.month, 1)
                   + floor(pg_temp.demo_unit(k.key || ':date') * 28)::integer,
               pg_temp.demo_created(b.created_at, k.key),
               pg_temp.demo_updated(b.created_at, b.edit_window, k.key)
        FROM (
            SELECT v.id, v.key, v.fiscal_year, v.created_at, v.edit_window, v.price_index,
                   sum(cs.total_students) AS students, sum(cs.number_of_classes) AS classes,
                   sum(cs.number_of_classes) FILTER (WHERE l.is_secondary) AS secondary_classes,
                   (SELECT coalesce(sum(a.fte_count), 0) FROM efir_budget.teacher_allocations AS a
                    WHERE a.budget_version_id = v.id AND a.deleted_at IS NULL) AS teachers
            FROM _demo_versions AS v
            JOIN efir_budget.class_structures AS cs ON cs.budget_version_id = v.id
            JOIN efir_budget.academic_levels AS l ON l.id = cs.level_id
            WHERE cs.deleted_at IS NULL
            GROUP BY v.id
        ) AS b
        CROSS JOIN {accounts} AS x (account_code, description, basis, base_quantity,
                                    per_basis, unit_cost, depreciation_years, month)
        CROSS JOIN LATERAL (
            SELECT b.key || ':' || x.account_code AS key
        ) AS kk
        CROSS JOIN LATERAL (
            SELECT kk.key,
                   greatest(1, round((x.base_quantity + x.per_basis
                                      * CASE x.basis WHEN 'classes' THEN b.classes
                                                     WHEN 'secondary_classes'
                                                         THEN coalesce(b.secondary_classes, 0)
                                                     WHEN 'teachers' THEN b.teachers
                                                     ELSE b.students END)
                                     * pg_temp.demo_jitter(kk.key || ':quantity', 0.25)))::integer
                       AS quantity,
                   round(x.unit_cost * b.price_index
                         * pg_temp.demo_jitter(kk.key || ':cost', 0.05), 2) AS unit_cost
        ) AS k
        """
    ).format(
        accounts=_values(
            CAPEX_ACCOUNTS,
            casts=("text", "text", "text", "numeric", "numeric", "numeric", "int", "int"),
        )
    )


def _insert_budget_consolidations() -> sql.Composable:
    """One row per (version, account): the total of the plan lines booked on it."""
    return sql.SQL(
        """
        INSERT INTO efir_budget.budget_consolidations
            (id, budget_version_id, account_code, account_name, consolidation_category,
             is_revenue, amount_sar, source_table, source_count, created_at, updated_at)
        SELECT pg_temp.demo_id('budget_consolidations:' || k.key),
               v.id, t.account_code, t.account_name,
               CASE
                   WHEN t.account_code LIKE '701%' THEN 'revenue_tuition'
                   WHEN t.account_code LIKE '702%' OR t.account_code LIKE '703%'
                       THEN 'revenue_fees'
                   WHEN t.account_code LIKE '7%' THEN 'revenue_other'
                   WHEN t.account_code LIKE '6411%' THEN 'personnel_teaching'
                   WHEN t.account_code LIKE '6412%' THEN 'personnel_admin'
                   WHEN t.account_code LIKE '6413%' THEN 'personnel_support'
                   WHEN t.account_code LIKE '645%' THEN 'personnel_social'
                   WHEN t.source_table = 'operating_cost_plans' THEN 'operating_' || t.category
                   WHEN t.account_code LIKE '205%' THEN 'capex_software'
                   WHEN t.account_code LIKE '213%' THEN 'capex_building'
                   WHEN t.account_code LIKE '2183%' THEN 'capex_it'
                   WHEN t.account_code LIKE '2184%' THEN 'capex_furniture'
                   ELSE 'capex_equipment'
               END::efir_budget.consolidation_category,
               t.account_code LIKE '7%', t.amount, t.source_table, t.source_count,
               pg_temp.demo_created(v.created_at, k.key),
               pg_temp.demo_updated(v.created_at, v.edit_window, k.key)
        FROM (
            SELECT p.budget_version_id, p.account_code, p.source_table,
                   min(p.description) AS account_name, min(p.category) AS category,
                   sum(p.amount) AS amount, count(*) AS source_count
            FROM (
                SELECT budget_version_id, account_code, description, NULL AS category,
                       amount_sar AS amount, 'revenue_plans' AS source_table
                FROM efir_budget.revenue_plans WHERE deleted_at IS NULL
                UNION ALL
                SELECT budget_version_id, account_code, description, NULL,
                       total_cost_sar, 'personnel_cost_plans'
                FROM efir_budget.personnel_cost_plans WHERE deleted_at IS NULL
                UNION ALL
                SELECT budget_version_id, account_code, description, category,
                       amount_sar, 'operating_cost_plans'
                FROM efir_budget.operating_cost_plans WHERE deleted_at IS NULL
                UNION ALL
                SELECT budget_version_id, account_code, description, NULL,
                       total_cost_sar, 'capex_plans'
                FROM efir_budget.capex_plans WHERE deleted_at IS NULL
            ) AS p
            JOIN _demo_versions AS dv ON dv.id = p.budget_version_id
            GROUP BY p.budget_version_id, p.account_code, p.source_table
        ) AS t
        JOIN _demo_versions AS v ON v.id = t.budget_version_id
        CROSS JOIN LATERAL (SELECT v.key || ':' || t.account_code AS key) AS k
        """
    )


_INSERTS: dict[str, Callable[[], sql.Composable]] = {
    "organizations": _insert_organizations,
    "budget_versions": _insert_budget_versions,
    "enrollment_plans": _insert_enrollment_plans,
    "class_structures": _insert_class_structures,
    "dhg_teacher_requirements": _insert_dhg_teacher_requirements,
    "teacher_allocations": _insert_teacher_allocations,
    "revenue_plans": _insert_revenue_plans,
    "personnel_cost_plans": _insert_personnel_cost_plans,
    "operating_cost_plans": _insert_operating_cost_plans,
    "capex_plans": _insert_capex_plans,
    "budget_consolidations": _insert_budget_consolidations,
}
assert tuple(_INSERTS) == TABLES
assert math.isclose(sum(LEVEL_SHARES.values()), 100.0)
assert math.isclose(sum(share for share, _ in NATIONALITIES.values()), 1.0)


# --------------------------------------------------------------------------------------
# SQL helpers
# --------------------------------------------------------------------------------------


def _table(name: str) -> sql.Composable:
    return sql.Identifier(SCHEMA, name)


def _values(rows: Iterable[Sequence], casts: Sequence[str] | None = None) -> sql.Composable:
    """A ``(VALUES ...)`` list of literals; ``casts`` types the first row's columns."""
    rendered = []
    for i, row in enumerate(rows):
        cells = [_literal(value) for value in row]
        if i == 0 and casts:
            cells = [
                sql.SQL("{}::{}").format(cell, sql.SQL(cast))
                for cell, cast in zip(cells, casts, strict=True)
            ]
        rendered.append(sql.SQL("({})").format(sql.SQL(", ").join(cells)))
    return sql.SQL("(VALUES {})").format(sql.SQL(", ").join(rendered))


def _literal(value) -> sql.Composable:
    if isinstance(value, float):  # numeric, not float8: money stays exact
        return sql.SQL(repr(value))
    return sql.Literal(value)
