"""Identifier normalisation and streaming input readers."""

from __future__ import annotations

from pathlib import Path

import pytest

from oafetch.errors import InputError
from oafetch.works import IdKind, parse_work, read_input


@pytest.mark.parametrize(
    ("text", "work_id"),
    [
        ("10.1038/nature12373", "doi:10.1038/nature12373"),
        ("10.1038/NATURE12373", "doi:10.1038/nature12373"),
        ("doi:10.1038/nature12373", "doi:10.1038/nature12373"),
        ("DOI: 10.1038/nature12373", "doi:10.1038/nature12373"),
        ("https://doi.org/10.1038/nature12373", "doi:10.1038/nature12373"),
        ("http://dx.doi.org/10.1038/nature12373", "doi:10.1038/nature12373"),
        ("https://doi.org/10.1038%2Fnature12373", "doi:10.1038/nature12373"),
        ("arXiv:2101.00001v2", "arxiv:2101.00001v2"),
        ("2101.00001", "arxiv:2101.00001"),
        ("hep-th/9901001", "arxiv:hep-th/9901001"),
        ("arXiv:math.GT/0309136v1", "arxiv:math/0309136v1"),
        ("https://arxiv.org/abs/2101.00001v3", "arxiv:2101.00001v3"),
        ("10.48550/arXiv.2101.00001", "doi:10.48550/arxiv.2101.00001"),
        ("PMID:23193287", "pmid:23193287"),
        ("23193287", "pmid:23193287"),
        ("PMC3531190", "pmcid:PMC3531190"),
        ("pmc3531190", "pmcid:PMC3531190"),
        ("W2741809807", "openalex:W2741809807"),
        ("https://openalex.org/W2741809807", "openalex:W2741809807"),
        ("https://example.org/paper.pdf", "url:https://example.org/paper.pdf"),
    ],
)
def test_identifier_forms(text: str, work_id: str) -> None:
    assert parse_work(text).work_id == work_id


@pytest.mark.parametrize(
    ("text", "work_id"),
    [
        # old-style ids as idutils normalises them: subject class dropped, version kept
        ("math.GT/0309136", "arxiv:math/0309136"),
        ("arxiv:math.GT/0309136v2", "arxiv:math/0309136v2"),
        ("arXiv:hep-th/9901001v27", "arxiv:hep-th/9901001v27"),
        ("hep-th/1601.07616", "arxiv:1601.07616"),
        ("9912.12345v2", "arxiv:9912.12345v2"),
        ("2101.00001V2", "arxiv:2101.00001v2"),
        # arXiv DOIs stay DOIs, in one spelling (no version, no subject class)
        ("https://doi.org/10.48550/arXiv.2304.05376", "doi:10.48550/arxiv.2304.05376"),
        ("10.48550/ARXIV.math.GT/0309136", "doi:10.48550/arxiv.math/0309136"),
        # URLs that name an identifier
        ("https://arxiv.org/pdf/2101.00001v2.pdf", "arxiv:2101.00001v2"),
        ("http://export.arxiv.org/abs/math.GT/0309136", "arxiv:math/0309136"),
        ("https://arxiv.org/abs/arXiv:1310.2590", "arxiv:1310.2590"),
        ("pubmed.ncbi.nlm.nih.gov/123", "pmid:123"),
        ("https://pubmed.ncbi.nlm.nih.gov/23193287/", "pmid:23193287"),
        ("https://www.ncbi.nlm.nih.gov/pubmed/23193287", "pmid:23193287"),
        ("https://www.ncbi.nlm.nih.gov/pmc/articles/PMC123/", "pmcid:PMC123"),
        ("www.ncbi.nlm.nih.gov/pmc/articles/PMC123/", "pmcid:PMC123"),
        ("https://pmc.ncbi.nlm.nih.gov/articles/PMC123/", "pmcid:PMC123"),
        ("https://www.ncbi.nlm.nih.gov/pmc/articles/5815332", "pmcid:PMC5815332"),
        ("openalex.org/W123", "openalex:W123"),
        ("https://openalex.org/works/w2741809807", "openalex:W2741809807"),
        ("https://api.openalex.org/works/W2741809807?api_key=k", "openalex:W2741809807"),
        ("https://api.openalex.org/W2741809807", "openalex:W2741809807"),
        # look-alikes stay URLs
        (
            "https://www.ncbi.nlm.nih.gov/articles/12",
            "url:https://www.ncbi.nlm.nih.gov/articles/12",
        ),
        ("https://arxiv.org/list/math.GT/recent", "url:https://arxiv.org/list/math.GT/recent"),
        ("https://openalex.org/A5023888391", "url:https://openalex.org/A5023888391"),
    ],
)
def test_normalised_arxiv_ids_and_identifier_urls(text: str, work_id: str) -> None:
    assert parse_work(text).work_id == work_id


def test_an_arxiv_doi_work_knows_its_arxiv_id() -> None:
    work = parse_work("10.48550/arXiv.2101.00001")
    assert work.kind is IdKind.DOI and work.arxiv == "2101.00001"
    assert parse_work("arXiv:2101.00001v2").arxiv == "2101.00001v2"
    assert parse_work("10.1038/nature12373").arxiv is None


@pytest.mark.parametrize(
    "text", ["", "   ", "hello world", "10.12/x", "ftp://x.org/a", "arXiv:nope", "a\x00b"]
)
def test_malformed_identifiers_are_rejected_clearly(text: str) -> None:
    with pytest.raises(InputError):
        parse_work(text)


def test_url_with_a_key_has_a_redacted_work_id() -> None:
    work = parse_work("https://x.org/a.pdf?api_key=SECRET1234")
    assert work.kind is IdKind.URL and "SECRET1234" not in work.work_id


def test_txt_reader_skips_comments_and_reports_bad_lines(tmp_path: Path) -> None:
    file = tmp_path / "ids.txt"
    file.write_text("# a comment\n10.1038/nature12373\n\nnot an id\nPMC3531190  # trailing\n")
    lines = list(read_input(str(file)))
    assert [(line.line, line.work.work_id if line.work else None) for line in lines] == [
        (2, "doi:10.1038/nature12373"),
        (4, None),
        (5, "pmcid:PMC3531190"),
    ]
    assert lines[1].error and "not an identifier" in lines[1].error


def test_csv_reader_uses_the_named_column(tmp_path: Path) -> None:
    file = tmp_path / "ids.csv"
    file.write_text("title,doi\nA,10.1038/nature12373\nB,garbage\n")
    lines = list(read_input(str(file), column="doi"))
    assert lines[0].work is not None and lines[0].extra == {"title": "A"}
    assert lines[1].work is None and lines[1].line == 3


def test_csv_reader_names_the_missing_column(tmp_path: Path) -> None:
    file = tmp_path / "ids.csv"
    file.write_text("title,doi\nA,10.1038/nature12373\n")
    with pytest.raises(InputError, match="no column 'identifier'"):
        list(read_input(str(file), column="identifier"))


def test_jsonl_reader(tmp_path: Path) -> None:
    file = tmp_path / "ids.jsonl"
    file.write_text('{"doi": "10.1038/nature12373"}\n"arXiv:2101.00001"\n{oops\n[1]\n')
    lines = list(read_input(str(file)))
    assert [line.work is not None for line in lines] == [True, True, False, False]
    assert "invalid JSON" in (lines[2].error or "")


def test_binary_input_is_refused(tmp_path: Path) -> None:
    file = tmp_path / "ids.txt"
    file.write_bytes(b"\x00\x01\x02binary")
    with pytest.raises(InputError, match="binary"):
        read_input(str(file))


def test_missing_input_file_is_reported(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        read_input(str(tmp_path / "nope.txt"))
