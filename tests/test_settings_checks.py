"""Mistakes in settings and inputs are caught before the output directory is touched.

An unknown source in ``[[fallback.tiers]]``, a non-JSON value in a structured ``OAFETCH_*``
variable, a misspelt ``OAFETCH_*`` name, a CSV ``--column`` that does not exist and a CSV with no
recognisable id column each stop the run with exit 2 and a message naming what, where and what
to do — never a traceback, never a run where every work fails, never a replaced summary.json.
"""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from oafetch import Downloader
from oafetch.cli import main
from oafetch.config import Config
from oafetch.errors import ConfigError, InputError
from oafetch.resolvers.registry import check_tiers, resolver_classes
from oafetch.works import read_input

QUIET = (
    "[telemetry]\nenabled = false\n[politeness]\nenabled = false\n[cache]\nenabled = false\n"
    "[download]\nfsync = false\n[resolvers.wayback]\nenabled = false\n"
)


def run(tmp_path: Path, *args: str, toml: str = QUIET) -> int:
    config = tmp_path / "oafetch.toml"
    config.write_text(toml)
    argv = ["run", *args, "--config", str(config), "--quiet"]
    if "--out" not in args:
        argv += ["--out", str(tmp_path / "out")]
    return main(argv)


def ids_file(tmp_path: Path, text: str = "10.1234/x\n", name: str = "ids.txt") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


# -- [[fallback.tiers]] ----------------------------------------------------------------------------


def test_an_unknown_tier_source_is_exit_2_with_a_suggestion_and_the_known_sources(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    toml = QUIET + '[[fallback.tiers]]\nname = "direct"\nsources = ["crossref", "unpaywal"]\n'
    assert run(tmp_path, ids_file(tmp_path), toml=toml) == 2
    err = capsys.readouterr().err
    assert "fallback.tiers[0].sources" in err and "tier 'direct'" in err, err
    assert "unknown source 'unpaywal'" in err and "did you mean 'unpaywall'?" in err
    assert "known sources: arxiv, core, crossref," in err and "zenodo" in err
    assert "Traceback" not in err
    assert not (tmp_path / "out").exists(), "refused before the output directory"


def test_an_unknown_tier_source_far_from_any_name_still_lists_the_known_ones(
    tmp_path: Path,
) -> None:
    config = Config(fallback={"tiers": [{"name": "a", "sources": ["pubmed-central"]}]})
    with pytest.raises(ConfigError) as info:
        check_tiers(config, resolver_classes())
    text = str(info.value)
    assert "'pubmed-central'" in text and "landing_page" in text and "did you mean" not in text


def test_the_library_refuses_an_unknown_tier_source_before_creating_the_output_dir(
    tmp_path: Path, make_config: Any
) -> None:
    config = make_config(fallback={"tiers": [{"name": "t", "sources": ["wayback", "wayback2"]}]})
    with pytest.raises(ConfigError, match="unknown source 'wayback2'"):
        Downloader(config)
    assert not (tmp_path / "out").exists()


def test_a_plug_in_source_given_to_the_downloader_is_a_known_tier_source() -> None:
    config = Config(fallback={"tiers": [{"name": "mine", "sources": ["my_repo", "crossref"]}]})
    check_tiers(config, [*resolver_classes(), "my_repo"])  # no error
    with pytest.raises(ConfigError, match="'my_repo'"):
        check_tiers(config, resolver_classes())


def test_a_tier_without_sources_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"fallback.tiers.0.sources"):
        Config.load(None, fallback={"tiers": [{"name": "empty", "sources": []}]})


# -- OAFETCH_* environment variables --------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("OAFETCH_DOWNLOAD__ACCEPT", "pdf", ["OAFETCH_DOWNLOAD__ACCEPT='[\"pdf\"]'"]),
        (
            "OAFETCH_DOWNLOAD__ACCEPT",
            "pdf,html",
            ['OAFETCH_DOWNLOAD__ACCEPT=\'["pdf", "html"]\''],
        ),
        ("OAFETCH_RATES", "fast", ["a JSON object", 'OAFETCH_RATES=\'{"name"']),
        ("OAFETCH_CACHE__TTL_S", "{oops", ["a JSON object"]),
    ],
)
def test_a_structured_env_value_that_is_not_json_is_exit_2(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    value: str,
    expected: list[str],
) -> None:
    monkeypatch.setenv(name, value)
    assert run(tmp_path, ids_file(tmp_path)) == 2
    err = capsys.readouterr().err
    assert name in err and repr(value) in err and "not valid JSON" in err, err
    for part in expected:
        assert part in err, f"{part!r} not in {err!r}"
    assert "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_a_structured_env_value_in_json_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OAFETCH_DOWNLOAD__ACCEPT", '["pdf", "html"]')
    monkeypatch.setenv("OAFETCH_RATES", '{"api.crossref.org": "2/s"}')
    config = Config.load(None)
    assert config.download.accept == ("pdf", "html")
    assert config.rates == {"api.crossref.org": "2/s"}


def test_a_misspelt_env_name_is_exit_2_with_a_suggestion(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OAFETCH_WROKERS", "4")
    assert run(tmp_path, ids_file(tmp_path)) == 2
    err = capsys.readouterr().err
    assert "unknown environment variable OAFETCH_WROKERS" in err, err
    assert "did you mean OAFETCH_WORKERS?" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_a_misspelt_nested_env_name_names_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OAFETCH_HTTP__READ_TIMOUT_S", "5")
    with pytest.raises(ConfigError) as info:
        Config.load(None)
    assert "OAFETCH_HTTP__READ_TIMOUT_S" in str(info.value)
    assert "did you mean OAFETCH_HTTP__READ_TIMEOUT_S?" in str(info.value)


def test_an_env_name_far_from_any_setting_lists_the_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OAFETCH_ZZZ", "1")
    with pytest.raises(ConfigError) as info:
        Config()
    assert "OAFETCH_ZZZ" in str(info.value) and "OAFETCH_WORKERS" in str(info.value)


def test_known_env_names_in_any_case_still_work(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("oafetch_workers", "3")
    monkeypatch.setenv("OAFETCH_RESOLVERS__CORE__ENABLED", "false")
    config = Config.load(None)
    assert config.workers == 3 and config.resolver("core").enabled is False


# -- CSV input -------------------------------------------------------------------------------------


def previous_run(tmp_path: Path) -> Path:
    out = tmp_path / "out"
    out.mkdir()
    (out / "summary.json").write_text('{"previous": true}\n')
    return out


def test_a_wrong_csv_column_is_exit_2_before_the_output_dir_is_opened(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = previous_run(tmp_path)
    source = ids_file(tmp_path, "doi,title\n10.1234/x,A\n", name="ids.csv")
    assert run(tmp_path, source, "--column", "DOI_", "--out", str(out)) == 2
    err = capsys.readouterr().err
    assert "no column 'DOI_'" in err and "['doi', 'title']" in err and "--column" in err, err
    assert json.loads((out / "summary.json").read_text()) == {"previous": True}
    assert sorted(p.name for p in out.iterdir()) == ["summary.json"], "nothing else written"


def test_a_csv_without_an_id_column_is_exit_2_naming_its_columns(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = previous_run(tmp_path)
    source = ids_file(tmp_path, "title,year\nA paper,2020\n", name="papers.csv")
    assert run(tmp_path, source, "--out", str(out)) == 2
    err = capsys.readouterr().err
    assert "no identifier column" in err and "['title', 'year']" in err, err
    assert "--column" in err and source in err
    assert json.loads((out / "summary.json").read_text()) == {"previous": True}


def test_a_csv_without_a_header_row_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = ids_file(tmp_path, "10.1234/a\n10.1234/b\n", name="dois.csv")
    assert run(tmp_path, source) == 2
    err = capsys.readouterr().err
    assert "no header row" in err and "'10.1234/a'" in err and "--format txt" in err, err


def test_a_csv_from_a_spreadsheet_with_a_bom_finds_its_doi_column(tmp_path: Path) -> None:
    path = tmp_path / "excel.csv"
    path.write_bytes("\ufeffDOI,Title\n10.1234/a,A\n".encode())
    [line] = list(read_input(str(path)))
    assert line.work is not None and line.work.work_id == "doi:10.1234/a"
    assert line.extra == {"Title": "A"}


def test_a_wrong_column_on_csv_from_stdin_is_exit_2_before_the_output_dir(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    stdin = io.TextIOWrapper(io.BytesIO(b"doi,title\n10.1234/x,A\n"), encoding="utf-8")
    monkeypatch.setattr(sys, "stdin", stdin)
    assert run(tmp_path, "-", "--format", "csv", "--column", "pmid") == 2
    assert "no column 'pmid'" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_csv_from_stdin_still_reads_every_row_with_its_line_number(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stdin = io.TextIOWrapper(io.BytesIO(b"id,note\n10.1234/a,x\n\n10.1234/b,y\n"), encoding="utf-8")
    monkeypatch.setattr(sys, "stdin", stdin)
    lines = list(read_input("-", fmt="csv"))
    assert [(line.line, line.work.work_id if line.work else None) for line in lines] == [
        (2, "doi:10.1234/a"),
        (4, "doi:10.1234/b"),
    ]


def test_an_empty_csv_is_nothing_to_do(tmp_path: Path) -> None:
    path = tmp_path / "empty.csv"
    path.write_text("")
    assert list(read_input(str(path))) == []


def test_the_input_error_is_an_input_error(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("a,b\n1,2\n")
    with pytest.raises(InputError):
        read_input(str(path))


def test_a_resolver_table_in_the_environment_that_is_not_a_table_is_never_echoed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OAFETCH_RESOLVERS__CORE", "api_key=s3cr3t-value")
    with pytest.raises(ConfigError) as info:
        Config.load(None)
    assert "resolvers.core" in str(info.value) and "s3cr3t" not in str(info.value)
    monkeypatch.setenv("OAFETCH_RESOLVERS", "{api_key: s3cr3t-value")
    with pytest.raises(ConfigError) as info:
        Config.load(None)
    text = str(info.value)
    assert "OAFETCH_RESOLVERS" in text and "not valid JSON" in text
    assert "s3cr3t" not in text and "hidden" in text


def test_a_tsv_file_is_read_with_tabs(tmp_path: Path) -> None:
    path = tmp_path / "ids.tsv"
    path.write_text("title\tdoi\nA, with a comma\t10.1234/a\n")
    [line] = list(read_input(str(path)))
    assert line.work is not None and line.work.work_id == "doi:10.1234/a"
    assert line.extra == {"title": "A, with a comma"}


def test_an_unreadable_csv_row_is_a_bad_line_and_the_rest_is_read(tmp_path: Path) -> None:
    path = tmp_path / "ids.csv"
    path.write_text("doi,note\n10.1234/a,x\n10.1234/b," + "y" * 200_000 + "\n10.1234/c,z\n")
    lines = list(read_input(str(path)))
    assert [line.work.work_id if line.work else None for line in lines] == [
        "doi:10.1234/a",
        None,
        "doi:10.1234/c",
    ]
    assert lines[1].line == 3 and "unreadable CSV row" in (lines[1].error or "")
