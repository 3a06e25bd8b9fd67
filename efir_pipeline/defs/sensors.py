"""Sensors that turn logged budget changes into view refreshes, by priority.

- ``refresh_views_on_high_priority_changes`` (every loop of the daemon, ~5 s): a view with a high-priority
  change it does not reflect yet is refreshed at once;
- ``refresh_views_on_medium_priority_changes`` (every 60 s): the medium changes of a
  view are collected and refreshed together once the first is
  ``EFIR_MEDIUM_BATCH_SECONDS`` old (50 min: inside the 1 h promise);
- low changes wait for the nightly schedule (``efir_pipeline.defs.schedules``).

Only the views that read a changed table are refreshed (``catalog.views_reading``):
a tick requests one ``refresh_changed_views`` run selecting all of them (one process,
Dagster ordering the steps).

The cursor, per view, is the database snapshot (``pg_current_snapshot()``) at which
the sensor last requested that view's refresh. A refresh launched after that moment
reflects every change visible in it, so the next tick looks only at changes the
snapshot does not contain and that the view's last successful refresh does not
reflect either. Why a snapshot and not the highest change id: ids are drawn when a
statement runs and become visible when its transaction commits, so a lower id can
appear after a higher one was read, and an id cursor would skip it for good.
With the snapshot each change is considered exactly once, across restarts too.

- Retried ticks: the run key is the views, the highest change id and the number of
  changes the request covers. Successive requests cover disjoint sets of changes, so
  a retried tick that sees the same changes produces the same key, and Dagster
  launches it once; one that sees more gets a new key and serves them.
- During a refresh: changes committed after the request are not covered by it, so the
  next tick requests one more refresh; while a run for the view has not started
  refreshing it yet (queued, or waiting for the view's pool: it will see them), the
  sensor requests nothing and keeps its cursor, so requests do not stack. The
  per-view pool and the engine's per-view lock keep the refreshes one at a time.
- Views on views (``depends_on``): a view is requested together with the views it
  reads, in one run (Dagster orders the steps), and waits while any of them has a
  run that has not started yet: refreshed before them, it would miss their changes.
- A failed run is retried by the asset's retry policy and reported; the sensor does
  not request the same changes again (a broken view would launch a run every tick);
  the freshness check reports them and the nightly refresh retries.
- Affected versions: the ``efir/versions`` tag lists the budget versions of the changes
  that triggered the request (count, then the first ids; ``all`` when one of them has
  no version: a reference table or a TRUNCATE), for people reading the run. It is not
  what the refresh recomputes: an incremental view (catalog strategy ``per_version``)
  finds its dirty versions itself, in the change log, in the snapshot of its REFRESH,
  which also covers changes committed after this tick (docs/incremental-refresh.md).
"""

import json
import logging
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import dagster as dg

from efir_pipeline.core import catalog, settings
from efir_pipeline.core.db import changes
from efir_pipeline.core.rules import Priority, RefreshRules, classify
from efir_pipeline.defs.assets import TRIGGER_TAG
from efir_pipeline.defs.jobs import REFRESH_ALL_VIEWS, REFRESH_CHANGED_VIEWS, refresh_changed_views
from efir_pipeline.defs.keys import view_asset_key
from efir_pipeline.defs.resources import PostgresResource

log = logging.getLogger(__name__)

HIGH_SENSOR = "refresh_views_on_high_priority_changes"
MEDIUM_SENSOR = "refresh_views_on_medium_priority_changes"
CURSOR_VERSION = 1
_PENDING_STATUSES = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]
_TAG_LIMIT = 200


@dataclass(frozen=True)
class Decision:
    """One refresh to request: some views and the changes that call for it."""

    views: tuple[str, ...]
    run_key: str
    reasons: tuple[str, ...]
    counts: tuple[tuple[str, int], ...]
    """Per view, how many changes not yet reflected the refresh will cover."""
    max_change_id: int | None
    versions: tuple[str, ...] = ()
    """Budget versions of the triggering changes (informational, see the module doc)."""
    all_versions: bool = False
    """A triggering change has no version (reference table, TRUNCATE): all are affected."""

    def run_request(self, priority: Priority) -> dg.RunRequest:
        return dg.RunRequest(
            run_key=self.run_key,
            asset_selection=[view_asset_key(v) for v in self.views],
            tags={
                TRIGGER_TAG: f"sensor:{priority}",
                "efir/views": ",".join(self.views),
                "efir/reason": _clip("; ".join(self.reasons)),
                "efir/changes": ",".join(f"{v}={n}" for v, n in self.counts),
                "efir/max_change_id": str(self.max_change_id),
                "efir/versions": versions_tag(self.versions, self.all_versions),
            },
        )


def versions_tag(versions: Iterable[str], everything: bool) -> str:
    """``all`` or ``<count>: id,id,...`` clipped to the tag limit (``...`` when clipped)."""
    if everything:
        return "all"
    versions = list(versions)
    return _clip(f"{len(versions)}: {','.join(versions)}")


def _clip(text: str) -> str:
    return text if len(text) <= _TAG_LIMIT else text[: _TAG_LIMIT - 3] + "..."


def load_cursor(raw: str | None) -> dict[str, dict]:
    """Per view: ``{"snapshot": ..., "origin": ..., "max_id": ..., "at": ...}``; unreadable
    means empty. ``origin`` is the cluster the snapshot was taken in: after a restore into
    another cluster the old snapshot covers none of the new changes.

    An empty cursor is safe: every change the last refresh does not reflect is
    outstanding again, so nothing is lost (at worst one refresh too many).
    """
    if not raw:
        return {}
    try:
        data = json.loads(raw)
        views = data["views"]
        return {
            name: entry
            for name, entry in views.items()
            if isinstance(entry, dict) and changes.is_snapshot(entry.get("snapshot"))
        }
    except (ValueError, KeyError, TypeError, AttributeError):
        log.warning("ignoring an unreadable sensor cursor: %.200s", raw)
        return {}


def dump_cursor(views: Mapping[str, dict]) -> str:
    return json.dumps({"version": CURSOR_VERSION, "views": dict(sorted(views.items()))})


def decide(
    read: changes.ChangeRead,
    cursor: Mapping[str, dict],
    priority: Priority,
    rules: RefreshRules,
    busy: Iterable[str] = (),
) -> tuple[list[Decision], dict[str, dict], list[str]]:
    """Decide the request of one tick: (no decision or one, new cursor, notes for the tick log).

    Pure: everything it needs was read before, so the rules are testable without
    Dagster and a tick's decisions follow from its reading alone.
    """
    busy = set(busy)
    for view in catalog.refresh_order(catalog.VIEWS):  # upstream first: transitive
        if busy & set(view.depends_on):
            busy.add(view.name)  # refreshed before its upstream's pending run, it would miss it
    known = set(catalog.view_names())  # a view dropped from the catalog leaves the cursor
    new_cursor = {name: dict(entry) for name, entry in cursor.items() if name in known}
    wanted: dict[str, tuple[list[str], changes.Outstanding]] = {}
    affected: dict[str, list] = {}
    notes: list[str] = []
    for view in catalog.VIEWS:
        out = read.views.get(view.name)
        if out is None or out.count == 0:
            continue
        mine = [
            c for c in classify(out.candidates, rules, read.total_levels) if c.priority == priority
        ]
        if not mine:
            continue
        if view.name in busy:
            notes.append(
                f"{view.name}: a run not yet started on it will reflect {len(mine)} {priority} change(s)"
            )
            continue
        if priority is Priority.MEDIUM:
            first = min(c.change.changed_at for c in mine)
            due = first.timestamp() + rules.medium_batch_seconds
            if read.now.timestamp() < due:
                notes.append(
                    f"{view.name}: {len(mine)} medium change(s) since {first.isoformat()}, "
                    f"collected until {int(due - read.now.timestamp())} s from now"
                )
                continue
        reasons = list(dict.fromkeys(c.reason for c in mine))
        wanted[view.name] = (reasons, out)
        affected[view.name] = [c.change.budget_version_id for c in mine]

    # A view reading other views is refreshed after them, in the same run: its refresh
    # reflects their tables only as far as their last refresh did (see db/refresh.py).
    for name in list(wanted):
        for upstream in _upstream(name) - set(wanted):
            empty = changes.Outstanding(upstream, 0, None, [], None)
            wanted[upstream] = ([], read.views.get(upstream) or empty)

    if not wanted:
        return [], new_cursor, notes
    # One run for the tick: a run's start costs seconds, its refreshes fractions of one.
    views = [v.name for v in catalog.refresh_order(catalog.VIEWS) if v.name in wanted]
    outs = [wanted[name][1] for name in views]
    max_id = max((o.max_id for o in outs if o.max_id is not None), default=None)
    count = sum(o.count for o in outs)
    versions = [v for name in views for v in affected.get(name, [])]
    decision = Decision(
        views=tuple(views),
        run_key=f"{priority}:{'+'.join(views)}:{max_id}:{count}",
        reasons=tuple(dict.fromkeys(r for name in views for r in wanted[name][0])),
        counts=tuple((name, o.count) for name, o in zip(views, outs, strict=True)),
        max_change_id=max_id,
        versions=tuple(dict.fromkeys(str(v) for v in versions if v is not None)),
        all_versions=any(v is None for v in versions),
    )
    for name, out in zip(views, outs, strict=True):
        new_cursor[name] = {
            "snapshot": read.snapshot,
            "origin": read.origin,
            "max_id": out.max_id,
            "at": read.now.isoformat(),
        }
    return [decision], new_cursor, notes


def _upstream(name: str) -> set[str]:
    """The managed views ``name`` reads, directly or not."""
    out: set[str] = set()
    todo = list(catalog.get_view(name).depends_on)
    while todo:
        upstream = todo.pop()
        if upstream not in out and upstream in catalog.view_names():
            out.add(upstream)
            todo.extend(catalog.get_view(upstream).depends_on)
    return out


def views_with_pending_runs(instance: dg.DagsterInstance) -> set[str]:
    """Views a refresh run (either job) will refresh but has not started refreshing.

    Such a run reflects every change committed before its refresh begins, so a new
    request for those views would only stack. Queued and starting runs count, and
    started runs whose step for the view has not started (waiting for the view's pool).
    """
    pending: set[str] = set()
    runs = [
        run
        for job in (REFRESH_ALL_VIEWS, REFRESH_CHANGED_VIEWS)
        for run in instance.get_runs(
            filters=dg.RunsFilter(job_name=job, statuses=_PENDING_STATUSES), limit=100
        )
    ]
    for run in runs:
        if run.asset_selection is None:
            selected = set(catalog.view_names())
        else:
            selected = {key.path[-1] for key in run.asset_selection}
        if run.status == dg.DagsterRunStatus.STARTED:
            started = instance.get_records_for_run(
                run.run_id, of_type=dg.DagsterEventType.STEP_START
            ).records
            selected -= {r.event_log_entry.step_key for r in started}
        pending |= selected
    return pending


def tick(
    context: dg.SensorEvaluationContext,
    postgres: PostgresResource,
    priority: Priority,
    rules: RefreshRules,
) -> dg.SensorResult | dg.SkipReason:
    cursor = load_cursor(context.cursor)
    with postgres.connection() as conn:
        read = changes.read_outstanding(
            conn,
            catalog.VIEWS,
            {name: (entry["snapshot"], entry.get("origin")) for name, entry in cursor.items()},
            rules,
        )
    decisions, new_cursor, notes = decide(
        read, cursor, priority, rules, busy=views_with_pending_runs(context.instance)
    )
    for decision in decisions:
        context.log.info(
            f"requesting a refresh of {', '.join(decision.views)}: {'; '.join(decision.reasons)} "
            f"(changes per view: {dict(decision.counts)}, up to id {decision.max_change_id})"
        )
    if not decisions:
        return dg.SensorResult(
            skip_reason="; ".join(notes) or f"no {priority}-priority change to reflect",
            cursor=dump_cursor(new_cursor),
        )
    return dg.SensorResult(
        run_requests=[d.run_request(priority) for d in decisions],
        cursor=dump_cursor(new_cursor),
    )


def build_change_sensor(
    priority: Priority,
    *,
    name: str,
    minimum_interval_seconds: int,
    rules: RefreshRules | None = None,
) -> dg.SensorDefinition:
    """A sensor acting on one priority; ``rules`` None: the settings' (EFIR_BULK_ROWS, ...)."""

    @dg.sensor(
        name=name,
        job=refresh_changed_views,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"Refreshes the views that read a table with a {priority}-priority change "
        "not yet reflected (efir_budget.change_log; rules in efir_pipeline.core.rules).",
    )
    def _sensor(context: dg.SensorEvaluationContext, postgres: PostgresResource):
        return tick(
            context, postgres, priority, rules or RefreshRules.from_settings(settings.current())
        )

    return _sensor


high_priority_sensor = build_change_sensor(
    Priority.HIGH,
    name=HIGH_SENSOR,
    minimum_interval_seconds=math.ceil(settings.current().high_sensor_interval.seconds),
)
medium_priority_sensor = build_change_sensor(
    Priority.MEDIUM,
    name=MEDIUM_SENSOR,
    minimum_interval_seconds=math.ceil(settings.current().medium_sensor_interval.seconds),
)

SENSORS: list[dg.SensorDefinition] = [high_priority_sensor, medium_priority_sensor]
