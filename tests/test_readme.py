"""The README tells the truth: its code compiles against the real API and its commands parse."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

import oafetch
from oafetch.cli import build_parser

README = (Path(__file__).parent.parent / "README.md").read_text()


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README, flags=re.S)


def test_python_examples_compile_and_use_the_public_api() -> None:
    blocks = _blocks("python")
    assert blocks
    for block in blocks:
        compile(block, "README.md", "exec")
        for name in re.findall(r"oafetch\.(\w+)", block):
            assert hasattr(oafetch, name), f"README uses oafetch.{name}, which does not exist"


def _commands() -> list[list[str]]:
    commands = []
    for block in _blocks("sh"):
        text = block.replace("\\\n", " ")
        for line in text.splitlines():
            line = line.split("#", 1)[0].strip()
            if ".venv/bin/oafetch" in line:
                tokens = shlex.split(line)
                at = next(i for i, t in enumerate(tokens) if t.endswith("/oafetch"))
                commands.append(tokens[at + 1 :])
    return commands


@pytest.mark.parametrize("argv", _commands(), ids=lambda a: " ".join(a[:2]))
def test_cli_commands_in_the_readme_parse(argv: list[str]) -> None:
    args = build_parser().parse_args(argv)
    assert callable(args.func)


def test_the_readme_lists_every_output_file() -> None:
    for name in (
        "manifest.jsonl",
        "attempts.csv",
        "summary.json",
        "telemetry.sqlite",
        "spans.jsonl",
        "pdf/",
    ):
        assert name in README
    assert "make demo" in README and "make test" in README
