"""Errors the CLI turns into one clear line and an exit status.

Each carries a message written for the person at the terminal; the CLI prints
``str(error)`` and exits with ``exit_code``.
"""


class EfirError(Exception):
    exit_code = 1


class ConfigError(EfirError):
    """A setting (URL, timeout, folder) cannot be used as given."""

    exit_code = 2


class UnknownViewError(EfirError):
    exit_code = 2

    def __init__(self, names: list[str], known: list[str]):
        self.names = names
        self.known = known
        listed = ", ".join(known)
        super().__init__(f"unknown view {', '.join(map(repr, names))}; known views: {listed}")


class DatabaseUnavailable(EfirError):
    exit_code = 3


class MigrationsNotApplied(EfirError):
    exit_code = 4


class RefreshFailed(EfirError):
    exit_code = 1


class SchemaMismatch(EfirError):
    """The budget app's database lacks a table, column or type the views need."""

    exit_code = 5
