"""The one ``dg.Definitions`` of the code location (``workspace.yaml`` loads this module).

Everything is assembled here, in plain lists, so adding checks, sensors or schedules
is one import and one list entry, e.g. ``SENSORS = [*sensors.SENSORS]``. Loading this
module never connects to the database: asset descriptions come from the catalog and
the resource connects only when a run, check or sensor tick uses it.
"""

from __future__ import annotations

import dagster as dg

from efir_pipeline.defs import alerts, assets, checks, jobs, reporting, schedules, sensors
from efir_pipeline.defs.resources import RESOURCE_KEY, postgres_resource

ASSETS: list[dg.AssetSpec | dg.AssetsDefinition] = [assets.SOURCE_ASSETS, *assets.VIEW_ASSETS]
ASSET_CHECKS: list[dg.AssetChecksDefinition] = [*checks.ASSET_CHECKS]
JOBS: list[dg.UnresolvedAssetJobDefinition | dg.JobDefinition] = [
    *jobs.JOBS,
    *checks.JOBS,
    *schedules.JOBS,
]
SCHEDULES: list[dg.ScheduleDefinition] = [*schedules.SCHEDULES, *checks.SCHEDULES]
SENSORS: list[dg.SensorDefinition] = [*sensors.SENSORS, *reporting.SENSORS, *alerts.SENSORS]
RESOURCES: dict[str, object] = {RESOURCE_KEY: postgres_resource()}

defs = dg.Definitions(
    assets=ASSETS,
    asset_checks=ASSET_CHECKS,
    jobs=JOBS,
    schedules=SCHEDULES,
    sensors=SENSORS,
    resources=RESOURCES,
    # Every step is a SQL call of a fraction of a second: one process per run, not per step.
    executor=dg.in_process_executor,
)
