"""The kinds of value a setting can hold, each with one grammar and its bounds.

Why one module: a duration means the same thing wherever it is read (the
environment, a Dagster launchpad, ``--since``), so the CLI, the sensors and the
checks cannot disagree about what ``30`` or ``5min`` is. A bare number is refused
(PostgreSQL reads ``600`` as milliseconds, people mean seconds), and so are values
outside a setting's range: a timeout PostgreSQL would round to 0 (which means "no
timeout") or could not store, a NaN, a count that would overflow a bigint.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_UNITS = {
    "ms": 0.001,
    "s": 1.0,
    "sec": 1.0,
    "second": 1.0,
    "seconds": 1.0,
    "min": 60.0,
    "minute": 60.0,
    "minutes": 60.0,
    "h": 3600.0,
    "hour": 3600.0,
    "hours": 3600.0,
    "d": 86400.0,
    "day": 86400.0,
    "days": 86400.0,
}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-z]+)\s*$", re.IGNORECASE)
DURATION_GRAMMAR = "a number and a unit: ms, s, min, h or d (e.g. 500ms, 30s, 5min, 26h, 30d)"

PG_INT_MAX_MS = 2_147_483_647
"""PostgreSQL stores lock_timeout and statement_timeout as an int of milliseconds."""


@dataclass(frozen=True, order=True)
class Duration:
    """A span of time, parsed once from ``30s``-style text."""

    seconds: float

    @property
    def milliseconds(self) -> int:
        return round(self.seconds * 1000)

    def postgres(self) -> str:
        """The value for ``SET lock_timeout`` and friends: whole milliseconds."""
        return f"{self.milliseconds}ms"

    def interval(self) -> str:
        """The value for a PostgreSQL ``interval`` parameter."""
        return f"{self.seconds} seconds"

    def __str__(self) -> str:
        return compact_duration(self.seconds)


def parse_duration(text: str) -> Duration:
    """``"5min"`` -> Duration(300.0); ValueError saying the grammar otherwise."""
    match = _DURATION.match(str(text))
    unit = match and _UNITS.get(match.group(2).lower())
    if not match or unit is None:
        raise ValueError(f"{text!r} is not {DURATION_GRAMMAR}")
    return Duration(float(match.group(1)) * unit)


def human_duration(seconds: float) -> str:
    """``42.0s``, ``7.5min``, ``26.0h``: an age or a limit in a message."""
    seconds = float(seconds)
    if seconds < 120:
        return f"{seconds:.1f}s"
    if seconds < 7200:
        return f"{seconds / 60:.1f}min"
    return f"{seconds / 3600:.1f}h"


def compact_duration(seconds: float) -> str:
    """The shortest text the grammar reads back as ``seconds`` (``500ms``, ``30s``, ``26h``)."""
    for unit in ("d", "h", "min", "s"):
        size = _UNITS[unit]
        if seconds >= size and (seconds / size).is_integer():
            return f"{int(seconds / size)}{unit}"
    return f"{seconds * 1000:g}ms"


# --------------------------------------------------------------------------- kinds


class Kind:
    """How one setting's text becomes a value; ``grammar`` is shown in docs and errors."""

    grammar = "text"

    def parse(self, text: str):
        return text


@dataclass(frozen=True)
class DurationKind(Kind):
    minimum: float
    maximum: float

    @property
    def grammar(self) -> str:  # type: ignore[override]
        return f"duration, {compact_duration(self.minimum)} to {compact_duration(self.maximum)}"

    def parse(self, text: str) -> Duration:
        value = parse_duration(text)
        if not self.minimum <= value.seconds <= self.maximum:
            raise ValueError(
                f"{text!r} is outside {compact_duration(self.minimum)} to "
                f"{compact_duration(self.maximum)}"
            )
        return value


PG_TIMEOUT = DurationKind(0.001, PG_INT_MAX_MS / 1000)
"""A PostgreSQL timeout: at least 1 ms (below it PostgreSQL rounds to 0, no timeout)."""


@dataclass(frozen=True)
class NumberKind(Kind):
    type: type
    minimum: float
    maximum: float

    @property
    def grammar(self) -> str:  # type: ignore[override]
        name = "whole number" if self.type is int else "number"
        return f"{name}, {self.minimum:g} to {self.maximum:g}"

    def parse(self, text: str):
        try:
            value = self.type(text.strip())
        except ValueError:
            raise ValueError(f"{text!r} is not a {self.grammar.split(',')[0]}") from None
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"{text!r} is not a finite number")
        if not self.minimum <= value <= self.maximum:
            raise ValueError(f"{text!r} is outside {self.minimum:g} to {self.maximum:g}")
        return value


class CronKind(Kind):
    """Five cron fields; Dagster checks the meaning again when it builds the schedule."""

    grammar = "cron, five fields (e.g. 0 2 * * *)"
    _FIELD = re.compile(r"^[0-9A-Za-z*/,\-?]+$")

    def parse(self, text: str) -> str:
        fields = text.split()
        if len(fields) != 5 or not all(self._FIELD.match(f) for f in fields):
            raise ValueError(f"{text!r} is not a cron string of five fields such as '0 2 * * *'")
        return " ".join(fields)


class TimezoneKind(Kind):
    grammar = "IANA time zone (e.g. Asia/Riyadh)"

    def parse(self, text: str) -> str:
        try:
            ZoneInfo(text.strip())
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{text!r} is not an IANA time zone such as Asia/Riyadh") from None
        return text.strip()


class HttpUrlKind(Kind):
    grammar = "http:// or https:// URL"

    def parse(self, text: str) -> str:
        parts = urlsplit(text.strip())
        if parts.scheme not in ("http", "https") or not parts.netloc:
            # Never echo the text: a webhook URL carries its secret.
            raise ValueError("is not an http:// or https:// URL")
        return text.strip()


class RoleNameKind(Kind):
    grammar = "PostgreSQL role name: lower-case letters, digits and _, not pg_*"
    _NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")

    def parse(self, text: str) -> str:
        name = text.strip()
        if not self._NAME.match(name) or name.startswith("pg_"):
            raise ValueError(
                f"{text!r} is not a usable role name: lower-case letters, digits and _, at most "
                "63 characters, not starting with a digit or pg_"
            )
        return name


class OwnersKind(Kind):
    grammar = "comma-separated e-mail addresses or team:<name>"
    _EMAIL = re.compile(r"^[^@\s,]+@[^@\s,]+\.[^@\s,]+$")

    def parse(self, text: str) -> tuple[str, ...]:
        owners = tuple(o.strip() for o in text.split(",") if o.strip())
        bad = [
            o
            for o in owners
            if not (self._EMAIL.match(o) or (o.startswith("team:") and len(o) > 5))
        ]
        if not owners or bad:
            raise ValueError(f"{text!r} is not a list of e-mail addresses or team:<name> entries")
        return owners


class PathKind(Kind):
    grammar = "folder path"

    def parse(self, text: str) -> Path:
        return Path(text.strip()).expanduser().resolve()
