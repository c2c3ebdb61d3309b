"""Which resolvers exist, and building the enabled ones from the configuration.

A source that needs a credential that is not configured (in ``[resolvers.<name>]`` or its
conventional environment variable) is left out with one clear note; a misspelt source name (in
``[resolvers.<name>]`` or ``[[fallback.tiers]]``) or endpoint key is a configuration error with a
suggestion.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping

from oafetch.config import Config
from oafetch.errors import ConfigError
from oafetch.resolvers.base import Resolver
from oafetch.resolvers.landing_page import LandingPageResolver

_COMMON_KEYS = {"enabled", "base_url", "api_key", "email"}


def resolver_classes() -> dict[str, type[Resolver]]:
    """Every resolver oafetch ships, by name."""
    classes: list[type[Resolver]] = [LandingPageResolver]
    try:
        from oafetch.resolvers import sources
    except ImportError:  # pragma: no cover - the source modules are part of the package
        pass
    else:
        classes.extend(sources.ALL)
    return {cls.name: cls for cls in classes}


def check_tiers(config: Config, known: Iterable[str]) -> None:
    """Refuse a ``[[fallback.tiers]]`` source that is not one of ``known``.

    Checked where the set of sources is known (oafetch's own plus any plug-ins handed to the
    downloader), before anything is created on disk: an unknown name would otherwise be skipped
    silently and every work end ``no-candidate``.

    Raises:
        ConfigError: names the key, the tier, the value, the closest known source and them all.
    """
    names = sorted(set(known))
    for number, tier in enumerate(config.fallback.tiers):
        for source in tier.sources:
            if source in names:
                continue
            close = difflib.get_close_matches(source, names, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ConfigError(
                f"fallback.tiers[{number}].sources (tier {tier.name!r}): unknown source "
                f"{source!r}{hint} (known sources: {', '.join(names)})"
            )


def build_resolvers(
    config: Config, classes: Mapping[str, type[Resolver]] | None = None
) -> tuple[dict[str, Resolver], list[str]]:
    """Instantiate every enabled resolver; return them and the notes about skipped ones.

    Raises:
        ConfigError: ``[resolvers.X]`` or ``[[fallback.tiers]]`` names an unknown source, or
            ``[resolvers.X]`` an unknown key.
    """
    classes = dict(classes or resolver_classes())
    check_tiers(config, classes)
    for name, settings in config.resolvers.items():
        if name not in classes:
            close = difflib.get_close_matches(name, list(classes), n=1)
            hint = (
                f"; did you mean {close[0]!r}?"
                if close
                else f"; known: {', '.join(sorted(classes))}"
            )
            raise ConfigError(f"[resolvers.{name}]: unknown resolver{hint}")
        allowed = _COMMON_KEYS | set(classes[name].endpoints) | set(classes[name].options)
        for key in settings.model_extra or {}:
            if key not in allowed:
                close = difflib.get_close_matches(key, sorted(allowed), n=1)
                hint = (
                    f"; did you mean {close[0]!r}?"
                    if close
                    else f"; allowed: {', '.join(sorted(allowed))}"
                )
                raise ConfigError(f"[resolvers.{name}] unknown key {key!r}{hint}")
    built: dict[str, Resolver] = {}
    notes: list[str] = []
    for name, cls in classes.items():
        settings = config.resolver(name)
        if not is_enabled(cls, config):
            continue
        if cls.credential and cls.configured_secret(config) is None:
            where = " or ".join([f"[resolvers.{name}] {cls.credential}", *cls.credential_env])
            notes.append(f"resolver {name} skipped: it needs {cls.credential} ({where})")
            continue
        built[name] = resolver = cls(settings, config)
        if (note := resolver.note()) is not None:
            notes.append(note)
    return built, notes


def is_enabled(cls: type[Resolver], config: Config) -> bool:
    """``enabled`` as ``[resolvers.<name>]`` sets it, else the source's default."""
    settings = config.resolvers.get(cls.name)
    if settings is not None and "enabled" in settings.model_fields_set:
        return settings.enabled
    return cls.default_enabled
