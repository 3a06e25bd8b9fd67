"""The roles' names: validated once, distinct, never a built-in role."""

from __future__ import annotations

from dataclasses import dataclass

from efir_pipeline.core.errors import ConfigError
from efir_pipeline.core.settings import Settings
from efir_pipeline.core.values import RoleNameKind

KINDS = ("pipeline", "dashboard", "app", "capture")
LOGIN_KINDS = ("pipeline", "dashboard", "app")
"""The capture role never logs in: it only owns the functions that log changes."""
ROLE_ENV = {kind: f"EFIR_ROLE_{kind.upper()}" for kind in KINDS}


@dataclass(frozen=True)
class RoleNames:
    """The four role names, validated: lower-case identifiers, distinct, not ``pg_*``."""

    pipeline: str
    dashboard: str
    app: str
    capture: str

    def __post_init__(self) -> None:
        for kind in KINDS:
            try:
                RoleNameKind().parse(getattr(self, kind) or "")
            except ValueError as exc:
                raise ConfigError(f"{ROLE_ENV[kind]}: {exc}") from None
        if len(set(self.as_dict().values())) != len(KINDS):
            raise ConfigError(f"the roles need different names (got {self})")

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: str | None) -> RoleNames:
        """CLI flags (``overrides``) first, then ``EFIR_ROLE_*`` (or their defaults)."""
        return cls(
            **{kind: overrides.get(kind) or getattr(settings, f"role_{kind}") for kind in KINDS}
        )

    def __getitem__(self, kind: str) -> str:
        return getattr(self, kind)

    def as_dict(self) -> dict[str, str]:
        return {kind: self[kind] for kind in KINDS}
