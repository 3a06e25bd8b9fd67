"""efir-pipeline: materialized KPI views of the EFIR budget app, kept fresh by Dagster."""

__version__ = "0.1.0"
