"""docs/TELEMETRY.md documents every telemetry name and every token."""

from __future__ import annotations

import enum
from pathlib import Path

import pytest

from oafetch import tokens
from oafetch.telemetry import names

DOC = Path(__file__).resolve().parents[1] / "docs" / "TELEMETRY.md"

CONSTANTS = sorted(
    (key, value)
    for key, value in vars(names).items()
    if key.isupper() and not key.startswith("_") and isinstance(value, str | int)
)
TOKENS = sorted(
    {
        (cls.__name__, member.value)
        for cls in vars(tokens).values()
        if isinstance(cls, type)
        and issubclass(cls, enum.Enum)
        and cls.__module__ == tokens.__name__
        for member in cls
    }
)


@pytest.fixture(scope="module")
def doc() -> str:
    return DOC.read_text(encoding="utf-8")


def test_names_module_is_not_empty() -> None:
    assert len(CONSTANTS) > 50 and len(TOKENS) > 50


@pytest.mark.parametrize(("constant", "value"), CONSTANTS, ids=[c for c, _ in CONSTANTS])
def test_every_name_is_documented(doc: str, constant: str, value: str | int) -> None:
    assert f"`{constant}`" in doc, f"docs/TELEMETRY.md does not list names.{constant}"
    assert f"`{value}`" in doc, f"docs/TELEMETRY.md does not show the value of {constant}"


@pytest.mark.parametrize(("enum_name", "token"), TOKENS, ids=[f"{e}.{t}" for e, t in TOKENS])
def test_every_token_is_documented(doc: str, enum_name: str, token: str) -> None:
    assert f"`{token}`" in doc, f"docs/TELEMETRY.md does not list the {enum_name} token {token!r}"
