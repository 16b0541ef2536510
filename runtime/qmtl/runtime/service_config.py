"""What both service processes' settings share: the backend choice, the profile, and the
production profile's rules about them (docs/operations/boot.md; README "Running the services")."""

from __future__ import annotations

import enum


class Backend(enum.StrEnum):
    MEMORY = "memory"  # the embedded default: everything in this process, nothing survives it
    REAL = "real"  # Redis, Neo4j, Kafka at their configured addresses


class Profile(enum.StrEnum):
    DEVELOPMENT = "development"
    PRODUCTION = "production"


class ConfigError(ValueError):
    """A setting that cannot be used; the process refuses to start (exit status 2)."""


def check_profile(profile: Profile, backend: Backend, token_secret: bytes) -> None:
    """The production profile refuses what cannot be run in production."""
    if profile is not Profile.PRODUCTION:
        return
    if backend is Backend.MEMORY:
        raise ConfigError(
            "the production profile refuses --backend memory: nothing it holds "
            "survives the process; use --backend real"
        )
    if not token_secret:
        raise ConfigError("the production profile needs a token secret (--token-secret)")
