"""Markdown building blocks of the generated docs."""

from __future__ import annotations

import difflib
from pathlib import Path


def cell(text: str | None) -> str:
    """Text safe inside a Markdown table cell (one line, pipes escaped)."""
    if not text:
        return ""
    return " ".join(str(text).split()).replace("|", "\\|")


def table(header: tuple[str, ...], rows: list[tuple]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return lines


def diff(current: str, expected: str, path: Path) -> str:
    """A unified diff of ``path``'s text against the generated one (for ``--check``)."""
    return "".join(
        difflib.unified_diff(
            current.splitlines(keepends=True),
            expected.splitlines(keepends=True),
            fromfile=str(path),
            tofile="generated",
        )
    )
