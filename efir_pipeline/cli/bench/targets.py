"""The issue's targets (network scale, 2 cores), judged against a run's figures.

Each target is met, not met, or n/a when its scenario was not measured; the detail
always gives the numbers it was judged on, so a verdict can be checked by eye.
"""

from __future__ import annotations

from collections.abc import Sequence

VIEW_READ = "view read, one version: p50 <= 2 ms"
FISCAL_YEAR = "fiscal-year list: view >= 50x faster than the live query"
READER_P95 = "reader p95 during a full refresh <= 2x idle"
NO_LOCK_WAIT = "no reader waits on a lock (lock_timeout 100ms + pg_stat_activity)"
CHANGE_VISIBLE = "one-version change visible >= 20x faster incremental than full"


def targets(rows: Sequence[dict]) -> list[dict]:
    """The issue's targets (network scale, 2 cores), met or not, with the numbers."""
    return [
        _view_read(rows),
        _fiscal_year(rows),
        *_readers_during_refresh(rows),
        _change_to_visible(rows),
    ]


def verdict_lines(found: Sequence[dict]) -> str:
    word = {True: "met", False: "NOT MET", None: "n/a"}
    width = max(len(t["target"]) for t in found)
    return "\n".join(f"  {word[t['met']]:<8} {t['target']:<{width}}  {t['detail']}" for t in found)


def _target(name: str, met: bool | None, detail: str) -> dict:
    return {"target": name, "met": met, "detail": detail}


def _find(rows: Sequence[dict], scenario: str, prefix: str) -> dict | None:
    for r in rows:
        if r["scenario"] == scenario and r["variant"].startswith(prefix) and r["available"]:
            return r if r["n"] else None
    return None


def _view_read(rows: Sequence[dict]) -> dict:
    one = _find(rows, "read.one_version", "materialized view")
    if not one:
        return _target(VIEW_READ, None, "not measured")
    return _target(
        VIEW_READ,
        one["p50_ms"] <= 2.0,
        f"p50 {one['p50_ms']:.3f} ms (p95 {one['p95_ms']:.3f} ms)",
    )


def _fastest_live_ratio(rows: Sequence[dict], scenario: str) -> tuple[float, dict, dict] | None:
    view = _find(rows, scenario, "materialized view")
    lives = [
        r for r in rows if r["scenario"] == scenario and r["variant"].startswith("live") and r["n"]
    ]
    if not view or not lives:
        return None
    best = min(lives, key=lambda r: r["p50_ms"])
    return best["p50_ms"] / view["p50_ms"], view, best


def _fiscal_year(rows: Sequence[dict]) -> dict:
    wall = _fastest_live_ratio(rows, "read.fiscal_year")
    server = _fastest_live_ratio(rows, "read.fiscal_year.server")
    parts = []
    for what, found in (("server time", server), ("end to end through psycopg", wall)):
        if found:
            ratio, view, best = found
            parts.append(
                f"{what} {ratio:,.0f}x (view p50 {view['p50_ms']:.2f} ms vs {best['variant']} "
                f"p50 {best['p50_ms']:,.1f} ms)"
            )
    # Judged on the server's time: decoding the rows in the client costs both sides alike.
    judged = server or wall
    return _target(
        FISCAL_YEAR, judged[0] >= 50 if judged else None, "; ".join(parts) or "not measured"
    )


def _readers_during_refresh(rows: Sequence[dict]) -> list[dict]:
    idle = _find(rows, "readers_during_refresh", "idle")
    during = _find(rows, "readers_during_refresh", "during refresh_view")
    if not (idle and during):
        return [
            _target(READER_P95, None, "not measured"),
            _target(NO_LOCK_WAIT, None, "not measured"),
        ]
    ratio = during["p95_ms"] / idle["p95_ms"]
    p95 = _target(
        READER_P95,
        ratio <= 2.0,
        f"{ratio:.2f}x: p95 {during['p95_ms']:.3f} ms during vs {idle['p95_ms']:.3f} ms "
        f"idle (p50 {during['p50_ms']:.3f} vs {idle['p50_ms']:.3f} ms)",
    )
    return [p95, _no_lock_wait(rows, during)]


def _no_lock_wait(rows: Sequence[dict], during: dict) -> dict:
    extra = during["extra"]
    waits = extra.get("lock_timeouts", 0) + extra.get("errors", 0)
    seen = extra.get("lock_monitor", {}).get("waiting_observations", 0)
    conc = _find(rows, "concurrent_readers", "")
    conc_waits = sum(
        r["extra"].get("lock_timeouts", 0) + r["extra"].get("lock_waits_seen", 0)
        for r in rows
        if r["scenario"] == "concurrent_readers"
    )
    return _target(
        NO_LOCK_WAIT,
        waits == 0 and seen == 0 and conc_waits == 0,
        f"during refresh: {extra.get('lock_timeouts', 0)} lock timeouts, "
        f"{extra.get('errors', 0)} other errors, {seen} lock waits seen in "
        f"{extra.get('lock_monitor', {}).get('polls', 0)} samples"
        + (f"; concurrent readers: {conc_waits}" if conc else ""),
    )


def _change_to_visible(rows: Sequence[dict]) -> dict:
    full = _find(rows, "change_to_visible", "full")
    inc = _find(rows, "change_to_visible", "incremental")
    if full and inc:
        ratio = full["p50_ms"] / inc["p50_ms"]
        return _target(
            CHANGE_VISIBLE,
            ratio >= 20,
            f"{ratio:,.1f}x: incremental p50 {inc['p50_ms']:.1f} ms vs full "
            f"{full['p50_ms']:.1f} ms",
        )
    if full:
        return _target(
            CHANGE_VISIBLE,
            None,
            f"pending: no incremental refresh yet (full p50 {full['p50_ms']:.1f} ms)",
        )
    return _target(CHANGE_VISIBLE, None, "not measured")
