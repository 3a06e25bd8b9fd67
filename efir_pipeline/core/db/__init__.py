"""Dagster-free database layer: settings, embedded server, migrations, refresh, info.

Nothing here imports Dagster, so the CLI, tests and benchmarks use it directly and
the Dagster assets are thin wrappers around it.
"""
