"""Works and their identifiers: normalisation of every common form, and input readers.

Identifier kinds: DOI (``10.…``, ``doi:``, ``https://doi.org/…``, ``dx.doi.org``, any case,
URL-encoded), arXiv (new ``2101.00001v2``, old ``hep-th/9901001``, ``arXiv:`` prefix, arxiv.org
``/abs/`` and ``/pdf/`` URLs; normalised as :mod:`oafetch.identifiers` says), PMID
(``PMID:123``, bare digits, PubMed URLs), PMCID (``PMC123``, PMC article URLs on either NCBI
host), OpenAlex (``W123``, openalex.org and api.openalex.org URLs) and any other http(s) URL.

An arXiv DOI (``10.48550/arXiv.2101.00001``) stays a DOI work: DOI-based sources (OpenAlex,
Unpaywall, Crossref …) are asked by it, and :attr:`Work.arxiv` gives the arXiv id it names, so
arXiv is asked too. Readers stream txt/CSV/JSONL inputs and report each malformed line with its
number instead of stopping the batch.
"""

from __future__ import annotations

import csv
import difflib
import hashlib
import io
import json
import re
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cached_property
from pathlib import Path
from typing import IO, Any
from urllib.parse import unquote, urlsplit

from oafetch.errors import InputError
from oafetch.identifiers import arxiv_doi, arxiv_of_doi, id_from_url, normalise_arxiv
from oafetch.urls import redact_url


class IdKind(StrEnum):
    DOI = "doi"
    ARXIV = "arxiv"
    PMID = "pmid"
    PMCID = "pmcid"
    OPENALEX = "openalex"
    URL = "url"


@dataclass(frozen=True)
class Work:
    """One work to fetch: its identifier kind and normalised value.

    ``work_id`` (``doi:10.1038/nature12373``, ``arxiv:2101.00001v2`` …) is stable and unique;
    ``artifact_id`` is a short hash of it, used in file names and telemetry. Both are computed
    once per work (the URL redaction and the hash are not free on a hot path).
    """

    kind: IdKind
    value: str
    raw: str = field(default="", compare=False)
    line: int | None = field(default=None, compare=False)

    @cached_property
    def work_id(self) -> str:
        if self.kind is IdKind.URL:  # a URL may carry a key; ids are written everywhere
            return f"url:{redact_url(self.value).strip()}"
        return f"{self.kind}:{self.value}"

    @cached_property
    def artifact_id(self) -> str:
        return hashlib.sha256(self.work_id.encode()).hexdigest()[:12]

    @property
    def doi(self) -> str | None:
        return self.value if self.kind is IdKind.DOI else None

    @property
    def arxiv(self) -> str | None:
        """The arXiv id of an arXiv work, or the one an arXiv DOI names."""
        if self.kind is IdKind.ARXIV:
            return self.value
        return arxiv_of_doi(self.value) if self.kind is IdKind.DOI else None

    def __str__(self) -> str:
        return self.work_id


_DOI = re.compile(r"^10\.\d{4,9}/\S+$")
_DOI_PREFIX = re.compile(
    r"^(?:doi:\s*|(?:https?://)?(?:dx\.)?doi\.org/|(?:https?://)?(?:www\.)?doi\.org/)", re.I
)
# A "." or ".." path segment: URL resolution would turn it into a different path.
_DOT_SEGMENT = re.compile(r"(?:^|/)\.{1,2}(?:/|$)")
_ARXIV_PREFIX = re.compile(r"^arxiv:\s*", re.I)
_PMID = re.compile(r"^(?:pmid\s*:?\s*)?(\d{1,9})$", re.I)
_PMCID = re.compile(r"^(?:pmcid\s*:?\s*)?pmc(\d{1,9})(?:\.\d+)?$", re.I)
_OPENALEX = re.compile(
    r"^(?:openalex:\s*|https?://(?:api\.)?openalex\.org/(?:works/)?)?(w\d{2,12})$", re.I
)


def normalise_doi(text: str) -> str | None:
    """The lower-case bare DOI in ``text``, or ``None`` when it is not a DOI.

    Percent-escapes are decoded once, and only where they are the URL's encoding (a doi.org
    URL, or a DOI whose ``/`` itself is escaped): decoding a plain DOI again would turn the
    literal ``%41`` a decoded ``%2541`` left behind into ``A``, a different work.
    """
    value = text.strip()
    url_form = bool(re.match(r"^(?:https?://)?(?:dx\.|www\.)?doi\.org/", value, re.I))
    if url_form or "/" not in value:
        value = unquote(value)
    value = _DOI_PREFIX.sub("", value).strip()
    if any(ord(c) < 32 or c == "\x7f" for c in value):  # decoded into control characters
        return None
    if _DOT_SEGMENT.search(value) or _DOT_SEGMENT.search(unquote(value)):
        return None  # "10.1234/../../admin": never a DOI, and a path traversal in a URL
    return value.lower() if _DOI.match(value) else None


def parse_work(text: str, *, line: int | None = None) -> Work:
    """Parse one identifier in any supported form.

    Raises:
        InputError: the text is empty or matches no identifier form; the message says which
            forms are accepted.
    """
    raw = text
    value = text.strip().strip("\ufeff")
    if not value:
        raise InputError("empty identifier")
    if "\x00" in value or any(ord(c) < 32 for c in value if c not in "\t"):
        raise InputError("identifier contains control characters (is this a binary file?)")
    if _ARXIV_PREFIX.match(value):
        arxiv = normalise_arxiv(value)
        if arxiv is None:
            raise InputError(
                f"{value!r} is not an arXiv id (expected 2101.00001v2 or hep-th/9901001)"
            )
        return Work(IdKind.ARXIV, arxiv, raw, line)
    bare = _DOI_PREFIX.sub("", unquote(value)).strip()
    if _DOI.match(bare) and (_DOT_SEGMENT.search(bare) or _DOT_SEGMENT.search(unquote(bare))):
        raise InputError(
            f"{value!r} is not a DOI: a '.' or '..' segment in its suffix would change the "
            "path of every URL it is put into; check this line of the input"
        )
    doi = normalise_doi(value)
    if doi is not None:
        if (arxiv := arxiv_of_doi(doi)) is not None:
            doi = arxiv_doi(arxiv)  # one spelling: no version, no subject class
        return Work(IdKind.DOI, doi, raw, line)
    if (arxiv := normalise_arxiv(value)) is not None:
        return Work(IdKind.ARXIV, arxiv, raw, line)
    if (named := id_from_url(value)) is not None:
        return Work(IdKind(named[0]), named[1], raw, line)
    if match := _PMCID.match(value):
        return Work(IdKind.PMCID, f"PMC{int(match[1])}", raw, line)
    if match := _PMID.match(value):
        return Work(IdKind.PMID, str(int(match[1])), raw, line)
    if match := _OPENALEX.match(value):
        return Work(IdKind.OPENALEX, match[1].upper(), raw, line)
    if value[:4].lower() == "url:":  # a URL work's own work_id (fed back from a manifest)
        value = value[4:].strip()
    try:
        parts = urlsplit(value)
        host = parts.hostname
    except ValueError as exc:  # "http://[::1": a malformed host
        raise InputError(f"{value[:120]!r} is not a valid URL: {exc}") from None
    if parts.scheme.lower() in ("http", "https") and host and not re.search(r"\s", parts.netloc):
        return Work(IdKind.URL, value, raw, line)
    raise InputError(
        f"{value[:120]!r} is not an identifier oafetch knows: expected a DOI (10.…, doi:…, "
        "https://doi.org/…), arXiv:…, PMID:…, PMC…, an OpenAlex W… id or an http(s) URL"
    )


@dataclass(frozen=True)
class InputLine:
    """One input line: a parsed work, or the error that made it unusable."""

    line: int
    work: Work | None
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


_ID_COLUMNS = (
    "id",
    "identifier",
    "doi",
    "work",
    "url",
    "pmid",
    "pmcid",
    "arxiv",
    "ids",
    "identifiers",
    "dois",
    "urls",
    "arxiv_id",
    "openalex_id",
)


def _parse(line_no: int, text: str, extra: dict[str, Any] | None = None) -> InputLine:
    try:
        return InputLine(line_no, parse_work(text, line=line_no), None, extra or {})
    except InputError as exc:
        return InputLine(line_no, None, str(exc), extra or {})


def read_txt(stream: IO[str]) -> Iterator[InputLine]:
    """One identifier per line; blank lines and ``#`` comments (whole or trailing) are skipped."""
    for number, text in enumerate(stream, start=1):
        content = re.split(r"(?:^|\s)#", text, maxsplit=1)[0].strip()
        if content:
            yield _parse(number, content)


def read_csv(
    stream: IO[str], column: str | None = None, *, delimiter: str = ","
) -> Iterator[InputLine]:
    """Rows of a CSV with a header; ``column`` names the id column (default: a known name).

    A row the ``csv`` module cannot read (a field over its size limit) is reported as a bad line
    and the rest is read.

    Raises:
        InputError: (at the first ``next``) no such column, or no recognisable id column.
    """
    rows = csv.reader(stream, delimiter=delimiter)
    fields = csv_header(rows)
    if fields is not None:
        yield from _csv_rows(rows, fields, csv_column(fields, column))


def csv_header(rows: Iterator[list[str]], where: str = "") -> list[str] | None:
    """The first row of a ``csv.reader`` as column names (a spreadsheet's byte-order mark
    removed), or None for an empty input.

    Raises:
        InputError: the header cannot be read as CSV.
    """
    try:
        row = next(rows, None)
    except csv.Error as exc:
        raise InputError(f"CSV input {where}: its header cannot be read: {exc}") from None
    if row is None:
        return None
    return [row[0].removeprefix("\ufeff"), *row[1:]] if row else []


def csv_column(fields: list[str], column: str | None, where: str = "") -> str:
    """The id column of a CSV whose header is ``fields``: ``column``, or the first known name.

    Never a guess: a CSV whose header names no id column is an error (its first column would
    make every row a bad identifier, or silently fetch the wrong thing).

    Raises:
        InputError: ``column`` is not in the header; no known id column; no header row at all.
    """
    label = f"CSV input {where}" if where else "CSV input"
    if column is not None:
        if column in fields:
            return column
        close = difflib.get_close_matches(column, fields, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise InputError(
            f"{label} has no column {column!r}; columns are {fields}; {hint}"
            "choose one with --column"
        )
    lowered = {f.lower().strip(): f for f in fields}
    found = next((lowered[c] for c in _ID_COLUMNS if c in lowered), None)
    if found is not None:
        return found
    if fields and _is_identifier(fields[0]):
        raise InputError(
            f"{label} has no header row (its first line, {fields[0][:120]!r}, is an "
            "identifier): add a header line such as 'doi', or give --format txt for one "
            "identifier per line"
        )
    raise InputError(
        f"{label} has no identifier column (looked for {', '.join(_ID_COLUMNS)}); columns are "
        f"{fields}; name the one holding identifiers with --column"
    )


def _is_identifier(text: str) -> bool:
    try:
        parse_work(text)
    except InputError:
        return False
    return True


def _csv_rows(rows: Iterator[list[str]], fields: list[str], column: str) -> Iterator[InputLine]:
    """The rows after the header of a ``csv.reader``, numbered by physical line."""
    while True:
        try:
            values = next(rows)
        except StopIteration:
            return
        except csv.Error as exc:  # one unreadable row is a bad line, not the end of the batch
            yield InputLine(getattr(rows, "line_num", 0), None, f"unreadable CSV row: {exc}")
            continue
        row = dict(zip(fields, values, strict=False))
        value = (row.get(column) or "").strip()
        if value:
            number = getattr(rows, "line_num", 0)
            yield _parse(number, value, {k: v for k, v in row.items() if k != column and k})


def read_jsonl(stream: IO[str], key: str | None = None) -> Iterator[InputLine]:
    """One JSON value per line: a string id, or an object whose ``key`` (or a known key) has it."""
    for number, text in enumerate(stream, start=1):
        if not text.strip():
            continue
        try:
            value = json.loads(text)
        except ValueError as exc:
            yield InputLine(number, None, f"invalid JSON: {exc}")
            continue
        if isinstance(value, str):
            yield _parse(number, value)
            continue
        if not isinstance(value, dict):
            yield InputLine(number, None, "expected a JSON string or object")
            continue
        keys = [key] if key else [k for k in _ID_COLUMNS if k in value]
        found = next((value[k] for k in keys if isinstance(value.get(k), str)), None)
        if found is None:
            yield InputLine(
                number, None, f"no identifier field (tried {keys or list(_ID_COLUMNS)})"
            )
            continue
        yield _parse(number, found, {k: v for k, v in value.items() if k not in keys})


def detect_format(path: str) -> str:
    """``csv``, ``jsonl`` or ``txt`` from a file name."""
    suffix = Path(path).suffix.lower()
    if suffix in (".csv", ".tsv"):
        return "csv"
    if suffix in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    return "txt"


def _check_input(path: str) -> None:
    """Raise :class:`InputError` now if ``path`` cannot be read or is not text."""
    if path == "-":
        return
    try:
        with Path(path).open("rb") as probe:
            head = probe.read(8192)
    except FileNotFoundError:
        raise InputError(f"input file {path} does not exist") from None
    except IsADirectoryError:
        raise InputError(f"input {path} is a directory; give a file of identifiers") from None
    except OSError as exc:
        raise InputError(f"input file {path} cannot be read: {exc.strerror}") from None
    if b"\x00" in head:
        raise InputError(
            f"input file {path} looks binary (NUL bytes); expected text, CSV or JSONL identifiers"
        )


def _open_text(path: str) -> IO[str]:
    if path == "-":
        return io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8", errors="replace")
    try:
        return Path(path).open(encoding="utf-8", errors="replace", newline="")
    except OSError as exc:
        raise InputError(f"input file {path} cannot be read: {exc.strerror}") from None


def read_input(
    path: str, *, fmt: str | None = None, column: str | None = None
) -> Iterator[InputLine]:
    """Stream the identifiers of an input file (or ``-`` for stdin), line by line.

    Raises:
        InputError: the file cannot be opened or is not text (raised before the first line).
    """
    fmt = fmt or detect_format(path)
    _check_input(path)
    delimiter = "\t" if Path(path).suffix.lower() == ".tsv" else ","
    if fmt == "csv":
        # The header is checked now, before the caller opens any output: a wrong --column must
        # not cost the output directory its previous summary.
        if path == "-":
            return _stdin_csv(column)
        with _open_text(path) as probe:
            fields = csv_header(csv.reader(probe, delimiter=delimiter), path)
        if fields is not None:
            column = csv_column(fields, column, path)

    def lines() -> Iterator[InputLine]:
        # Opened on first use: a run that never starts (a bad config) leaks no file handle.
        with _open_text(path) as stream:
            if fmt == "csv":
                yield from read_csv(stream, column, delimiter=delimiter)
            elif fmt == "jsonl":
                yield from read_jsonl(stream, column)
            else:
                yield from read_txt(stream)

    return lines()


def _stdin_csv(column: str | None) -> Iterator[InputLine]:
    """CSV rows from stdin, its header read and checked now (stdin cannot be read twice)."""
    stream = _open_text("-")
    rows = csv.reader(stream)
    try:
        fields = csv_header(rows, "on stdin")
        chosen = csv_column(fields, column, "on stdin") if fields is not None else ""
    except BaseException:
        stream.close()
        raise

    def lines() -> Iterator[InputLine]:
        with stream:
            if fields is not None:
                yield from _csv_rows(rows, fields, chosen)

    return lines()


def as_works(items: Iterable[str | Work]) -> Iterator[InputLine]:
    """Library input: strings or :class:`Work` objects, numbered from 1."""
    for number, item in enumerate(items, start=1):
        if isinstance(item, Work):
            yield InputLine(number, item)
        else:
            yield _parse(number, str(item))


def as_lines(items: Iterable[Any]) -> Iterator[InputLine]:
    """Input lines from strings, :class:`Work` objects or :class:`InputLine` items (streamed)."""
    for number, item in enumerate(items, start=1):
        if isinstance(item, InputLine):
            yield item
        elif isinstance(item, Work):
            yield InputLine(number, item)
        else:
            yield _line(number, str(item))


def _line(number: int, text: str) -> InputLine:
    try:
        return InputLine(number, parse_work(text, line=number))
    except Exception as exc:
        return InputLine(number, None, str(exc))


def take(lines: Iterator[InputLine], limit: int) -> Iterator[InputLine]:
    """The first ``limit`` lines."""
    for count, line in enumerate(lines):
        if count >= limit:
            return
        yield line
