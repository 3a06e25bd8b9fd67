"""Dashboard reads: the materialized view vs its live defining query.

The reason the views exist. The live query runs with the server's JIT setting and, when
JIT is on and available, with ``jit = off`` too: compiling alone can dwarf a small read.
The fiscal-year list is also measured in server time (EXPLAIN ANALYZE), since decoding
its rows in Python costs both sides alike and bounds the end-to-end ratio.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import psycopg

from efir_pipeline.cli.bench.harness import Bench
from efir_pipeline.cli.bench.measure import Operation, Variant
from efir_pipeline.cli.bench.options import CONSOLIDATION_VIEW, KPI_VIEW
from efir_pipeline.core import catalog
from efir_pipeline.core.catalog import ManagedView


@dataclass(frozen=True)
class _Case:
    key: str
    label: str
    template: str
    view: ManagedView
    params: list

    @property
    def mv_sql(self) -> str:
        return self.template.format(self.view.qualified_name)

    @property
    def live_sql(self) -> str:
        return self.template.format(self.view.qualified_live_view)


def _cases(bench: Bench) -> list[_Case]:
    kpi = catalog.get_view(KPI_VIEW)
    cons = catalog.get_view(CONSOLIDATION_VIEW)
    return [
        _Case(
            "read.one_version",
            "read: one version's KPI row",
            "SELECT * FROM {} WHERE budget_version_id = %s",
            kpi,
            bench.sample,
        ),
        _Case(
            "read.fiscal_year",
            "read: one fiscal year, all schools",
            "SELECT * FROM {} WHERE fiscal_year = %s ORDER BY organization_id, version_name",
            kpi,
            bench.fiscal_years,
        ),
        _Case(
            "read.consolidation",
            "read: one version's consolidation",
            "SELECT * FROM {} WHERE budget_version_id = %s ORDER BY account_code",
            cons,
            bench.sample,
        ),
    ]


def _fetch(conn: psycopg.Connection, text: str) -> Operation:
    def run(param):
        return conn.execute(text, (param,)).fetchall()

    return run


def _server_time(conn: psycopg.Connection, text: str) -> Operation:
    explain = "EXPLAIN (ANALYZE, TIMING OFF, SUMMARY ON, FORMAT JSON) " + text

    def run(param) -> float:
        (plan,) = conn.execute(explain, (param,)).fetchone()[0]
        return plan["Planning Time"] + plan["Execution Time"]

    return run


@dataclass
class _Sessions:
    mv: psycopg.Connection
    live: psycopg.Connection
    nojit: psycopg.Connection
    jit: bool
    """JIT is on and available: the ``jit=off`` variant is worth measuring."""

    def variants(
        self,
        case: _Case,
        make: Callable[[psycopg.Connection, str], Operation],
        *,
        server_time: bool = False,
    ) -> list[Variant]:
        variants = [
            Variant("materialized view", make(self.mv, case.mv_sql), server_time=server_time),
            Variant(
                "live query (jit as server)",
                make(self.live, case.live_sql),
                baseline=True,
                server_time=server_time,
            ),
        ]
        if self.jit:
            variants.append(
                Variant(
                    "live query, jit=off", make(self.nojit, case.live_sql), server_time=server_time
                )
            )
        return variants


def _sessions(bench: Bench) -> _Sessions:
    mv = bench.connect("read-mv")
    live = bench.connect("read-live", statement_timeout="30min")
    nojit = bench.connect("read-live-nojit", statement_timeout="30min", jit="off")
    jit_on, jit_available = live.execute(
        "SELECT current_setting('jit')::bool, pg_jit_available()"
    ).fetchone()
    bench.meta["jit"] = {"setting": jit_on, "available": jit_available}
    return _Sessions(mv, live, nojit, jit=bool(jit_on and jit_available))


def measure_reads(bench: Bench) -> None:
    sessions = _sessions(bench)
    for case in _cases(bench):
        params = list(case.params)
        bench.rng.shuffle(params)
        _end_to_end(bench, sessions, case, params)
        if case.key == "read.fiscal_year":
            _server_side(bench, sessions, case, params)


def _end_to_end(bench: Bench, sessions: _Sessions, case: _Case, params: list) -> None:
    rows = len(sessions.mv.execute(case.mv_sql, (params[0],)).fetchall())
    variants = sessions.variants(case, _fetch)
    bench.say(f"{case.label}: {len(variants)} variants x {bench.options.repeat} rounds")
    ms = bench.interleave(case.key, case.label, variants, params, rounds=bench.options.repeat)
    for m in ms:
        m.extra["rows_returned_first_param"] = rows
    ms[0].notes = f"{rows:,} row(s), fetched and decoded by psycopg"


def _server_side(bench: Bench, sessions: _Sessions, case: _Case, params: list) -> None:
    # Decoding thousands of rows in Python is the same for both sides and bounds the
    # ratio above; the server's own time (planning + execution) shows the view alone.
    variants = sessions.variants(case, _server_time, server_time=True)
    label = f"{case.label} (server time)"
    bench.say(f"{label}: {len(variants)} variants x {bench.options.repeat} rounds")
    ms = bench.interleave(
        f"{case.key}.server", label, variants, params, rounds=bench.options.repeat
    )
    ms[0].notes = "EXPLAIN ANALYZE planning + execution, no transfer"
