"""Chaos: writers, refresh loops and a killer at once; afterwards nothing is wrong or missing.

Writers edit every kind of source row (moves between versions, soft deletes and
restores, status changes, reference edits, truncates, rolled-back transactions) while
refresh loops refresh every view and a killer terminates backends in the middle of
their REFRESH. When the dust settles, one more refresh of each view must make it equal
its live query (whatever the incremental cache went through), and the history must
hold exactly one row for every attempt the loops made, with the outcome they were told.

``EFIR_CHAOS_SECONDS`` sets how long the storm lasts (default 12; the review ran 120).
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections import Counter

import psycopg

from efir_pipeline.core import catalog
from efir_pipeline.core.db.connection import APPLICATION_NAME
from efir_pipeline.core.db.refresh import refresh_view
from efir_pipeline.core.db.refresh_terms import RefreshResult, RefreshSettings
from efir_pipeline.core.values import parse_duration
from tests.support import random_data
from tests.support.factories import refresh_all, view_equals_live_query

SECONDS = float(os.environ.get("EFIR_CHAOS_SECONDS", "12"))
SETTINGS = RefreshSettings(
    lock_timeout=parse_duration("30s"),
    statement_timeout=parse_duration("60s"),
    wait_timeout=parse_duration("60s"),
)


def _edits(versions: list) -> list:
    """One random edit per call, as (SQL, parameters) pairs run in one transaction."""

    def v() -> object:
        return random.choice(versions)

    return [
        lambda: [
            ("UPDATE efir_budget.revenue_plans SET amount_sar = amount_sar + 1 "
             "WHERE budget_version_id = %s", (v(),)),
        ],
        lambda: [
            ("UPDATE efir_budget.enrollment_plans SET student_count = student_count + 1 "
             "WHERE budget_version_id = %s", (v(),)),
        ],
        lambda: [  # a move: a row leaves a version for one without its account code
            ("UPDATE efir_budget.operating_cost_plans SET budget_version_id = %(to)s "
             "WHERE id = (SELECT o.id FROM efir_budget.operating_cost_plans o "
             "            WHERE o.budget_version_id = %(from)s AND NOT EXISTS ("
             "                SELECT FROM efir_budget.operating_cost_plans x "
             "                WHERE x.budget_version_id = %(to)s "
             "                  AND x.account_code = o.account_code) LIMIT 1)",
             {"to": v(), "from": v()}),
        ],
        lambda: [
            ("UPDATE efir_budget.budget_versions "
             "SET deleted_at = CASE WHEN deleted_at IS NULL THEN now() END WHERE id = %s", (v(),)),
        ],
        lambda: [
            ("UPDATE efir_budget.budget_versions SET status = %s WHERE id = %s",
             (random.choice(["working", "submitted", "approved", "forecast"]), v())),
        ],
        lambda: [("UPDATE efir_budget.nationality_types SET name_en = name_en", ())],
        lambda: [("UPDATE efir_budget.academic_levels SET name_en = name_en", ())],
        lambda: [("TRUNCATE efir_budget.capex_plans", ())],
        lambda: [
            ("UPDATE efir_budget.class_structures SET atsem_count = atsem_count + 1 "
             "WHERE budget_version_id = %s", (v(),)),
            ("ROLLBACK", ()),  # a transaction that never happened
        ],
        lambda: [
            ("DELETE FROM efir_budget.personnel_cost_plans WHERE id = "
             "(SELECT id FROM efir_budget.personnel_cost_plans WHERE budget_version_id = %s "
             " LIMIT 1)", (v(),)),
        ],
    ]  # fmt: skip


def write(url: str, versions: list, stop: threading.Event, seed: int, errors: Counter) -> None:
    random.seed(seed)
    edits = _edits(versions)
    with psycopg.connect(url) as conn:
        while not stop.is_set():
            try:
                for statement, params in random.choice(edits)():
                    if statement == "ROLLBACK":
                        conn.rollback()
                        break
                    conn.execute(statement, params)
                else:
                    conn.commit()
            except psycopg.Error as exc:  # deadlocks, lock timeouts: part of the weather
                conn.rollback()
                errors[type(exc).__name__] += 1


def refresh_loop(url: str, stop: threading.Event, seed: int, results: list) -> None:
    rng = random.Random(seed)
    views = catalog.resolve_views()
    while not stop.is_set():
        view = rng.choice(views)
        results.append(
            refresh_view(view, url=url, settings=SETTINGS, trigger="chaos", full=rng.random() < 0.1)
        )


def kill_refreshes(url: str, stop: threading.Event, kills: list) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        while not stop.wait(random.uniform(0.2, 0.8)):
            killed = conn.execute(
                """SELECT count(*) FILTER (WHERE pg_terminate_backend(pid))
                   FROM pg_stat_activity
                   WHERE datname = current_database() AND application_name = %s
                     AND query ILIKE 'REFRESH MATERIALIZED VIEW%%' AND state = 'active'""",
                (APPLICATION_NAME,),
            ).fetchone()[0]
            kills.append(killed)


def test_writers_refreshes_and_terminated_backends_leave_every_view_right(make_database):
    url = make_database()
    with psycopg.connect(url, autocommit=True) as conn:
        random_data.generate(conn, seed=13, n_orgs=2)
        versions = [r[0] for r in conn.execute("SELECT id FROM efir_budget.budget_versions")]
    refresh_all(url)

    stop = threading.Event()
    errors: Counter = Counter()
    results: list[list[RefreshResult]] = [[], []]
    kills: list[int] = []
    threads = [
        *(
            threading.Thread(target=write, args=(url, versions, stop, seed, errors))
            for seed in (1, 2)
        ),
        *(
            threading.Thread(target=refresh_loop, args=(url, stop, seed, results[seed]))
            for seed in (0, 1)
        ),
        threading.Thread(target=kill_refreshes, args=(url, stop, kills)),
    ]
    for thread in threads:
        thread.start()
    time.sleep(SECONDS)
    stop.set()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads)

    attempts = [r for loop in results for r in loop]
    outcomes = Counter(r.outcome for r in attempts)
    print(f"attempts {outcomes}, backends terminated {sum(kills)}, writer errors {errors}")
    assert outcomes["success"] > 0 and sum(kills) > 0, "the storm never reached a REFRESH"
    assert outcomes["failed"] > 0, "no refresh was terminated mid-way"

    with psycopg.connect(url, autocommit=True) as conn:
        logged = dict(
            conn.execute(
                "SELECT id, outcome FROM efir_budget.mv_refresh_log WHERE trigger = 'chaos'"
            ).fetchall()
        )
        assert all(r.log_id is not None for r in attempts), "an attempt left no history row"
        assert logged == {r.log_id: r.outcome for r in attempts}

        refresh_all(url)
        for view in catalog.resolve_views():
            assert view_equals_live_query(conn, view), view.name
        pending = conn.execute(
            "SELECT sum(pending_changes) FROM efir_budget.kpi_freshness"
        ).fetchone()[0]
        assert pending == 0
