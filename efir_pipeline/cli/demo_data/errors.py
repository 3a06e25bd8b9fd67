"""What a caller of the loader may catch."""

from __future__ import annotations

from efir_pipeline.core.errors import EfirError


class DemoDataError(EfirError, ValueError):
    """The demo data cannot be loaded as asked (bad arguments, schools already there)."""

    exit_code = 2


class DemoDataExists(DemoDataError):
    """The schools to generate already exist and replace was not asked for."""
