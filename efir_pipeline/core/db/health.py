"""Health of a managed view: is it fresh, fast, small and right? (Dagster-free)

Each check is a function of a connection, a catalog view and ``HealthSettings`` that
returns a plain ``HealthResult`` (passed, severity, description, metadata), so the
Dagster asset checks, the CLI and the tests all run the very same computation;
``efir_pipeline.defs.checks`` only translates the result into Dagster's terms.

The checks and their defaults are PIPELINE.md's "Checks and alerts" table:

- freshness: per priority, the age of the oldest source change the view does not
  yet reflect, against that priority's limit (WARN past it, ERROR past twice);
- refresh duration: the last successful refresh against a limit (WARN), with the
  trend of the last refreshes;
- view size: table plus indexes against a limit (WARN), with the row count;
- completeness: exactly one row per non-deleted budget version (ERROR);
- reconciliation: a deterministic sample of versions compared column by column
  with the live defining query (ERROR), naming the first difference.

Thresholds come from the environment (``HealthSettings.from_env``) and may be
overridden per run (Dagster run config) with ``dataclasses.replace``.
"""

from __future__ import annotations

import json
import os
import re
import statistics
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from efir_pipeline.core.catalog import SCHEMA, ManagedView
from efir_pipeline.core.db import changes
from efir_pipeline.core.errors import ConfigError
from efir_pipeline.core.rules import Classified, RefreshRules, classify
from efir_pipeline.core.settings import duration

WARN = "WARN"
ERROR = "ERROR"

FRESHNESS = "freshness"
REFRESH_DURATION = "refresh_duration"
VIEW_SIZE = "view_size"
COMPLETENESS = "completeness"
RECONCILIATION = "reconciliation"

PRIORITIES = ("high", "medium", "low")
VERSIONS_TABLE = "budget_versions"
"""The table whose non-deleted rows are the budget versions every view is keyed by."""

MB = 1024 * 1024
_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "min": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(us|ms|s|min|h|d)?\s*$")


def parse_seconds(text: str | float | int, *, name: str = "duration") -> float:
    """``"5min"``, ``"26h"``, ``"500ms"``, ``"30"`` (seconds) -> seconds."""
    if isinstance(text, int | float):
        return float(text)
    match = _DURATION.match(str(text))
    if not match:
        raise ConfigError(f"{name}={text!r} is not a duration such as 30s, 5min, 1h, 26h")
    return float(match.group(1)) * _UNITS[match.group(2) or "s"]


def _env(name: str, default: str) -> str:
    value = os.environ.get(name, "").strip()
    return value or default


def _env_number(name: str, default: float, kind: Callable[[str], float] = float) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = kind(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number") from None
    if value < 0:
        raise ConfigError(f"{name}={raw!r} must not be negative")
    return value


@dataclass(frozen=True)
class HealthSettings:
    """Check thresholds. Defaults are PIPELINE.md's; ``from_env`` reads overrides."""

    freshness_limits: dict[str, float] = field(
        default_factory=lambda: {"high": 300.0, "medium": 3600.0, "low": 26 * 3600.0}
    )
    """Seconds a pending change of each priority may wait (WARN past it, ERROR past twice)."""
    duration_limit_seconds: float = 5.0
    size_limit_bytes: int = 50 * MB
    sample_size: int = 20
    """Versions compared by the reconciliation (all of them when there are fewer)."""
    sample_seed: str | None = None
    """Fixed seed for the sample; unset: the last refresh's id, so the sample is
    reproducible for one refresh and rotates across refreshes."""
    trend_length: int = 20
    statement_timeout: str = "2min"
    """PostgreSQL duration any one check query may take (the reconciliation is the long one)."""

    @classmethod
    def from_env(cls) -> HealthSettings:
        defaults = cls()
        limits = {
            p: parse_seconds(
                _env(f"EFIR_FRESHNESS_LIMIT_{p.upper()}", f"{defaults.freshness_limits[p]:g}s"),
                name=f"EFIR_FRESHNESS_LIMIT_{p.upper()}",
            )
            for p in PRIORITIES
        }
        return cls(
            freshness_limits=limits,
            duration_limit_seconds=parse_seconds(
                _env("EFIR_REFRESH_DURATION_LIMIT", f"{defaults.duration_limit_seconds:g}s"),
                name="EFIR_REFRESH_DURATION_LIMIT",
            ),
            size_limit_bytes=int(
                _env_number("EFIR_VIEW_SIZE_LIMIT_MB", defaults.size_limit_bytes / MB) * MB
            ),
            sample_size=int(_env_number("EFIR_RECONCILIATION_SAMPLE", defaults.sample_size, int)),
            sample_seed=os.environ.get("EFIR_RECONCILIATION_SEED", "").strip() or None,
            trend_length=int(_env_number("EFIR_REFRESH_TREND_LENGTH", defaults.trend_length, int)),
            statement_timeout=duration("EFIR_CHECK_STATEMENT_TIMEOUT", defaults.statement_timeout),
        )

    def with_overrides(self, **overrides: Any) -> HealthSettings:
        """A copy with the given (non-None) fields replaced; freshness limits merge."""
        overrides = {k: v for k, v in overrides.items() if v is not None}
        limits = overrides.pop("freshness_limits", None)
        if limits:
            overrides["freshness_limits"] = {**self.freshness_limits, **limits}
        return replace(self, **overrides)


@dataclass(frozen=True)
class HealthResult:
    """One check of one view. ``severity`` is what a failure means (WARN or ERROR)."""

    check: str
    view: str
    passed: bool
    severity: str
    description: str
    metadata: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# --------------------------------------------------------------------------- helpers


def _ident(view: ManagedView) -> sql.Identifier:
    return sql.Identifier(SCHEMA, view.name)


def is_populated(conn: psycopg.Connection, view: ManagedView) -> bool:
    row = conn.execute(
        "SELECT relispopulated FROM pg_class WHERE oid = to_regclass(%s)",
        (view.qualified_name,),
    ).fetchone()
    return bool(row and row[0])


def view_columns(conn: psycopg.Connection, view: ManagedView) -> list[str]:
    """The materialized view's columns in order (from the catalog of the database)."""
    return [
        name
        for (name,) in conn.execute(
            """SELECT attname FROM pg_attribute
               WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped
               ORDER BY attnum""",
            (view.qualified_name,),
        ).fetchall()
    ]


def last_success(conn: psycopg.Connection, view: ManagedView) -> dict[str, Any] | None:
    """The view's last successful refresh (its ``snapshot_at`` is the data's "as of")."""
    cur = conn.cursor(row_factory=dict_row)
    return cur.execute(
        """SELECT id, snapshot_at, finished_at, duration_seconds, row_count, size_bytes,
                  trigger, run_id
           FROM efir_budget.mv_refresh_log
           WHERE view_name = %s AND outcome = 'success'
           ORDER BY snapshot_at DESC, id DESC LIMIT 1""",
        (view.name,),
    ).fetchone()


def _never_populated(check: str, view: ManagedView, severity: str) -> HealthResult:
    return HealthResult(
        check,
        view.name,
        False,
        severity,
        f"{view.name} has never been populated: refresh it (efir-pipeline refresh {view.name})",
        {"populated": False},
    )


def plain(value: Any) -> Any:
    """A JSON-friendly value for metadata (Decimal and UUID as text, datetimes ISO)."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return str(value)


def _seconds(value: float | None) -> float | None:
    return None if value is None else round(float(value), 3)


def human_duration(seconds: float) -> str:
    seconds = float(seconds)
    if seconds < 120:
        return f"{seconds:.1f}s"
    if seconds < 7200:
        return f"{seconds / 60:.1f}min"
    return f"{seconds / 3600:.1f}h"


# --------------------------------------------------------------------------- duration


def refresh_duration(
    conn: psycopg.Connection, view: ManagedView, settings: HealthSettings
) -> HealthResult:
    """The last successful refresh's duration against the limit, with the recent trend.

    Only ``success`` rows count: a coalesced request did no work and a failed one
    says nothing about how long a refresh takes.
    """
    rows = conn.execute(
        """SELECT id, duration_seconds, snapshot_at FROM efir_budget.mv_refresh_log
           WHERE view_name = %s AND outcome = 'success'
           ORDER BY snapshot_at DESC, id DESC LIMIT %s""",
        (view.name, max(settings.trend_length, 1)),
    ).fetchall()
    limit = settings.duration_limit_seconds
    if not rows:
        return HealthResult(
            REFRESH_DURATION,
            view.name,
            True,
            WARN,
            f"no successful refresh of {view.name} recorded yet",
            {"limit_seconds": limit, "refreshes": 0},
        )
    trend = [round(float(d), 3) for _, d, _ in reversed(rows)]  # oldest first
    latest_id, latest, snapshot_at = rows[0]
    latest = float(latest)
    median = statistics.median(trend)
    over = sum(1 for d in trend if d > limit)
    passed = latest <= limit
    description = (
        f"last refresh took {latest:.3f}s "
        f"({'within' if passed else 'over'} the {limit:g}s limit; "
        f"median of the last {len(trend)}: {median:.3f}s)"
    )
    return HealthResult(
        REFRESH_DURATION,
        view.name,
        passed,
        WARN,
        description,
        {
            "duration_seconds": round(latest, 3),
            "limit_seconds": limit,
            "refresh_log_id": latest_id,
            "refreshed_at": snapshot_at,
            "trend_seconds": trend,
            "trend_median_seconds": round(median, 3),
            "trend_max_seconds": max(trend),
            "trend_over_limit": over,
            "trend_change_percent": _change_percent(trend),
        },
    )


def _change_percent(trend: Sequence[float]) -> float | None:
    """How much slower the newer half of the trend is than the older half (median vs median)."""
    if len(trend) < 4:
        return None
    half = len(trend) // 2
    older, newer = statistics.median(trend[:half]), statistics.median(trend[half:])
    if older <= 0:
        return None
    return round((newer - older) / older * 100, 1)


# --------------------------------------------------------------------------- size


def view_size(
    conn: psycopg.Connection, view: ManagedView, settings: HealthSettings
) -> HealthResult:
    """Table plus indexes (``pg_total_relation_size``) against the limit, with rows."""
    if not is_populated(conn, view):
        return _never_populated(VIEW_SIZE, view, WARN)
    size, rows = conn.execute(
        sql.SQL("SELECT pg_total_relation_size({}), (SELECT count(*) FROM {})").format(
            sql.Literal(view.qualified_name), _ident(view)
        )
    ).fetchone()
    limit = settings.size_limit_bytes
    passed = size <= limit
    return HealthResult(
        VIEW_SIZE,
        view.name,
        passed,
        WARN,
        f"{view.name} takes {size / MB:.2f} MB for {rows:,} rows "
        f"({'within' if passed else 'over'} the {limit / MB:g} MB limit)",
        {
            "size_bytes": size,
            "size_mb": round(size / MB, 3),
            "limit_mb": round(limit / MB, 3),
            "row_count": rows,
            "bytes_per_row": round(size / rows) if rows else None,
        },
    )


# --------------------------------------------------------------------------- completeness

SAMPLE_IDS = 10
"""How many ids a failure lists (enough to start looking, short enough to read)."""


def completeness(conn: psycopg.Connection, view: ManagedView) -> HealthResult:
    """Exactly one row per non-deleted budget version: none missing, none extra, no duplicate.

    Only meaningful for views with ``one_row_per_version``; for the others it passes
    with a note, so a caller may run it on every view.
    """
    if not view.one_row_per_version or not view.version_column:
        return HealthResult(
            COMPLETENESS, view.name, True, ERROR, f"{view.name} is not one row per version", {}
        )
    if not is_populated(conn, view):
        return _never_populated(COMPLETENESS, view, ERROR)
    query = sql.SQL(
        """
        WITH expected AS (
            SELECT id FROM {versions} WHERE deleted_at IS NULL
        ), actual AS (
            SELECT {vc} AS id, count(*) AS n FROM {mv} GROUP BY {vc}
        ), missing AS (
            SELECT e.id FROM expected e LEFT JOIN actual a USING (id) WHERE a.id IS NULL
        ), extra AS (
            SELECT a.id FROM actual a LEFT JOIN expected e USING (id) WHERE e.id IS NULL
        ), duplicated AS (
            SELECT id FROM actual WHERE n > 1
        )
        SELECT (SELECT count(*) FROM expected),
               (SELECT coalesce(sum(n), 0) FROM actual),
               (SELECT count(*) FROM missing),
               (SELECT array_agg(id ORDER BY id) FROM (SELECT id FROM missing ORDER BY id LIMIT {k}) s),
               (SELECT count(*) FROM extra),
               (SELECT array_agg(id ORDER BY id) FROM (SELECT id FROM extra ORDER BY id LIMIT {k}) s),
               (SELECT count(*) FROM duplicated),
               (SELECT array_agg(id ORDER BY id) FROM (SELECT id FROM duplicated ORDER BY id LIMIT {k}) s)
        """
    ).format(
        versions=sql.Identifier(SCHEMA, VERSIONS_TABLE),
        vc=sql.Identifier(view.version_column),
        mv=_ident(view),
        k=sql.Literal(SAMPLE_IDS),
    )
    expected, rows, n_missing, missing, n_extra, extra, n_dup, dup = conn.execute(query).fetchone()
    passed = n_missing == 0 and n_extra == 0 and n_dup == 0
    if passed:
        description = f"{rows:,} rows for {expected:,} non-deleted versions"
    else:
        problems = []
        if n_missing:
            problems.append(f"{n_missing} version(s) missing (first: {missing[0]})")
        if n_extra:
            problems.append(f"{n_extra} row(s) for deleted or unknown versions (first: {extra[0]})")
        if n_dup:
            problems.append(f"{n_dup} version(s) with several rows (first: {dup[0]})")
        description = (
            f"{view.name} has {rows:,} rows for {expected:,} non-deleted versions: "
            + "; ".join(problems)
            + " (a refresh has not run since, or the view is wrong)"
        )
    return HealthResult(
        COMPLETENESS,
        view.name,
        passed,
        ERROR,
        description,
        {
            "expected_versions": expected,
            "row_count": rows,
            "missing_versions": n_missing,
            "missing_version_ids": plain(missing or []),
            "extra_rows": n_extra,
            "extra_version_ids": plain(extra or []),
            "duplicated_versions": n_dup,
            "duplicated_version_ids": plain(dup or []),
        },
    )


# --------------------------------------------------------------------------- reconciliation

MAX_DIFF_ROWS = 1000
"""Differing rows fetched (the total is counted in full)."""


def sample_versions(
    conn: psycopg.Connection, view: ManagedView, size: int, seed: str
) -> tuple[list[Any], int]:
    """A deterministic sample of versions, and how many there were to choose from.

    Candidates are the versions in the view *and* the non-deleted versions in the
    source, so a row that should have appeared and one that should have gone are
    both caught. ``md5(id || seed)`` orders them: the same seed gives the same sample.
    """
    vc = sql.Identifier(view.version_column)
    candidates = sql.SQL(
        "SELECT {vc} AS v FROM {mv} UNION SELECT id FROM {versions} WHERE deleted_at IS NULL"
    ).format(vc=vc, mv=_ident(view), versions=sql.Identifier(SCHEMA, VERSIONS_TABLE))
    rows = conn.execute(
        sql.SQL(
            """SELECT v, count(*) OVER () FROM ({candidates}) c
               ORDER BY md5(v::text || %(seed)s), v LIMIT %(n)s"""
        ).format(candidates=candidates),
        {"seed": seed, "n": size},
    ).fetchall()
    return [v for v, _ in rows], (rows[0][1] if rows else 0)


def reconciliation(
    conn: psycopg.Connection,
    view: ManagedView,
    settings: HealthSettings,
) -> HealthResult:
    """The materialized rows of sampled versions equal the live defining query's.

    Both sides are read in one statement (one snapshot of the source tables): the
    view's rows and ``v_*``'s rows for the sampled versions, joined on the unique
    key, every column compared with IS DISTINCT FROM. A difference means the view
    does not hold what its query returns now: a change the view has not reflected
    yet (the metadata says whether change capture logged one for that version since
    the refresh) or, when nothing explains it, a write path that skipped change
    capture or a wrong view.
    """
    if not is_populated(conn, view):
        return _never_populated(RECONCILIATION, view, ERROR)
    last = last_success(conn, view)
    seed = settings.sample_seed or str(last["id"] if last else 0)
    columns = view_columns(conn, view)
    key = list(view.unique_key)
    metadata: dict[str, Any] = {"seed": seed}
    params: dict[str, Any] = {}
    if view.version_column:
        sample, candidates = sample_versions(conn, view, settings.sample_size, seed)
        metadata.update(
            sample_size=len(sample),
            candidate_versions=candidates,
            sampled_versions=plain(sample[:50]),
        )
        vc = sql.Identifier(view.version_column)
        view_rows = sql.SQL("SELECT * FROM {} WHERE {} = ANY(%(sample)s)").format(_ident(view), vc)
        # One version at a time (OFFSET 0 keeps the subquery apart): the equality reaches
        # each per-table aggregate of the live query, which a list of versions does not.
        live_rows = sql.SQL(
            "SELECT x.* FROM unnest(%(sample)s) AS s(version) "
            "CROSS JOIN LATERAL (SELECT * FROM {} WHERE {} = s.version OFFSET 0) x"
        ).format(sql.Identifier(SCHEMA, view.live_view), vc)
        params["sample"] = sample
    else:
        view_rows = sql.SQL("SELECT * FROM {}").format(_ident(view))
        live_rows = sql.SQL("SELECT * FROM {}").format(sql.Identifier(SCHEMA, view.live_view))
        metadata.update(sample_size=None, candidate_versions=None)

    def col(alias: str, name: str) -> sql.Composed:
        return sql.SQL("{}.{}").format(sql.Identifier(alias), sql.Identifier(name))

    differing = sql.SQL(", ").join(
        sql.SQL("CASE WHEN {} IS DISTINCT FROM {} THEN {} END").format(
            col("m", c), col("l", c), sql.Literal(c)
        )
        for c in columns
    )
    keys = sql.SQL(", ").join(sql.Identifier(k) for k in key)
    query = sql.SQL(
        """
        WITH m AS MATERIALIZED ({view_rows}),
             l AS MATERIALIZED ({live_rows}),
             d AS (
                SELECT {key_values},
                       {m_key} IS NULL AS missing_in_view,
                       {l_key} IS NULL AS missing_in_live,
                       array_remove(ARRAY[{differing}]::text[], NULL) AS columns,
                       to_jsonb(m) AS view_row,
                       to_jsonb(l) AS live_row
                FROM m FULL JOIN l ON {join}
                WHERE {m_key} IS NULL OR {l_key} IS NULL OR ROW({m_all}) IS DISTINCT FROM ROW({l_all})
             )
        SELECT (SELECT count(*) FROM m),
               (SELECT count(*) FROM l),
               (SELECT count(*) FROM d),
               (SELECT count(DISTINCT {first_key}) FROM d),
               (SELECT json_agg(x ORDER BY {keys})::text
                  FROM (SELECT * FROM d ORDER BY {keys} LIMIT {max_rows}) x)
        """
    ).format(
        view_rows=view_rows,
        live_rows=live_rows,
        key_values=sql.SQL(", ").join(
            sql.SQL("coalesce({}, {}) AS {}").format(col("m", k), col("l", k), sql.Identifier(k))
            for k in key
        ),
        m_key=col("m", key[0]),
        l_key=col("l", key[0]),
        differing=differing,
        join=sql.SQL(" AND ").join(
            sql.SQL("{} = {}").format(col("m", k), col("l", k)) for k in key
        ),
        m_all=sql.SQL(", ").join(col("m", c) for c in columns),
        l_all=sql.SQL(", ").join(col("l", c) for c in columns),
        first_key=sql.Identifier(view.version_column or key[0]),
        keys=keys,
        max_rows=sql.Literal(MAX_DIFF_ROWS),
    )
    # One statement: both sides see one snapshot of the source tables. JIT off: the
    # planner's row estimates for the per-version lateral are absurdly high, and
    # compiling for them costs a second where running takes milliseconds.
    with conn.transaction():
        conn.execute("SELECT set_config('jit', 'off', true)")
        n_view, n_live, n_diff, n_diff_versions, diff_json = conn.execute(query, params).fetchone()
    diffs = json.loads(diff_json, parse_float=Decimal) if diff_json else []
    metadata.update(view_rows=n_view, live_rows=n_live, differing_rows=n_diff)
    if not n_diff:
        where_text = (
            f"{metadata['sample_size']} sampled version(s) of {metadata['candidate_versions']}"
            if view.version_column
            else "all rows"
        )
        return HealthResult(
            RECONCILIATION,
            view.name,
            True,
            ERROR,
            f"{n_view:,} rows of {where_text} equal the live query {view.live_view}",
            metadata,
        )
    first = describe_difference(diffs[0], view, columns)
    vc = view.version_column or key[0]
    versions = list(dict.fromkeys(d[vc] for d in diffs))
    pending = changed_versions_since(conn, view, versions)
    metadata.update(
        differing_versions=n_diff_versions,
        differing_version_ids=versions[:SAMPLE_IDS],
        first_difference=first,
        versions_with_changes_since_refresh=[v for v in versions if v in pending][:SAMPLE_IDS]
        if pending is not None
        else None,
    )
    explained = pending is not None and all(v in pending for v in versions)
    cause = (
        "change capture logged a write to each of them since the refresh: refresh the view"
        if explained
        else "no logged change explains it: a write that skipped change capture, or a wrong view"
        if pending is not None
        else "refresh the view; if it persists the view is wrong"
    )
    where = f"{vc} {first[vc]}" if vc in first else f"key {first['key']}"
    return HealthResult(
        RECONCILIATION,
        view.name,
        False,
        ERROR,
        f"{n_diff} row(s) in {n_diff_versions} version(s) differ from the live query; first: "
        f"{where}, column {first['column']}: view {first['view_value']!r} vs live "
        f"{first['live_value']!r} ({cause})",
        metadata,
    )


def describe_difference(diff: dict[str, Any], view: ManagedView, columns: list[str]) -> dict:
    """The first differing column of one row, with both values as text."""
    key = {k: diff[k] for k in view.unique_key}
    if diff["missing_in_view"]:
        column, view_value, live_value = "(row)", None, "present"
    elif diff["missing_in_live"]:
        column, view_value, live_value = "(row)", "present", None
    else:
        column = diff["columns"][0]
        view_value = _text(diff["view_row"].get(column))
        live_value = _text(diff["live_row"].get(column))
    out = {**{k: str(v) for k, v in key.items()}, "column": column}
    out.update(
        key=", ".join(f"{k}={v}" for k, v in key.items()),
        view_value=view_value,
        live_value=live_value,
        differing_columns=diff["columns"]
        if not (diff["missing_in_view"] or diff["missing_in_live"])
        else [],
        missing_in_view=diff["missing_in_view"],
        missing_in_live=diff["missing_in_live"],
    )
    return out


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def changed_versions_since(
    conn: psycopg.Connection, view: ManagedView, versions: Sequence[Any]
) -> set[str] | None:
    """Which of ``versions`` have a logged change the view does not reflect yet.

    A change to a table without versions (reference data) concerns every version.
    None when there is no change log to ask (then nothing can be said either way).
    """
    if not changes.capture_installed(conn):
        return None
    changed = {c.budget_version_id for c in changes.unreflected_changes(conn, view)}
    wanted = {str(v) for v in versions}
    if None in changed:
        return wanted
    return {str(v) for v in changed} & wanted


# --------------------------------------------------------------------------- freshness


def _level_count(conn: psycopg.Connection) -> int:
    return conn.execute(
        "SELECT count(*) FROM efir_budget.academic_levels WHERE deleted_at IS NULL"
    ).fetchone()[0]


def freshness(
    conn: psycopg.Connection,
    view: ManagedView,
    settings: HealthSettings,
    rules: RefreshRules | None = None,
) -> HealthResult:
    """Per priority, the oldest change the view does not reflect against that priority's limit.

    Each pending change is classified with the sensors' own rules
    (``efir_pipeline.core.rules``), so a change counts against the deadline it was promised:
    a status change 10 minutes old is late, a single edit 10 hours old is not. The
    worst priority decides: WARN past its limit, ERROR past twice. Ages use the
    database clock, the one ``changed_at`` comes from.
    """
    if not is_populated(conn, view):
        return _never_populated(FRESHNESS, view, ERROR)
    now = conn.execute("SELECT clock_timestamp()").fetchone()[0]
    last = last_success(conn, view)
    data_as_of = last["snapshot_at"] if last else None
    metadata: dict[str, Any] = {
        "data_as_of": data_as_of,
        "limits_seconds": {p: settings.freshness_limits[p] for p in PRIORITIES},
    }
    if not changes.capture_installed(
        conn
    ):  # before migration 0004: updated_at only, counted as low
        from efir_pipeline.core.db.info import oldest_unreflected_change_at

        oldest = oldest_unreflected_change_at(conn, view, data_as_of)
        pending = {"low": (oldest, 1, None)} if oldest else {}
    else:
        rules = rules or RefreshRules.from_env()
        classified = classify(changes.unreflected_changes(conn, view), rules, _level_count(conn))
        pending = {}
        for item in sorted(classified, key=lambda c: (c.change.changed_at, c.change.id)):
            p = str(item.priority)
            oldest, count, first = pending.get(p, (item.change.changed_at, 0, item))
            pending[p] = (oldest, count + 1, first)

    worst: tuple[float, str] | None = None  # (age / limit, priority)
    by_priority = {}
    for p in PRIORITIES:
        if p not in pending:
            continue
        oldest, count, first = pending[p]
        age = max((now - oldest).total_seconds(), 0.0)
        limit = settings.freshness_limits[p]
        ratio = age / limit if limit else float("inf")
        by_priority[p] = {
            "pending_changes": count,
            "oldest_change_at": oldest,
            "lag_seconds": round(age, 1),
            "limit_seconds": limit,
        }
        if worst is None or ratio > worst[0]:
            worst = (ratio, p)
    lag = max((v["lag_seconds"] for v in by_priority.values()), default=0.0)
    metadata.update(
        lag_seconds=lag,
        pending_changes=sum(v["pending_changes"] for v in by_priority.values()),
        by_priority=by_priority,
    )
    if worst is None:
        return HealthResult(
            FRESHNESS,
            view.name,
            True,
            WARN,
            f"{view.name} reflects every logged change (data as of {_when(data_as_of)})",
            metadata,
        )
    ratio, p = worst
    oldest, _, first = pending[p]
    age = by_priority[p]["lag_seconds"]
    limit = settings.freshness_limits[p]
    metadata["oldest_pending_change"] = _change_metadata(first, p, oldest, age)
    severity = ERROR if ratio > 2 else WARN
    passed = ratio <= 1
    verdict = (
        f"within the {human_duration(limit)} limit"
        if passed
        else f"over the {human_duration(limit)} limit" + (" twice over" if ratio > 2 else "")
    )
    return HealthResult(
        FRESHNESS,
        view.name,
        passed,
        severity,
        f"oldest pending {p}-priority change is {human_duration(age)} old, {verdict} "
        f"({metadata['pending_changes']} change(s) pending; data as of {_when(data_as_of)})",
        metadata,
    )


def _when(value: datetime | None) -> str:
    return value.isoformat(timespec="seconds") if value else "never"


def _change_metadata(item: Classified | None, priority: str, oldest: datetime, age: float) -> dict:
    out: dict[str, Any] = {"priority": priority, "changed_at": oldest, "age_seconds": age}
    if item is not None:
        c = item.change
        out.update(
            change_id=c.id,
            table_name=c.table_name,
            budget_version_id=c.budget_version_id,
            operation=c.operation,
            rows_affected=c.rows_affected,
            reason=item.reason,
        )
    return plain(out)


# --------------------------------------------------------------------------- all checks

CHECKS = (FRESHNESS, REFRESH_DURATION, VIEW_SIZE, COMPLETENESS, RECONCILIATION)


def checks_for(view: ManagedView) -> tuple[str, ...]:
    """The checks that apply to a view (completeness only to one-row-per-version views)."""
    return tuple(c for c in CHECKS if c != COMPLETENESS or view.one_row_per_version)


def run_check(
    conn: psycopg.Connection, view: ManagedView, check: str, settings: HealthSettings
) -> HealthResult:
    if check == FRESHNESS:
        return freshness(conn, view, settings)
    if check == REFRESH_DURATION:
        return refresh_duration(conn, view, settings)
    if check == VIEW_SIZE:
        return view_size(conn, view, settings)
    if check == COMPLETENESS:
        return completeness(conn, view)
    if check == RECONCILIATION:
        return reconciliation(conn, view, settings)
    raise ValueError(f"unknown check {check!r}; known: {', '.join(CHECKS)}")


# --------------------------------------------------------------------------- history

HISTORY_COLUMNS = (
    "id",
    "view_name",
    "outcome",
    "trigger",
    "run_id",
    "requested_at",
    "snapshot_at",
    "finished_at",
    "wait_seconds",
    "duration_seconds",
    "ran_concurrently",
    "row_count",
    "size_bytes",
    "oldest_reflected_change_at",
    "reflected_changes",
    "lag_closed_seconds",
    "error",
)


def refresh_history(
    conn: psycopg.Connection,
    views: Sequence[ManagedView] | None = None,
    *,
    since: datetime | None = None,
    limit: int = 20,
) -> list[dict[str, Any]]:
    """The latest refresh attempts, newest first, with the lag each success closed.

    Reads ``efir_budget.refresh_history`` (migration 0005); before it, the plain
    ``mv_refresh_log`` with the lag columns empty.
    """
    has_view = conn.execute("SELECT to_regclass('efir_budget.refresh_history')").fetchone()[0]
    if has_view:
        source = sql.SQL("efir_budget.refresh_history")
        columns = sql.SQL(", ").join(sql.Identifier(c) for c in HISTORY_COLUMNS)
    else:
        source = sql.SQL("efir_budget.mv_refresh_log")
        lag = {"oldest_reflected_change_at", "reflected_changes", "lag_closed_seconds"}
        columns = sql.SQL(", ").join(
            sql.SQL("NULL AS {}").format(sql.Identifier(c)) if c in lag else sql.Identifier(c)
            for c in HISTORY_COLUMNS
        )
    conditions = [sql.SQL("true")]
    params: dict[str, Any] = {"limit": limit}
    if views:
        conditions.append(sql.SQL("view_name = ANY(%(views)s)"))
        params["views"] = [v.name for v in views]
    if since is not None:
        conditions.append(sql.SQL("finished_at >= %(since)s"))
        params["since"] = since
    query = sql.SQL("SELECT {} FROM {} WHERE {} ORDER BY id DESC LIMIT %(limit)s").format(
        columns, source, sql.SQL(" AND ").join(conditions)
    )
    return conn.cursor(row_factory=dict_row).execute(query, params).fetchall()
