"""The ``OAFETCH_*`` environment source of :class:`oafetch.config.Config`, with clear errors.

pydantic-settings ignores a variable that names no setting and ends in a traceback
(``SettingsError``) for a list or table setting whose value is not JSON. Here both are a
:class:`~oafetch.errors.ConfigError` naming the variable, as a mistake in ``oafetch.toml`` is:
the closest real name for a misspelt one, the JSON to write for an undecodable value.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Mapping
from typing import Any, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, EnvSettingsSource, SettingsError

from oafetch.errors import ConfigError


class EnvSource(EnvSettingsSource):
    """``OAFETCH_*`` variables, whose mistakes are :class:`ConfigError` naming the variable.

    A name that matches no setting (``OAFETCH_WROKERS``) is refused with the closest real one, as
    an unknown key in ``oafetch.toml`` is; a list or table setting whose value is not JSON
    (``OAFETCH_DOWNLOAD__ACCEPT=pdf``) is refused with the JSON to write instead.
    """

    def __init__(self, settings_cls: type[BaseSettings], **kwargs: Any) -> None:
        super().__init__(settings_cls, **kwargs)
        self._undecodable: tuple[str, FieldInfo | None, str] | None = None

    def decode_complex_value(self, field_name: str, field: FieldInfo, value: Any) -> Any:
        try:
            return super().decode_complex_value(field_name, field, value)
        except ValueError:
            self._undecodable = (field_name, field, str(value))
            raise

    def __call__(self) -> dict[str, Any]:
        _check_env_names(
            self.settings_cls, self.env_vars, self.env_prefix, str(self.env_nested_delimiter)
        )
        try:
            return super().__call__()
        except SettingsError as exc:
            if self._undecodable is None:
                raise ConfigError(f"an {self.env_prefix.upper()}* variable: {exc}") from None
            raise self._not_json(*self._undecodable) from None

    def _not_json(self, key: str, field: FieldInfo | None, value: str) -> ConfigError:
        name = next(
            (
                env.upper()
                for env, text in self.env_vars.items()
                if text == value and env.lower().endswith(key.lower())
            ),
            f"{self.env_prefix}{key}".upper(),
        )
        # a resolver table may hold a credential: its value is never echoed
        secret = any(word in name for word in ("RESOLVERS", "KEY", "TOKEN", "SECRET", "PASS"))
        annotation = field.annotation if field is not None else None
        if get_origin(annotation) in (tuple, list, set, frozenset) and not secret:
            items = [item.strip() for item in value.split(",") if item.strip()]
            fix = f"a JSON list, e.g. {name}='{json.dumps(items)}'"
        else:
            fix = f"""a JSON object, e.g. {name}='{{"name": "value"}}'"""
        shown = f"<{len(value)} characters, hidden>" if secret else repr(value)
        return ConfigError(
            f"invalid configuration:\n  {name}: not valid JSON (got {shown}); this setting "
            f"takes {fix}"
        )


def _check_env_names(
    settings: type[BaseModel], env_vars: Mapping[str, str | None], prefix: str, delimiter: str
) -> None:
    """Refuse an ``OAFETCH_*`` variable that names no setting of ``settings`` (with the closest)."""
    prefix = prefix.lower()
    for env in sorted(env_vars):
        if not env.lower().startswith(prefix):
            continue
        parts = env[len(prefix) :].lower().split(delimiter)
        model = settings
        for depth, part in enumerate(parts):
            fields = {name.lower(): info for name, info in model.model_fields.items()}
            if part not in fields:
                spelt = {
                    name: (prefix + delimiter.join([*parts[:depth], name])).upper()
                    for name in fields
                }
                close = difflib.get_close_matches(part, list(fields), n=1)
                hint = (
                    f"did you mean {spelt[close[0]]}?"
                    if close
                    else f"settings: {', '.join(spelt.values())}"
                )
                raise ConfigError(
                    f"invalid configuration:\n  unknown environment variable {env.upper()}; {hint}"
                )
            annotation = fields[part].annotation
            if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
                break  # a plain value or a table with free keys (rates, resolvers, slo …)
            model = annotation
