"""Source schema: the efir_budget planning tables the budget application writes.

This revision describes the tables exactly as the contract (DOMAIN.md) names them,
plus the reference rows every database needs. Two design points:

- Soft delete. A row with ``deleted_at IS NOT NULL`` does not exist for any KPI, so
  every business key is a UNIQUE INDEX partial on ``WHERE deleted_at IS NULL``: a
  key that was soft-deleted can be created again, and only live rows collide. The
  same holds for "at most one working version per (organization, fiscal year)".
- Existing databases. Production databases already hold these tables (created by
  the budget application). They run ``alembic stamp 0001_source_schema`` once and
  then only apply the later revisions; this one builds new and test databases.

Revision ID: 0001_source_schema
Revises:
Create Date: 2026-11-25
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0001_source_schema"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# Parents before children; downgrade drops them in reverse.
TABLES: tuple[str, ...] = (
    "organizations",
    "budget_versions",
    "academic_cycles",
    "academic_levels",
    "nationality_types",
    "teacher_categories",
    "subjects",
    "enrollment_plans",
    "class_structures",
    "dhg_teacher_requirements",
    "teacher_allocations",
    "revenue_plans",
    "personnel_cost_plans",
    "operating_cost_plans",
    "capex_plans",
    "budget_consolidations",
)

TYPES = """
CREATE TYPE efir_budget.budget_version_status AS ENUM (
    'working', 'submitted', 'approved', 'forecast', 'superseded'
);

CREATE TYPE efir_budget.consolidation_category AS ENUM (
    'revenue_tuition', 'revenue_fees', 'revenue_other',
    'personnel_teaching', 'personnel_admin', 'personnel_support', 'personnel_social',
    'operating_supplies', 'operating_utilities', 'operating_maintenance',
    'operating_insurance', 'operating_other',
    'capex_equipment', 'capex_it', 'capex_furniture', 'capex_building', 'capex_software'
);
"""

# ---------------------------------------------------------------------------
# Organizations and budget versions
# ---------------------------------------------------------------------------

ORGANIZATIONS = """
CREATE TABLE efir_budget.organizations (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    code       text NOT NULL,
    name       text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    deleted_at timestamptz
);

CREATE UNIQUE INDEX uq_organizations_code
    ON efir_budget.organizations (code) WHERE deleted_at IS NULL;
"""

BUDGET_VERSIONS = """
CREATE TABLE efir_budget.budget_versions (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    organization_id   uuid NOT NULL
        CONSTRAINT fk_budget_versions_organization_id
        REFERENCES efir_budget.organizations (id),
    name              text NOT NULL,
    fiscal_year       integer NOT NULL,
    academic_year     text NOT NULL,
    status            efir_budget.budget_version_status NOT NULL DEFAULT 'working',
    submitted_at      timestamptz,
    approved_at       timestamptz,
    notes             text,
    is_baseline       boolean NOT NULL DEFAULT false,
    parent_version_id uuid
        CONSTRAINT fk_budget_versions_parent_version_id
        REFERENCES efir_budget.budget_versions (id) ON DELETE SET NULL,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    deleted_at        timestamptz,
    CONSTRAINT ck_budget_versions_fiscal_year
        CHECK (fiscal_year BETWEEN 2000 AND 2100),
    -- 'YYYY-YYYY' with consecutive years; CASE so the casts only see well-formed text.
    CONSTRAINT ck_budget_versions_academic_year
        CHECK (CASE WHEN academic_year ~ '^[0-9]{4}-[0-9]{4}$'
                    THEN right(academic_year, 4)::integer = left(academic_year, 4)::integer + 1
                    ELSE false
               END),
    CONSTRAINT ck_budget_versions_parent_version_id
        CHECK (parent_version_id <> id)
);

CREATE UNIQUE INDEX uq_budget_versions_one_working
    ON efir_budget.budget_versions (organization_id, fiscal_year)
    WHERE status = 'working' AND deleted_at IS NULL;

CREATE INDEX ix_budget_versions_fiscal_year_status
    ON efir_budget.budget_versions (fiscal_year, status);

CREATE INDEX ix_budget_versions_organization_id_fiscal_year
    ON efir_budget.budget_versions (organization_id, fiscal_year);
"""

# ---------------------------------------------------------------------------
# Reference tables (rows inserted below)
# ---------------------------------------------------------------------------

ACADEMIC_CYCLES = """
CREATE TABLE efir_budget.academic_cycles (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    code           text NOT NULL,
    name_fr        text NOT NULL,
    name_en        text NOT NULL,
    sort_order     integer NOT NULL,
    requires_atsem boolean NOT NULL DEFAULT false,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    deleted_at     timestamptz,
    CONSTRAINT ck_academic_cycles_sort_order CHECK (sort_order > 0)
);

CREATE UNIQUE INDEX uq_academic_cycles_code
    ON efir_budget.academic_cycles (code) WHERE deleted_at IS NULL;
"""

ACADEMIC_LEVELS = """
CREATE TABLE efir_budget.academic_levels (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    cycle_id     uuid NOT NULL
        CONSTRAINT fk_academic_levels_cycle_id
        REFERENCES efir_budget.academic_cycles (id),
    code         text NOT NULL,
    name_fr      text NOT NULL,
    name_en      text NOT NULL,
    sort_order   integer NOT NULL,
    is_secondary boolean NOT NULL DEFAULT false,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    deleted_at   timestamptz,
    CONSTRAINT ck_academic_levels_sort_order CHECK (sort_order > 0)
);

CREATE UNIQUE INDEX uq_academic_levels_code
    ON efir_budget.academic_levels (code) WHERE deleted_at IS NULL;
"""

NATIONALITY_TYPES = """
CREATE TABLE efir_budget.nationality_types (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    code       text NOT NULL,
    name_fr    text NOT NULL,
    name_en    text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    deleted_at timestamptz
);

CREATE UNIQUE INDEX uq_nationality_types_code
    ON efir_budget.nationality_types (code) WHERE deleted_at IS NULL;
"""

TEACHER_CATEGORIES = """
CREATE TABLE efir_budget.teacher_categories (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    code       text NOT NULL,
    name_fr    text NOT NULL,
    name_en    text NOT NULL,
    is_aefe    boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    deleted_at timestamptz
);

CREATE UNIQUE INDEX uq_teacher_categories_code
    ON efir_budget.teacher_categories (code) WHERE deleted_at IS NULL;
"""

SUBJECTS = """
CREATE TABLE efir_budget.subjects (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    code       text NOT NULL,
    name_fr    text NOT NULL,
    name_en    text NOT NULL,
    category   text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    deleted_at timestamptz
);

CREATE UNIQUE INDEX uq_subjects_code
    ON efir_budget.subjects (code) WHERE deleted_at IS NULL;
"""

# ---------------------------------------------------------------------------
# Planning tables: children of a budget version (hard delete of a version cascades)
# ---------------------------------------------------------------------------

ENROLLMENT_PLANS = """
CREATE TABLE efir_budget.enrollment_plans (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    budget_version_id   uuid NOT NULL
        CONSTRAINT fk_enrollment_plans_budget_version_id
        REFERENCES efir_budget.budget_versions (id) ON DELETE CASCADE,
    level_id            uuid NOT NULL
        CONSTRAINT fk_enrollment_plans_level_id
        REFERENCES efir_budget.academic_levels (id),
    nationality_type_id uuid NOT NULL
        CONSTRAINT fk_enrollment_plans_nationality_type_id
        REFERENCES efir_budget.nationality_types (id),
    student_count       integer NOT NULL DEFAULT 0,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    deleted_at          timestamptz,
    CONSTRAINT ck_enrollment_plans_student_count CHECK (student_count >= 0)
);

CREATE UNIQUE INDEX uq_enrollment_plans_key
    ON efir_budget.enrollment_plans (budget_version_id, level_id, nationality_type_id)
    WHERE deleted_at IS NULL;

-- The key index is partial (live rows only); per-version reads that must also see
-- deleted rows (a deletion is a change) need a plain one.
CREATE INDEX ix_enrollment_plans_budget_version_id
    ON efir_budget.enrollment_plans (budget_version_id);
"""

CLASS_STRUCTURES = """
CREATE TABLE efir_budget.class_structures (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    budget_version_id uuid NOT NULL
        CONSTRAINT fk_class_structures_budget_version_id
        REFERENCES efir_budget.budget_versions (id) ON DELETE CASCADE,
    level_id          uuid NOT NULL
        CONSTRAINT fk_class_structures_level_id
        REFERENCES efir_budget.academic_levels (id),
    total_students    integer NOT NULL,
    number_of_classes integer NOT NULL,
    avg_class_size    numeric(5,2) NOT NULL,
    requires_atsem    boolean NOT NULL DEFAULT false,
    atsem_count       integer NOT NULL DEFAULT 0,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    deleted_at        timestamptz,
    CONSTRAINT ck_class_structures_total_students CHECK (total_students >= 0),
    CONSTRAINT ck_class_structures_number_of_classes CHECK (number_of_classes > 0),
    CONSTRAINT ck_class_structures_avg_class_size CHECK (avg_class_size >= 0),
    CONSTRAINT ck_class_structures_atsem_count CHECK (atsem_count >= 0)
);

CREATE UNIQUE INDEX uq_class_structures_key
    ON efir_budget.class_structures (budget_version_id, level_id)
    WHERE deleted_at IS NULL;

-- The key index is partial (live rows only); per-version reads that must also see
-- deleted rows (a deletion is a change) need a plain one.
CREATE INDEX ix_class_structures_budget_version_id
    ON efir_budget.class_structures (budget_version_id);
"""

DHG_TEACHER_REQUIREMENTS = """
CREATE TABLE efir_budget.dhg_teacher_requirements (
    id                      uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    budget_version_id       uuid NOT NULL
        CONSTRAINT fk_dhg_teacher_requirements_budget_version_id
        REFERENCES efir_budget.budget_versions (id) ON DELETE CASCADE,
    subject_id              uuid NOT NULL
        CONSTRAINT fk_dhg_teacher_requirements_subject_id
        REFERENCES efir_budget.subjects (id),
    total_hours_per_week    numeric(10,2) NOT NULL,
    standard_teaching_hours numeric(4,2) NOT NULL,
    simple_fte              numeric(6,2) NOT NULL,
    rounded_fte             integer NOT NULL,
    hsa_hours               numeric(6,2) NOT NULL DEFAULT 0,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    deleted_at              timestamptz,
    CONSTRAINT ck_dhg_teacher_requirements_total_hours_per_week
        CHECK (total_hours_per_week >= 0),
    CONSTRAINT ck_dhg_teacher_requirements_standard_teaching_hours
        CHECK (standard_teaching_hours > 0),
    CONSTRAINT ck_dhg_teacher_requirements_simple_fte CHECK (simple_fte >= 0),
    CONSTRAINT ck_dhg_teacher_requirements_rounded_fte CHECK (rounded_fte >= 0),
    CONSTRAINT ck_dhg_teacher_requirements_hsa_hours CHECK (hsa_hours >= 0)
);

CREATE UNIQUE INDEX uq_dhg_teacher_requirements_key
    ON efir_budget.dhg_teacher_requirements (budget_version_id, subject_id)
    WHERE deleted_at IS NULL;

-- The key index is partial (live rows only); per-version reads that must also see
-- deleted rows (a deletion is a change) need a plain one.
CREATE INDEX ix_dhg_teacher_requirements_budget_version_id
    ON efir_budget.dhg_teacher_requirements (budget_version_id);
"""

TEACHER_ALLOCATIONS = """
CREATE TABLE efir_budget.teacher_allocations (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    budget_version_id uuid NOT NULL
        CONSTRAINT fk_teacher_allocations_budget_version_id
        REFERENCES efir_budget.budget_versions (id) ON DELETE CASCADE,
    subject_id        uuid NOT NULL
        CONSTRAINT fk_teacher_allocations_subject_id
        REFERENCES efir_budget.subjects (id),
    cycle_id          uuid NOT NULL
        CONSTRAINT fk_teacher_allocations_cycle_id
        REFERENCES efir_budget.academic_cycles (id),
    category_id       uuid NOT NULL
        CONSTRAINT fk_teacher_allocations_category_id
        REFERENCES efir_budget.teacher_categories (id),
    fte_count         numeric(6,2) NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    deleted_at        timestamptz,
    CONSTRAINT ck_teacher_allocations_fte_count CHECK (fte_count >= 0)
);

CREATE INDEX ix_teacher_allocations_budget_version_id
    ON efir_budget.teacher_allocations (budget_version_id);
"""

# Amounts of revenue, operating costs and consolidations carry no sign check:
# discounts, refunds and corrections are legitimately negative.
REVENUE_PLANS = """
CREATE TABLE efir_budget.revenue_plans (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    budget_version_id uuid NOT NULL
        CONSTRAINT fk_revenue_plans_budget_version_id
        REFERENCES efir_budget.budget_versions (id) ON DELETE CASCADE,
    account_code      text NOT NULL,
    description       text,
    category          text NOT NULL,
    amount_sar        numeric(15,2) NOT NULL,
    trimester         integer,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    deleted_at        timestamptz,
    CONSTRAINT ck_revenue_plans_trimester CHECK (trimester BETWEEN 1 AND 3)
);

CREATE UNIQUE INDEX uq_revenue_plans_key
    ON efir_budget.revenue_plans (budget_version_id, account_code)
    WHERE deleted_at IS NULL;

-- The key index is partial (live rows only); per-version reads that must also see
-- deleted rows (a deletion is a change) need a plain one.
CREATE INDEX ix_revenue_plans_budget_version_id
    ON efir_budget.revenue_plans (budget_version_id);
"""

PERSONNEL_COST_PLANS = """
CREATE TABLE efir_budget.personnel_cost_plans (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    budget_version_id uuid NOT NULL
        CONSTRAINT fk_personnel_cost_plans_budget_version_id
        REFERENCES efir_budget.budget_versions (id) ON DELETE CASCADE,
    account_code      text NOT NULL,
    description       text,
    category_id       uuid
        CONSTRAINT fk_personnel_cost_plans_category_id
        REFERENCES efir_budget.teacher_categories (id),
    cycle_id          uuid
        CONSTRAINT fk_personnel_cost_plans_cycle_id
        REFERENCES efir_budget.academic_cycles (id),
    fte_count         numeric(6,2) NOT NULL,
    unit_cost_sar     numeric(12,2) NOT NULL,
    total_cost_sar    numeric(15,2) NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    deleted_at        timestamptz,
    CONSTRAINT ck_personnel_cost_plans_fte_count CHECK (fte_count >= 0),
    CONSTRAINT ck_personnel_cost_plans_unit_cost_sar CHECK (unit_cost_sar >= 0)
);

CREATE INDEX ix_personnel_cost_plans_budget_version_id
    ON efir_budget.personnel_cost_plans (budget_version_id);
"""

OPERATING_COST_PLANS = """
CREATE TABLE efir_budget.operating_cost_plans (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    budget_version_id uuid NOT NULL
        CONSTRAINT fk_operating_cost_plans_budget_version_id
        REFERENCES efir_budget.budget_versions (id) ON DELETE CASCADE,
    account_code      text NOT NULL,
    description       text,
    category          text NOT NULL,
    amount_sar        numeric(15,2) NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    deleted_at        timestamptz
);

CREATE INDEX ix_operating_cost_plans_budget_version_id
    ON efir_budget.operating_cost_plans (budget_version_id);
"""

CAPEX_PLANS = """
CREATE TABLE efir_budget.capex_plans (
    id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    budget_version_id  uuid NOT NULL
        CONSTRAINT fk_capex_plans_budget_version_id
        REFERENCES efir_budget.budget_versions (id) ON DELETE CASCADE,
    account_code       text NOT NULL,
    description        text,
    quantity           integer NOT NULL,
    unit_cost_sar      numeric(12,2) NOT NULL,
    total_cost_sar     numeric(15,2) NOT NULL,
    depreciation_years integer NOT NULL,
    acquisition_date   date NOT NULL,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    deleted_at         timestamptz,
    CONSTRAINT ck_capex_plans_quantity CHECK (quantity >= 0),
    CONSTRAINT ck_capex_plans_unit_cost_sar CHECK (unit_cost_sar >= 0),
    CONSTRAINT ck_capex_plans_depreciation_years CHECK (depreciation_years > 0)
);

CREATE INDEX ix_capex_plans_budget_version_id
    ON efir_budget.capex_plans (budget_version_id);
"""

BUDGET_CONSOLIDATIONS = """
CREATE TABLE efir_budget.budget_consolidations (
    id                     uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    budget_version_id      uuid NOT NULL
        CONSTRAINT fk_budget_consolidations_budget_version_id
        REFERENCES efir_budget.budget_versions (id) ON DELETE CASCADE,
    account_code           text NOT NULL,
    account_name           text NOT NULL,
    consolidation_category efir_budget.consolidation_category NOT NULL,
    is_revenue             boolean NOT NULL,
    amount_sar             numeric(15,2) NOT NULL,
    source_table           text NOT NULL,
    source_count           integer NOT NULL DEFAULT 0,
    created_at             timestamptz NOT NULL DEFAULT now(),
    updated_at             timestamptz NOT NULL DEFAULT now(),
    deleted_at             timestamptz,
    CONSTRAINT ck_budget_consolidations_source_count CHECK (source_count >= 0)
);

CREATE UNIQUE INDEX uq_budget_consolidations_key
    ON efir_budget.budget_consolidations (budget_version_id, account_code)
    WHERE deleted_at IS NULL;

-- The key index is partial (live rows only); per-version reads that must also see
-- deleted rows (a deletion is a change) need a plain one.
CREATE INDEX ix_budget_consolidations_budget_version_id
    ON efir_budget.budget_consolidations (budget_version_id);
"""

COMMENTS = """
COMMENT ON TYPE efir_budget.budget_version_status IS
    'Lifecycle of a budget version: working draft, submitted, approved, forecast, superseded.';
COMMENT ON TYPE efir_budget.consolidation_category IS
    'Consolidation bucket of a PCG account (revenue, personnel, operating, capex).';

COMMENT ON TABLE efir_budget.organizations IS
    'One organization (school) whose budgets are planned.';
COMMENT ON TABLE efir_budget.budget_versions IS
    'One budget of an organization for a fiscal year (working draft, submitted, approved or forecast).';
COMMENT ON TABLE efir_budget.academic_cycles IS
    'One school cycle (Maternelle, Elementaire, College, Lycee); reference data.';
COMMENT ON TABLE efir_budget.academic_levels IS
    'One grade level (PS to Terminale) within its cycle; reference data.';
COMMENT ON TABLE efir_budget.nationality_types IS
    'One nationality group students are planned by (French, Saudi, other); reference data.';
COMMENT ON TABLE efir_budget.teacher_categories IS
    'One teacher employment category (AEFE detached, AEFE funded, local); reference data.';
COMMENT ON TABLE efir_budget.subjects IS
    'One taught subject the teaching hours (DHG) are planned by; reference data.';
COMMENT ON TABLE efir_budget.enrollment_plans IS
    'Planned number of students of one level and nationality in a budget version.';
COMMENT ON TABLE efir_budget.class_structures IS
    'Planned classes, students and ATSEM assistants of one level in a budget version.';
COMMENT ON TABLE efir_budget.dhg_teacher_requirements IS
    'Weekly teaching hours (DHG) of one subject in a budget version and the teacher FTE they require.';
COMMENT ON TABLE efir_budget.teacher_allocations IS
    'Teacher FTE allocated to one subject, cycle and category in a budget version.';
COMMENT ON TABLE efir_budget.revenue_plans IS
    'One planned revenue line (PCG class 7 account) of a budget version.';
COMMENT ON TABLE efir_budget.personnel_cost_plans IS
    'One planned personnel cost line (PCG 64x account) of a budget version.';
COMMENT ON TABLE efir_budget.operating_cost_plans IS
    'One planned operating cost line (PCG 60x-62x account) of a budget version.';
COMMENT ON TABLE efir_budget.capex_plans IS
    'One planned capital expenditure (PCG 20x/21x account) of a budget version.';
COMMENT ON TABLE efir_budget.budget_consolidations IS
    'One consolidated account amount of a budget version, as computed by the budget application.';
"""

# ---------------------------------------------------------------------------
# Reference rows: exactly the codes of DOMAIN.md
# ---------------------------------------------------------------------------

REFERENCE_ROWS = """
INSERT INTO efir_budget.academic_cycles (code, name_fr, name_en, sort_order, requires_atsem) VALUES
    ('MAT',  'Maternelle',  'Preschool',     1, true),
    ('ELEM', 'Élémentaire', 'Elementary',    2, false),
    ('COLL', 'Collège',     'Middle school', 3, false),
    ('LYC',  'Lycée',       'High school',   4, false);

INSERT INTO efir_budget.academic_levels (cycle_id, code, name_fr, name_en, sort_order, is_secondary)
SELECT c.id, v.code, v.name_fr, v.name_en, v.sort_order, v.is_secondary
FROM (VALUES
    ('MAT',  'PS',   'Petite section',      'Pre-K 3',      1, false),
    ('MAT',  'MS',   'Moyenne section',     'Pre-K 4',      2, false),
    ('MAT',  'GS',   'Grande section',      'Kindergarten', 3, false),
    ('ELEM', 'CP',   'Cours préparatoire',  'Grade 1',      4, false),
    ('ELEM', 'CE1',  'Cours élémentaire 1', 'Grade 2',      5, false),
    ('ELEM', 'CE2',  'Cours élémentaire 2', 'Grade 3',      6, false),
    ('ELEM', 'CM1',  'Cours moyen 1',       'Grade 4',      7, false),
    ('ELEM', 'CM2',  'Cours moyen 2',       'Grade 5',      8, false),
    ('COLL', '6EME', '6ème',                'Grade 6',      9, true),
    ('COLL', '5EME', '5ème',                'Grade 7',     10, true),
    ('COLL', '4EME', '4ème',                'Grade 8',     11, true),
    ('COLL', '3EME', '3ème',                'Grade 9',     12, true),
    ('LYC',  '2NDE', 'Seconde',             'Grade 10',    13, true),
    ('LYC',  '1ERE', 'Première',            'Grade 11',    14, true),
    ('LYC',  'TLE',  'Terminale',           'Grade 12',    15, true)
) AS v (cycle_code, code, name_fr, name_en, sort_order, is_secondary)
JOIN efir_budget.academic_cycles AS c ON c.code = v.cycle_code
ORDER BY v.sort_order;

INSERT INTO efir_budget.nationality_types (code, name_fr, name_en) VALUES
    ('FRENCH', 'Français',  'French'),
    ('SAUDI',  'Saoudiens', 'Saudi'),
    ('OTHER',  'Autres',    'Other');

INSERT INTO efir_budget.teacher_categories (code, name_fr, name_en, is_aefe) VALUES
    ('AEFE_DETACHED', 'Détachés AEFE',   'AEFE detached', true),
    ('AEFE_FUNDED',   'Résidents AEFE',  'AEFE funded',   true),
    ('LOCAL',         'Recrutés locaux', 'Local hires',   false);

INSERT INTO efir_budget.subjects (code, name_fr, name_en, category) VALUES
    ('FRAN', 'Français',                            'French',                        'languages'),
    ('ANGL', 'Anglais',                             'English',                       'languages'),
    ('ARAB', 'Arabe',                               'Arabic',                        'languages'),
    ('ESPA', 'Espagnol',                            'Spanish',                       'languages'),
    ('ALLE', 'Allemand',                            'German',                        'languages'),
    ('LATN', 'Latin',                               'Latin',                         'languages'),
    ('MATH', 'Mathématiques',                       'Mathematics',                   'sciences'),
    ('PHYS', 'Physique-chimie',                     'Physics and chemistry',         'sciences'),
    ('SVT',  'Sciences de la vie et de la Terre',   'Life and earth sciences',       'sciences'),
    ('TECH', 'Technologie',                         'Technology',                    'sciences'),
    ('NSI',  'Numérique et sciences informatiques', 'Computer science',              'sciences'),
    ('HIST', 'Histoire-géographie',                 'History and geography',         'humanities'),
    ('EMC',  'Enseignement moral et civique',       'Moral and civic education',     'humanities'),
    ('PHIL', 'Philosophie',                         'Philosophy',                    'humanities'),
    ('SES',  'Sciences économiques et sociales',    'Economics and social sciences', 'humanities'),
    ('ISLA', 'Éducation islamique',                 'Islamic studies',               'humanities'),
    ('ARTS', 'Arts plastiques',                     'Visual arts',                   'arts'),
    ('MUSI', 'Éducation musicale',                  'Music',                         'arts'),
    ('EPS',  'Éducation physique et sportive',      'Physical education',            'sports'),
    ('POLY', 'Enseignement polyvalent (primaire)',  'Primary generalist teaching',   'general');
"""


def _statements(script: str) -> list[str]:
    """Split a script on ';' at line ends (no statement above has one inside a line)."""
    return [s.strip() for s in script.split(";\n") if s.strip().rstrip(";")]


def upgrade() -> None:
    op.execute("CREATE SCHEMA IF NOT EXISTS efir_budget")
    for script in (
        TYPES,
        ORGANIZATIONS,
        BUDGET_VERSIONS,
        ACADEMIC_CYCLES,
        ACADEMIC_LEVELS,
        NATIONALITY_TYPES,
        TEACHER_CATEGORIES,
        SUBJECTS,
        ENROLLMENT_PLANS,
        CLASS_STRUCTURES,
        DHG_TEACHER_REQUIREMENTS,
        TEACHER_ALLOCATIONS,
        REVENUE_PLANS,
        PERSONNEL_COST_PLANS,
        OPERATING_COST_PLANS,
        CAPEX_PLANS,
        BUDGET_CONSOLIDATIONS,
        COMMENTS,
        REFERENCE_ROWS,
    ):
        for statement in _statements(script):
            op.execute(statement)


def downgrade() -> None:
    for table in reversed(TABLES):
        op.execute(f"DROP TABLE efir_budget.{table}")
    op.execute("DROP TYPE efir_budget.consolidation_category")
    op.execute("DROP TYPE efir_budget.budget_version_status")
    # The schema stays: it holds alembic's version table (and anything of anyone else).
