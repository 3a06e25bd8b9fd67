"""How a figure is taken: samples, their percentiles, and interleaved comparisons.

Variants compared with each other run inside one loop, A B B A A B ..., so machine noise
and cache drift hit them alike. A fast variant runs a burst per round (within a small
time budget) so it gets enough samples for a p95 while a slow one runs once.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

BURST_BUDGET_S = 0.05
MAX_BURST = 20

Operation = Callable[[object], object]
"""Runs a measured operation (or its untimed preparation) once for a parameter."""


def percentile(values: Sequence[float], q: float) -> float | None:
    """Linear interpolation between closest ranks (numpy's default)."""
    if not values:
        return None
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    low = math.floor(k)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (k - low)


def rounded(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)


@dataclass
class Measurement:
    scenario: str
    """Stable key, e.g. ``read.one_version`` or ``refresh.mv_kpi_dashboard``."""
    label: str
    variant: str
    samples_ms: list[float] = field(default_factory=list)
    baseline: bool = False
    notes: str = ""
    extra: dict = field(default_factory=dict)
    available: bool = True

    def summary(self) -> dict:
        s = self.samples_ms
        return {
            "n": len(s),
            "p50_ms": rounded(percentile(s, 0.50)),
            "p95_ms": rounded(percentile(s, 0.95)),
            "p99_ms": rounded(percentile(s, 0.99)),
            "mean_ms": rounded(sum(s) / len(s)) if s else None,
            "min_ms": rounded(min(s)) if s else None,
            "max_ms": rounded(max(s)) if s else None,
        }


@dataclass
class Variant:
    name: str
    run: Operation
    """Runs the measured operation once for a parameter; its wall time is the sample."""
    before: Operation | None = None
    """Untimed preparation of each sample (e.g. touching a source row)."""
    baseline: bool = False
    burst: bool = True
    server_time: bool = False
    """``run`` returns the server's own time in ms (EXPLAIN ANALYZE), recorded instead."""


def interleave(
    scenario: str,
    label: str,
    variants: Sequence[Variant],
    params: Sequence,
    *,
    rounds: int,
    notes: dict[str, str] | None = None,
) -> list[Measurement]:
    """Each round runs every variant (a burst of a fast one), alternating the order."""
    bursts = {v.name: _warm_up(v, params[0]) for v in variants}
    results = {
        v.name: Measurement(
            scenario, label, v.name, baseline=v.baseline, notes=(notes or {}).get(v.name, "")
        )
        for v in variants
    }
    k = 0
    for r in range(rounds):
        order = variants if r % 2 == 0 else list(reversed(variants))
        for v in order:
            for _ in range(bursts[v.name]):
                results[v.name].samples_ms.append(_sample(v, params[k % len(params)]))
                k += 1
    return list(results.values())


def _warm_up(variant: Variant, param: object) -> int:
    """Untimed runs (plans, caches, prepared statements); returns the variant's burst."""
    if variant.before:
        variant.before(param)
    t0 = time.perf_counter()
    variant.run(param)
    took = time.perf_counter() - t0
    burst = max(1, min(MAX_BURST, int(BURST_BUDGET_S / max(took, 1e-6))))
    if took < BURST_BUDGET_S:
        for _ in range(5):
            variant.run(param)
    return burst if variant.burst else 1


def _sample(variant: Variant, param: object) -> float:
    if variant.before:
        variant.before(param)
    t0 = time.perf_counter()
    value = variant.run(param)
    took = (time.perf_counter() - t0) * 1000
    return value if variant.server_time else took
