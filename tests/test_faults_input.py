"""Bad input and bad configuration through the CLI: a clear, specific message, and exit code 2
whenever the run cannot start; bad lines inside an input are reported and the batch goes on."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from faults import quick_loopback
from loopback import Loopback, pdf_bytes
from oafetch.cli import main

QUIET = (
    "[telemetry]\nenabled = false\n[politeness]\nenabled = false\n[cache]\nenabled = false\n"
    "[download]\nfsync = false\nmin_pdf_bytes = 100\n[resolvers.wayback]\nenabled = false\n"
)


@pytest.fixture
def server() -> Iterator[Loopback]:
    """conftest's loopback server, stopped faster (see ``faults.quick_loopback``)."""
    yield from quick_loopback()


@pytest.fixture
def quiet_toml(tmp_path: Path) -> Path:
    path = tmp_path / "oafetch.toml"
    path.write_text(QUIET)
    return path


def run(tmp_path: Path, *args: str, config: Path | None = None) -> int:
    argv = ["run", *args]
    if "--out" not in args:
        argv += ["--out", str(tmp_path / "out")]
    if config is not None:
        argv += ["--config", str(config)]
    return main([*argv, "--quiet"])


# -- inputs ----------------------------------------------------------------------------------------


def test_malformed_ids_are_reported_per_line_and_the_batch_completes(
    server: Loopback, tmp_path: Path, quiet_toml: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server.routes["/a.pdf"] = lambda h: h.reply(200, pdf_bytes(3000), "application/pdf")
    ids = tmp_path / "ids.txt"
    ids.write_text(
        f"{server.url('/a.pdf')}\n"
        "not an identifier\n"
        "arXiv:not-an-id\n"
        "10.1234\n"  # a DOI prefix without suffix
        "PMC\n"
        "\u202e\u0007bell\n"
        "# a comment\n"
    )
    caplog.set_level(logging.WARNING, logger="oafetch")
    assert run(tmp_path, str(ids), config=quiet_toml) == 0
    skipped = [m for r in caplog.records if (m := r.getMessage()).startswith("input line")]
    skipped.sort()
    assert [m.split(":")[0] for m in skipped] == [
        f"input line {n} skipped" for n in (2, 3, 4, 5, 6)
    ]
    assert "not an arXiv id" in skipped[1] and "control characters" in skipped[4]
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["reasons"].get("bad-input") == 5 and summary["outcomes"]["success"] == 1


def test_bad_jsonl_lines_are_reported_and_the_batch_completes(
    tmp_path: Path, quiet_toml: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ids = tmp_path / "ids.jsonl"
    ids.write_text('{"doi": 5}\n[1, 2]\n{not json\n"also not an id"\n')
    caplog.set_level(logging.WARNING, logger="oafetch")
    assert run(tmp_path, str(ids), config=quiet_toml) == 0
    messages = " | ".join(r.getMessage() for r in caplog.records)
    assert "input line 1 skipped: no identifier field" in messages
    assert "input line 2 skipped: expected a JSON string or object" in messages
    assert "input line 3 skipped: invalid JSON" in messages
    assert "input line 4 skipped" in messages


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p.write_bytes(b"%PDF-1.4\x00\x01\x02binary\xff"), "looks binary"),
        (lambda p: None, "does not exist"),
        (lambda p: p.mkdir(), "is a directory"),
    ],
    ids=["binary", "missing", "directory"],
)
def test_an_unusable_input_file_stops_before_the_run_with_exit_2(
    tmp_path: Path, quiet_toml: Path, capsys: pytest.CaptureFixture[str], make: Any, message: str
) -> None:
    path = tmp_path / "input.txt"
    make(path)
    assert run(tmp_path, str(path), config=quiet_toml) == 2
    err = capsys.readouterr().err
    assert message in err and str(path) in err
    assert "Traceback" not in err


def test_a_csv_without_the_named_column_is_exit_2(
    tmp_path: Path, quiet_toml: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "ids.csv"
    path.write_text("title,year\nA,2020\n")
    assert run(tmp_path, str(path), "--column", "doi", config=quiet_toml) == 2
    assert "no column 'doi'" in capsys.readouterr().err


def test_an_empty_input_says_there_is_nothing_to_do(
    tmp_path: Path, quiet_toml: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "empty.txt"
    path.write_text("\n   \n# only a comment\n")
    assert run(tmp_path, str(path), config=quiet_toml) == 0
    assert f"no identifiers in {path}" in capsys.readouterr().err


def test_no_input_at_all_is_exit_2(
    tmp_path: Path, quiet_toml: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", "--out", str(tmp_path / "out"), "--config", str(quiet_toml)]) == 2
    assert "no input" in capsys.readouterr().err


# -- configuration ---------------------------------------------------------------------------------


CONFIG_CASES = {
    "unknown top-level key": ("wokers = 4\n", ["unknown key 'wokers'", "did you mean 'workers'"]),
    "unknown nested key": (
        "[http]\nread_timout_s = 5\n",
        ["unknown key 'http.read_timout_s'", "did you mean 'read_timeout_s'"],
    ),
    "unknown resolver": (
        "[resolvers.unpaywal]\nemail = 'a@b.org'\n",
        ["unknown resolver", "did you mean 'unpaywall'"],
    ),
    "unknown resolver key": (
        "[resolvers.crossref]\nbase_ulr = 'http://x'\n",
        ["unknown key 'base_ulr'", "did you mean 'base_url'"],
    ),
    "negative attempts": (
        "[retry]\nattempts = -3\n",
        ["retry.attempts", "greater than or equal to 1", "got -3"],
    ),
    "zero max_bytes": ("[download]\nmax_bytes = 0\n", ["download.max_bytes", "got 0"]),
    "absurd workers": (
        "workers = 100000\n",
        ["workers", "less than or equal to 512", "got 100000"],
    ),
    "absurd timeout": ("[http]\nread_timeout_s = 1e9\n", ["http.read_timeout_s", "1000000000"]),
    "negative rate": ("[rates]\n'api.crossref.org' = '-1/s'\n", ["api.crossref.org", "-1/s"]),
    "nonsense rate": ("[politeness]\ndefault_rate = 'fast'\n", ["politeness.default_rate", "fast"]),
    "wrong type": ("workers = 'many'\n", ["workers", "valid integer", "many"]),
    "bad mailto": ("mailto = 'not an email'\n", ["mailto", "email address"]),
    "bad accept": ("[download]\naccept = ['pdf', 'docx']\n", ["download.accept", "docx"]),
    "invalid toml": ("[http\nread_timeout_s = 5\n", ["not valid TOML"]),
}


@pytest.mark.parametrize("case", list(CONFIG_CASES))
def test_a_bad_config_names_the_key_the_rule_and_the_value_with_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str
) -> None:
    text, expected = CONFIG_CASES[case]
    config = tmp_path / "bad.toml"
    config.write_text(text)
    ids = tmp_path / "ids.txt"
    ids.write_text("10.1234/x\n")
    assert run(tmp_path, str(ids), config=config) == 2
    err = capsys.readouterr().err
    for part in expected:
        assert part in err, f"{part!r} not in {err!r}"
    assert "Traceback" not in err
    assert not (tmp_path / "out").exists(), "nothing was started"


def test_a_bad_flag_value_is_not_blamed_on_the_config_file(
    tmp_path: Path, quiet_toml: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ids = tmp_path / "ids.txt"
    ids.write_text("10.1234/x\n")
    assert run(tmp_path, str(ids), "--workers", "-1", config=quiet_toml) == 2
    err = capsys.readouterr().err
    assert "workers" in err and "got -1" in err and str(quiet_toml) not in err


def test_a_bad_environment_value_is_exit_2(
    tmp_path: Path,
    quiet_toml: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OAFETCH_HTTP__CONNECT_TIMEOUT_S", "-5")
    ids = tmp_path / "ids.txt"
    ids.write_text("10.1234/x\n")
    assert run(tmp_path, str(ids), config=quiet_toml) == 2
    assert "http.connect_timeout_s" in capsys.readouterr().err


def test_a_missing_config_file_is_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ids = tmp_path / "ids.txt"
    ids.write_text("10.1234/x\n")
    assert run(tmp_path, str(ids), config=tmp_path / "nope.toml") == 2
    assert "does not exist" in capsys.readouterr().err


@pytest.mark.parametrize("value", ["0", "-4", "lots"])
def test_a_nonsensical_max_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], value: str
) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["run", "ids.txt", "--max", value])
    assert stopped.value.code == 2
    assert "--max" in capsys.readouterr().err


# -- the output directory --------------------------------------------------------------------------


def test_an_output_dir_under_a_regular_file_is_exit_2(
    tmp_path: Path, quiet_toml: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    ids = tmp_path / "ids.txt"
    ids.write_text("10.1234/x\n")
    assert run(tmp_path, str(ids), "--out", str(blocker / "out"), config=quiet_toml) == 2
    err = capsys.readouterr().err
    assert "out_dir" in err and "a parent is a file" in err and "Traceback" not in err


def test_an_output_dir_that_is_a_file_is_exit_2(
    tmp_path: Path, quiet_toml: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    ids = tmp_path / "ids.txt"
    ids.write_text("10.1234/x\n")
    assert run(tmp_path, str(ids), "--out", str(blocker), config=quiet_toml) == 2
    assert "is not a directory" in capsys.readouterr().err
    assert main(["fetch", "10.1234/x", "--out", str(blocker), "--config", str(quiet_toml)]) == 2


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory permissions")
def test_an_unwritable_output_dir_is_exit_2(
    tmp_path: Path, quiet_toml: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        ids = tmp_path / "ids.txt"
        ids.write_text("10.1234/x\n")
        assert run(tmp_path, str(ids), "--out", str(locked), config=quiet_toml) == 2
        assert "not writable" in capsys.readouterr().err
    finally:
        locked.chmod(0o700)
