"""The demo empties only an output directory it made itself."""

from __future__ import annotations

from pathlib import Path

import pytest

from oafetch.demo import MARKER, _fresh
from oafetch.errors import OutputDirError


def test_a_user_directory_with_files_is_refused_and_left_untouched(tmp_path: Path) -> None:
    """Marking a user's folder would let the next demo run delete it: refuse instead."""
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.pdf").write_bytes(b"%PDF-1.7 precious")
    with pytest.raises(OutputDirError, match="not made by `oafetch demo`"):
        _fresh(out)
    assert (out / "thesis.pdf").read_bytes() == b"%PDF-1.7 precious"
    assert not (out / MARKER).exists()


def test_a_previous_demo_output_is_emptied_and_marked_again(tmp_path: Path) -> None:
    out = tmp_path / "demo-out"
    _fresh(out)
    (out / "manifest.jsonl").write_text("{}\n")
    _fresh(out)
    assert sorted(p.name for p in out.iterdir()) == [MARKER]


def test_an_empty_existing_directory_is_used(tmp_path: Path) -> None:
    out = tmp_path / "empty"
    out.mkdir()
    _fresh(out)
    assert (out / MARKER).exists()
