"""The managed views: the single source of truth.

Assets, checks, sensor rules, the CLI's list of valid names and the refresh
order are all generated from ``VIEWS``. Adding a view is one entry here plus the
migration that creates it (a plain ``v_*`` view holding the query and the
``mv_*`` materialized view selecting from it).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from efir_pipeline.core.errors import UnknownViewError

SCHEMA = "efir_budget"
STRATEGIES = ("full", "per_version")


@dataclass(frozen=True)
class ManagedView:
    name: str
    """The materialized view, e.g. ``mv_kpi_dashboard``."""
    live_view: str
    """The plain view holding the defining query; the materialized view selects * from it."""
    unique_key: tuple[str, ...]
    source_tables: tuple[str, ...]
    """Tables whose writes make this view stale (reference tables included)."""
    description: str
    depends_on: tuple[str, ...] = ()
    """Other managed views this one reads; refreshed first."""
    version_column: str | None = "budget_version_id"
    """The column that ties a row to a budget version (for sampling and per-version work)."""
    one_row_per_version: bool = False
    """Exactly one row per non-deleted budget version (the completeness check holds it to that)."""
    comment: str = ""
    """The view's ``COMMENT ON MATERIALIZED VIEW`` text, as its migration sets it.

    Kept here so the Dagster asset description needs no database at load time;
    tests/dagster checks it still equals the database's comment.
    """
    strategy: str = "full"
    """How a refresh recomputes the view (docs/incremental-refresh.md):

    - ``full``: the materialized view is ``SELECT * FROM live_view``; every refresh
      recomputes every row;
    - ``per_version``: the materialized view is ``SELECT * FROM`` :attr:`incremental_view`,
      which returns the same rows as ``live_view`` but recomputes only the versions with a
      change the pipeline has not synced yet (``efir_budget.incremental_state``) and reads
      the others from :attr:`cache_table`. A refresh with ``full=True`` (the nightly one)
      recomputes everything. Needs ``version_column``.
    """
    defined_in: str = "0004_views"
    """The migration revision whose SQL defines the view (the last one to redefine it):
    its text is the asset's code version, and the UI links to it."""
    column_lineage: tuple[tuple[str, tuple[str, ...]], ...] = ()
    """For a view reading another (``depends_on[0]``): each column computed from that
    view's columns, with those columns (Dagster's column lineage)."""

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ValueError(f"{self.name}: strategy {self.strategy!r} is not one of {STRATEGIES}")
        if self.strategy == "per_version" and not self.version_column:
            raise ValueError(f"{self.name}: strategy per_version needs a version_column")

    @property
    def incremental(self) -> bool:
        return self.strategy == "per_version"

    @property
    def cache_table(self) -> str:
        """``per_version``: the pipeline's table of last synced rows, e.g. ``mv_kpi_dashboard_cache``."""
        return f"{self.name}_cache"

    @property
    def incremental_view(self) -> str:
        """``per_version``: the plain view the materialized view selects from."""
        return f"{self.live_view}_incremental"

    @property
    def dirty_view(self) -> str:
        """``per_version``: the plain view of the versions the next refresh recomputes."""
        return f"{self.live_view}_dirty"

    @property
    def qualified_name(self) -> str:
        return f"{SCHEMA}.{self.name}"

    @property
    def qualified_live_view(self) -> str:
        return f"{SCHEMA}.{self.live_view}"


_KPI_COLUMNS_KEPT = (
    "budget_version_id",
    "organization_id",
    "version_name",
    "fiscal_year",
    "status",
    "total_revenue_sar",
    "tuition_revenue_sar",
    "fees_revenue_sar",
    "other_revenue_sar",
    "total_personnel_costs_sar",
    "total_operating_costs_sar",
    "total_capex_sar",
    "net_budget_sar",
    "budget_margin_percent",
    "total_students",
)
_EXPENSES = ("total_personnel_costs_sar", "total_operating_costs_sar", "total_capex_sar")
FINANCIAL_RATIOS_LINEAGE: tuple[tuple[str, tuple[str, ...]], ...] = (
    *((c, (c,)) for c in _KPI_COLUMNS_KEPT),
    ("tuition_share_percent", ("tuition_revenue_sar", "total_revenue_sar")),
    ("fees_share_percent", ("fees_revenue_sar", "total_revenue_sar")),
    ("other_revenue_share_percent", ("other_revenue_sar", "total_revenue_sar")),
    ("total_expenses_sar", _EXPENSES),
    ("personnel_share_percent", _EXPENSES),
    ("operating_share_percent", _EXPENSES),
    ("capex_share_percent", _EXPENSES),
    ("total_cost_per_student_sar", (*_EXPENSES, "total_students")),
)
"""mv_financial_ratios' columns read from mv_kpi_dashboard (the others come from
enrollment_plans and personnel_cost_plans by cycle)."""

KPI_DASHBOARD_SOURCES: tuple[str, ...] = (
    "budget_versions",
    "enrollment_plans",
    "class_structures",
    "dhg_teacher_requirements",
    "teacher_allocations",
    "revenue_plans",
    "personnel_cost_plans",
    "operating_cost_plans",
    "capex_plans",
    "nationality_types",
    "teacher_categories",
)

VIEWS: tuple[ManagedView, ...] = (
    ManagedView(
        name="mv_kpi_dashboard",
        live_view="v_kpi_dashboard",
        unique_key=("budget_version_id",),
        source_tables=KPI_DASHBOARD_SOURCES,
        description="One row per budget version: the 30+ KPIs of the dashboard.",
        one_row_per_version=True,
        strategy="per_version",
        comment="KPI dashboard: one row per non-deleted budget version; sums over non-deleted "
        "rows, 0 when a version has none; ratios NULL when the denominator is 0.",
    ),
    ManagedView(
        name="mv_budget_consolidation",
        live_view="v_budget_consolidation",
        unique_key=("budget_version_id", "account_code"),
        source_tables=("budget_versions", "budget_consolidations"),
        description="One row per (budget version, PCG account): the consolidated budget.",
        comment="Budget consolidation: one row per (budget version, account) over non-deleted "
        "budget_consolidations rows of non-deleted versions.",
    ),
    # Roadmap views (definitions in docs/views.md).
    # source_tables are what PostgreSQL's pg_depend reaches, through views included.
    ManagedView(
        name="mv_enrollment_trends",
        live_view="v_enrollment_trends",
        unique_key=("budget_version_id", "level_id", "nationality_type_id"),
        source_tables=(
            "budget_versions",
            "enrollment_plans",
            "academic_levels",
            "academic_cycles",
            "nationality_types",
        ),
        description="Students per level and nationality for the approved version of each "
        "fiscal year, with the change vs the previous year's approved version.",
        # The approved version the row belongs to (one per organization and fiscal year).
        version_column="budget_version_id",
        comment="Enrollment trends: one row per (approved version of an organization and "
        "fiscal year, level, nationality); students and the change vs fiscal_year - 1's "
        "approved version.",
    ),
    ManagedView(
        name="mv_financial_ratios",
        live_view="v_financial_ratios",
        unique_key=("budget_version_id",),
        # mv_kpi_dashboard's tables (read through it) and its own, for the split by cycle.
        source_tables=(*KPI_DASHBOARD_SOURCES, "academic_levels", "academic_cycles"),
        description="One row per budget version: revenue mix, cost shares, margin and "
        "personnel cost per student by cycle.",
        depends_on=("mv_kpi_dashboard",),
        column_lineage=FINANCIAL_RATIOS_LINEAGE,
        one_row_per_version=True,
        comment="Financial ratios: one row per non-deleted budget version (reads "
        "mv_kpi_dashboard); revenue mix, cost shares, margin, personnel cost per student by "
        "cycle.",
    ),
    ManagedView(
        name="mv_workforce_utilization",
        live_view="v_workforce_utilization",
        unique_key=("budget_version_id", "subject_id"),
        source_tables=(
            "budget_versions",
            "dhg_teacher_requirements",
            "teacher_allocations",
            "teacher_categories",
            "subjects",
        ),
        description="One row per (budget version, subject): DHG hours required vs teacher FTE "
        "allocated by category, HSA share, gap, utilization.",
        comment="Workforce utilization: one row per (non-deleted budget version, subject); DHG "
        "hours required vs teacher FTE allocated by category, HSA share, gap.",
    ),
)

_BY_NAME = {v.name: v for v in VIEWS}


def view_names() -> list[str]:
    return [v.name for v in VIEWS]


def get_view(name: str) -> ManagedView:
    return resolve_views([name])[0]


def resolve_views(names: Iterable[str] | None = None) -> list[ManagedView]:
    """Validate user-given names against the catalog, all before anything runs.

    Accepts ``mv_x`` or ``efir_budget.mv_x``. No names means every view. The result
    is in refresh order (dependencies first) whatever order the names came in.
    """
    names = list(names or [])
    if not names:
        return refresh_order(VIEWS)
    unknown, chosen = [], []
    for raw in names:
        short = raw.strip()
        if short.startswith(f"{SCHEMA}."):
            short = short[len(SCHEMA) + 1 :]
        view = _BY_NAME.get(short)
        if view is None:
            unknown.append(raw)
        elif view not in chosen:
            chosen.append(view)
    if unknown:
        raise UnknownViewError(unknown, view_names())
    return refresh_order(chosen)


def refresh_order(views: Iterable[ManagedView]) -> list[ManagedView]:
    """Dependencies first (a stable topological sort over ``depends_on``)."""
    wanted = {v.name for v in views}
    ordered: list[ManagedView] = []
    seen: set[str] = set()

    def visit(view: ManagedView) -> None:
        if view.name in seen:
            return
        seen.add(view.name)
        for dep in view.depends_on:
            if dep in _BY_NAME:
                visit(_BY_NAME[dep])
        ordered.append(view)

    for view in VIEWS:
        if view.name in wanted:
            visit(view)
    return [v for v in ordered if v.name in wanted]


def lineage_sources(view: ManagedView) -> tuple[str, ...]:
    """Every table the view reads, through the views it depends on too."""
    tables = dict.fromkeys(view.source_tables)
    for name in view.depends_on:
        tables.update(dict.fromkeys(lineage_sources(_BY_NAME[name])))
    return tuple(tables)


def views_reading(table: str) -> list[ManagedView]:
    """The views a write to ``table`` makes stale (directly or through another view)."""
    direct = {v.name for v in VIEWS if table in v.source_tables}
    changed = True
    while changed:
        changed = False
        for v in VIEWS:
            if v.name not in direct and direct.intersection(v.depends_on):
                direct.add(v.name)
                changed = True
    return [v for v in VIEWS if v.name in direct]
