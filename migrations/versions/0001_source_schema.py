"""Source schema: the sixteen tables of the EFIR Budget-App the views read, as the app has them.

The budget app owns these tables (its own alembic history, its ORM models); this
revision builds them exactly as the app's database has them, column for column,
so that new and test databases are the app's database, and so that every view,
trigger and loader of this project runs on nothing the app lacks:

- the enum types are the app's, ``budgetversionstatus`` and ``consolidationcategory``
  (its ORM casts to those names);
- ``id``, ``created_at`` and ``updated_at`` have no server default: the app's ORM (and
  our demo loader) supplies them;
- the reference tables and ``organizations`` have no ``deleted_at`` (soft delete
  exists only on ``budget_versions`` and its child tables), and unique keys are plain
  (not partial): a soft-deleted row keeps its key;
- foreign keys exist among these tables only (the app's ``users`` table, which
  ``budget_versions.submitted_by_id`` and ``approved_by_id`` point to, is not ours);
- constraint names are PostgreSQL's defaults, as the app's models leave them.

On the app's database this revision is not run: ``efir-pipeline db adopt`` checks that
the tables hold what the views need and records this revision as present. Its
downgrade therefore drops the tables only where this revision made them: when the
schema holds anything else (the app's other tables, its ``alembic_version``), the
tables are the app's and stay.

The reference rows (cycles, levels, nationalities, teacher categories, subjects)
have exactly the codes the views rely on (``docs/domain.md``).

Revision ID: 0001_source_schema
Revises:
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0001_source_schema"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Parents before children; the downgrade drops them in reverse.
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
TYPES = ("budgetversionstatus", "consolidationcategory")

# The audit columns every child table of a version carries, in the app's order.
AUDIT = """
    id uuid NOT NULL PRIMARY KEY,
    created_at timestamp with time zone NOT NULL,
    updated_at timestamp with time zone NOT NULL,
    created_by_id uuid,
    updated_by_id uuid,
    deleted_at timestamp with time zone"""
VERSION = """
    budget_version_id uuid NOT NULL REFERENCES efir_budget.budget_versions (id) ON DELETE CASCADE"""
REFERENCE_AUDIT = """
    id uuid NOT NULL PRIMARY KEY,
    created_at timestamp with time zone NOT NULL,
    updated_at timestamp with time zone NOT NULL"""

STATEMENTS: tuple[str, ...] = (
    """CREATE TYPE efir_budget.budgetversionstatus AS ENUM (
        'working', 'submitted', 'approved', 'forecast', 'superseded')""",
    """CREATE TYPE efir_budget.consolidationcategory AS ENUM (
        'revenue_tuition', 'revenue_fees', 'revenue_other',
        'personnel_teaching', 'personnel_admin', 'personnel_support', 'personnel_social',
        'operating_supplies', 'operating_utilities', 'operating_maintenance',
        'operating_insurance', 'operating_other',
        'capex_equipment', 'capex_it', 'capex_furniture', 'capex_building', 'capex_software')""",
    """CREATE TABLE efir_budget.organizations (
        id uuid NOT NULL PRIMARY KEY,
        name character varying(255) NOT NULL,
        is_active boolean NOT NULL)""",
    """CREATE TABLE efir_budget.budget_versions (
        name character varying(100) NOT NULL,
        fiscal_year integer NOT NULL,
        academic_year character varying(20) NOT NULL,
        status efir_budget.budgetversionstatus NOT NULL,
        submitted_at timestamp with time zone,
        submitted_by_id uuid,
        approved_at timestamp with time zone,
        approved_by_id uuid,
        notes text,
        is_baseline boolean NOT NULL,
        organization_id uuid NOT NULL
            REFERENCES efir_budget.organizations (id) ON DELETE CASCADE,
        parent_version_id uuid REFERENCES efir_budget.budget_versions (id),"""
    + AUDIT
    + ")",
    f"""CREATE TABLE efir_budget.academic_cycles (
        code character varying(20) NOT NULL,
        name_fr character varying(100) NOT NULL,
        name_en character varying(100) NOT NULL,
        sort_order integer NOT NULL,
        requires_atsem boolean NOT NULL,{REFERENCE_AUDIT})""",
    f"""CREATE TABLE efir_budget.academic_levels (
        cycle_id uuid NOT NULL REFERENCES efir_budget.academic_cycles (id),
        code character varying(20) NOT NULL,
        name_fr character varying(100) NOT NULL,
        name_en character varying(100) NOT NULL,
        sort_order integer NOT NULL,
        is_secondary boolean NOT NULL,{REFERENCE_AUDIT})""",
    f"""CREATE TABLE efir_budget.nationality_types (
        code character varying(20) NOT NULL,
        name_fr character varying(100) NOT NULL,
        name_en character varying(100) NOT NULL,
        vat_applicable boolean NOT NULL,
        sort_order integer NOT NULL,{REFERENCE_AUDIT})""",
    f"""CREATE TABLE efir_budget.teacher_categories (
        code character varying(20) NOT NULL,
        name_fr character varying(100) NOT NULL,
        name_en character varying(100) NOT NULL,
        description text,
        is_aefe boolean NOT NULL,{REFERENCE_AUDIT})""",
    f"""CREATE TABLE efir_budget.subjects (
        code character varying(20) NOT NULL,
        name_fr character varying(100) NOT NULL,
        name_en character varying(100) NOT NULL,
        category character varying(50) NOT NULL,
        is_active boolean NOT NULL,{REFERENCE_AUDIT})""",
    f"""CREATE TABLE efir_budget.enrollment_plans (
        level_id uuid NOT NULL REFERENCES efir_budget.academic_levels (id),
        nationality_type_id uuid NOT NULL REFERENCES efir_budget.nationality_types (id),
        student_count integer NOT NULL CHECK (student_count >= 0),
        notes text,{AUDIT},{VERSION},
        UNIQUE (budget_version_id, level_id, nationality_type_id))""",
    f"""CREATE TABLE efir_budget.class_structures (
        level_id uuid NOT NULL REFERENCES efir_budget.academic_levels (id),
        total_students integer NOT NULL CHECK (total_students >= 0),
        number_of_classes integer NOT NULL CHECK (number_of_classes > 0),
        avg_class_size numeric(5,2) NOT NULL
            CHECK (avg_class_size > 0 AND avg_class_size <= 35),
        requires_atsem boolean NOT NULL,
        atsem_count integer NOT NULL,
        calculation_method character varying(50) NOT NULL,
        notes text,{AUDIT},{VERSION},
        UNIQUE (budget_version_id, level_id))""",
    f"""CREATE TABLE efir_budget.dhg_teacher_requirements (
        subject_id uuid NOT NULL REFERENCES efir_budget.subjects (id),
        total_hours_per_week numeric(6,2) NOT NULL CHECK (total_hours_per_week >= 0),
        standard_teaching_hours numeric(4,2) NOT NULL,
        simple_fte numeric(5,2) NOT NULL CHECK (simple_fte >= 0),
        rounded_fte integer NOT NULL,
        hsa_hours numeric(5,2) NOT NULL,{AUDIT},{VERSION},
        UNIQUE (budget_version_id, subject_id))""",
    f"""CREATE TABLE efir_budget.teacher_allocations (
        subject_id uuid NOT NULL REFERENCES efir_budget.subjects (id),
        cycle_id uuid NOT NULL REFERENCES efir_budget.academic_cycles (id),
        category_id uuid NOT NULL REFERENCES efir_budget.teacher_categories (id),
        fte_count numeric(5,2) NOT NULL CHECK (fte_count > 0),
        notes text,{AUDIT},{VERSION},
        UNIQUE (budget_version_id, subject_id, cycle_id, category_id))""",
    f"""CREATE TABLE efir_budget.revenue_plans (
        account_code character varying(20) NOT NULL,
        description text NOT NULL,
        category character varying(50) NOT NULL,
        amount_sar numeric(12,2) NOT NULL CHECK (amount_sar >= 0),
        is_calculated boolean NOT NULL,
        calculation_driver character varying(100),
        trimester integer,
        notes text,{AUDIT},{VERSION},
        UNIQUE (budget_version_id, account_code))""",
    f"""CREATE TABLE efir_budget.personnel_cost_plans (
        account_code character varying(20) NOT NULL,
        description text NOT NULL,
        category_id uuid REFERENCES efir_budget.teacher_categories (id),
        cycle_id uuid REFERENCES efir_budget.academic_cycles (id),
        fte_count numeric(5,2) NOT NULL CHECK (fte_count >= 0),
        unit_cost_sar numeric(10,2) NOT NULL,
        total_cost_sar numeric(12,2) NOT NULL,
        is_calculated boolean NOT NULL,
        calculation_driver character varying(100),
        notes text,{AUDIT},{VERSION},
        CHECK (unit_cost_sar >= 0 AND total_cost_sar >= 0),
        UNIQUE (budget_version_id, account_code, cycle_id, category_id))""",
    f"""CREATE TABLE efir_budget.operating_cost_plans (
        account_code character varying(20) NOT NULL,
        description text NOT NULL,
        category character varying(50) NOT NULL,
        amount_sar numeric(12,2) NOT NULL CHECK (amount_sar >= 0),
        is_calculated boolean NOT NULL,
        calculation_driver character varying(100),
        notes text,{AUDIT},{VERSION},
        UNIQUE (budget_version_id, account_code))""",
    f"""CREATE TABLE efir_budget.capex_plans (
        account_code character varying(20) NOT NULL,
        description text NOT NULL,
        category character varying(50) NOT NULL,
        quantity integer NOT NULL CHECK (quantity > 0),
        unit_cost_sar numeric(10,2) NOT NULL,
        total_cost_sar numeric(12,2) NOT NULL,
        acquisition_date date NOT NULL,
        useful_life_years integer NOT NULL
            CHECK (useful_life_years > 0 AND useful_life_years <= 50),
        notes text,{AUDIT},{VERSION},
        CHECK (unit_cost_sar >= 0 AND total_cost_sar >= 0),
        UNIQUE (budget_version_id, account_code, description))""",
    f"""CREATE TABLE efir_budget.budget_consolidations (
        account_code character varying(10) NOT NULL,
        account_name character varying(200) NOT NULL,
        consolidation_category efir_budget.consolidationcategory NOT NULL,
        is_revenue boolean NOT NULL,
        amount_sar numeric(15,2) NOT NULL,
        source_table character varying(50) NOT NULL,
        source_count integer NOT NULL,
        is_calculated boolean NOT NULL,
        notes text,{AUDIT},{VERSION},
        CHECK (amount_sar >= 0 OR is_revenue = false),
        UNIQUE (budget_version_id, account_code))""",
)

COMMENTS: dict[str, str] = {
    "organizations": "One organization (school) whose budgets are planned.",
    "budget_versions": "One budget of an organization for a fiscal year (working draft, "
    "submitted, approved, forecast or superseded).",
    "academic_cycles": "One school cycle (Maternelle, Elementaire, College, Lycee); reference data.",
    "academic_levels": "One grade level (PS to Terminale) within its cycle; reference data.",
    "nationality_types": "One nationality group students are planned by (French, Saudi, "
    "other); reference data.",
    "teacher_categories": "One teacher employment category (AEFE detached, AEFE funded, "
    "local); reference data.",
    "subjects": "One taught subject the teaching hours (DHG) are planned by; reference data.",
    "enrollment_plans": "Planned number of students of one level and nationality in a version.",
    "class_structures": "Planned classes, students and ATSEM assistants of one level in a version.",
    "dhg_teacher_requirements": "Weekly teaching hours (DHG) of one subject in a version and "
    "the teacher FTE they require.",
    "teacher_allocations": "Teacher FTE allocated to one subject, cycle and category in a version.",
    "revenue_plans": "One planned revenue line (PCG class 7 account) of a budget version.",
    "personnel_cost_plans": "One planned personnel cost line (PCG 64x account) of a version.",
    "operating_cost_plans": "One planned operating cost line (PCG 60x-62x account) of a version.",
    "capex_plans": "One planned capital expenditure (PCG 20x/21x account) of a version.",
    "budget_consolidations": "One consolidated account amount of a budget version, as the "
    "budget app computes it.",
}

# Exactly the codes the views rely on; ids, timestamps and every NOT NULL column given.
REFERENCE_ROWS = """
INSERT INTO efir_budget.academic_cycles
    (id, created_at, updated_at, code, name_fr, name_en, sort_order, requires_atsem)
SELECT gen_random_uuid(), now(), now(), v.* FROM (VALUES
    ('MAT',  'Maternelle',  'Preschool',     1, true),
    ('ELEM', 'Élémentaire', 'Elementary',    2, false),
    ('COLL', 'Collège',     'Middle school', 3, false),
    ('LYC',  'Lycée',       'High school',   4, false)) AS v;

INSERT INTO efir_budget.academic_levels
    (id, created_at, updated_at, cycle_id, code, name_fr, name_en, sort_order, is_secondary)
SELECT gen_random_uuid(), now(), now(), c.id, v.code, v.name_fr, v.name_en, v.sort_order,
       v.is_secondary
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
JOIN efir_budget.academic_cycles AS c ON c.code = v.cycle_code;

INSERT INTO efir_budget.nationality_types
    (id, created_at, updated_at, code, name_fr, name_en, vat_applicable, sort_order)
SELECT gen_random_uuid(), now(), now(), v.* FROM (VALUES
    ('FRENCH', 'Français',  'French', true,  1),
    ('SAUDI',  'Saoudiens', 'Saudi',  false, 2),
    ('OTHER',  'Autres',    'Other',  true,  3)) AS v;

INSERT INTO efir_budget.teacher_categories
    (id, created_at, updated_at, code, name_fr, name_en, description, is_aefe)
SELECT gen_random_uuid(), now(), now(), v.* FROM (VALUES
    ('AEFE_DETACHED', 'Détachés AEFE',   'AEFE detached', 'Expatriate teachers on AEFE contracts', true),
    ('AEFE_FUNDED',   'Résidents AEFE',  'AEFE funded',   'Resident teachers partly funded by the AEFE', true),
    ('LOCAL',         'Recrutés locaux', 'Local hires',   'Teachers hired locally by the school', false)) AS v;

INSERT INTO efir_budget.subjects
    (id, created_at, updated_at, code, name_fr, name_en, category, is_active)
SELECT gen_random_uuid(), now(), now(), v.*, true FROM (VALUES
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
    ('POLY', 'Enseignement polyvalent (primaire)',  'Primary generalist teaching',   'general')) AS v
"""

# Anything of the schema that is not ours says the tables belong to someone else.
OTHERS_IN_SCHEMA = """
SELECT count(*) FROM pg_class c
WHERE c.relnamespace = 'efir_budget'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
  AND NOT c.relname = ANY(%(ours)s)
"""


def upgrade() -> None:
    op.execute("CREATE SCHEMA IF NOT EXISTS efir_budget")
    for statement in STATEMENTS:
        op.execute(statement)
    for table, text in COMMENTS.items():
        op.execute(
            f"COMMENT ON TABLE efir_budget.{table} IS '{text.replace(chr(39), chr(39) * 2)}'"
        )
    for statement in REFERENCE_ROWS.split(";\n"):
        if statement.strip():
            op.execute(statement)


def downgrade() -> None:
    ours = [*TABLES, "efir_pipeline_revision"]  # alembic's version table stays, as always
    quoted = ", ".join(f"'{name}'" for name in ours)
    op.execute(
        f"""
        DO $do$
        BEGIN
            IF EXISTS ({OTHERS_IN_SCHEMA.replace("%(ours)s", f"ARRAY[{quoted}]")}
                       HAVING count(*) > 0) THEN
                RAISE NOTICE 'efir_budget holds other objects: its source tables belong to the '
                             'budget app and stay';
                RETURN;
            END IF;
            DROP TABLE {", ".join(f"efir_budget.{t}" for t in reversed(TABLES))};
            DROP TYPE efir_budget.consolidationcategory, efir_budget.budgetversionstatus;
        END
        $do$
        """
    )
