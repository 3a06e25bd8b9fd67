"""The measured scenarios, in the order a run measures them.

Each is a function of the prepared :class:`~efir_pipeline.cli.bench.harness.Bench` that
records its measurements there. A new scenario is a module here plus one entry in
:data:`SCENARIOS`: ``--only``, the option defaults and the run all read this mapping.
"""

from __future__ import annotations

from collections.abc import Callable

from efir_pipeline.cli.bench.harness import Bench
from efir_pipeline.cli.bench.scenarios.concurrency import measure_concurrency
from efir_pipeline.cli.bench.scenarios.readers import measure_readers_during_refresh
from efir_pipeline.cli.bench.scenarios.reads import measure_reads
from efir_pipeline.cli.bench.scenarios.refresh import measure_refresh
from efir_pipeline.cli.bench.scenarios.visible import measure_change_to_visible

Scenario = Callable[[Bench], None]

SCENARIOS: dict[str, Scenario] = {
    "reads": measure_reads,
    "refresh": measure_refresh,
    "readers": measure_readers_during_refresh,
    "visible": measure_change_to_visible,
    "concurrency": measure_concurrency,
}
