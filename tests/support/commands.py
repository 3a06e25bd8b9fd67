"""Running ``efir-pipeline`` as a user would: a subprocess with its own environment."""

from __future__ import annotations

import os
import subprocess
import sys


def run_cli(
    *args: str, url: str | None, drop: tuple[str, ...] = (), **env: str
) -> subprocess.CompletedProcess:
    """``efir-pipeline ARGS`` with DATABASE_URL set to ``url`` (unset when None).

    ``drop``: prefixes of environment variables removed first (e.g. ``EFIR_ROLE_``),
    so the machine's own settings cannot leak into a test.
    """
    environment = {k: v for k, v in os.environ.items() if not (drop and k.startswith(drop))}
    environment.update(env)
    environment.pop("DATABASE_URL", None)
    if url is not None:
        environment["DATABASE_URL"] = url
    return subprocess.run(
        [sys.executable, "-m", "efir_pipeline.cli.main", *args],
        capture_output=True,
        text=True,
        env=environment,
        timeout=120,
    )
