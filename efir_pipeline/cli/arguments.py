"""Argument types of the command line: bounded, so bad input is a usage error (exit 2)
before anything runs, never an overflow deep in PostgreSQL."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from efir_pipeline.core.values import parse_duration

EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)


def bounded_int(low: int, high: int) -> Callable[[str], int]:
    """An int between ``low`` and ``high``, for argparse ``type=``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{text} is outside {low:,} to {high:,}")
        return value

    parse.__name__ = "number"  # argparse names the type in its messages
    return parse


def since(text: str) -> datetime:
    """``2h`` / ``30min`` / ``7d`` ago, or an ISO date or time (local time when naive),
    not before 1970."""
    try:
        age = parse_duration(text)
    except ValueError:
        return _moment(text)
    if age.seconds > (datetime.now(UTC) - EARLIEST).total_seconds():
        raise argparse.ArgumentTypeError(f"{text!r} reaches back before 1970")
    moment = datetime.now().astimezone() - timedelta(seconds=age.seconds)
    if moment < EARLIEST:
        raise argparse.ArgumentTypeError(f"{text!r} is before 1970")
    return moment


def _moment(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is neither a duration (2h, 7d) nor a date or time (2026-01-15T10:00)"
        ) from None
    if moment.year < EARLIEST.year:
        raise argparse.ArgumentTypeError(f"{text!r} is before 1970")
    moment = moment if moment.tzinfo else moment.astimezone()
    if moment < EARLIEST:
        raise argparse.ArgumentTypeError(f"{text!r} is before 1970")
    return moment
