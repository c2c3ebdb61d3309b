"""SLO evaluation and ``oafetch telemetry slo``: verdicts, targets files and exit codes."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import pytest

from analytics_fixtures import BAD, GOOD, LIVE_START, build_store
from oafetch.telemetry import slo, store
from oafetch.telemetry.analytics_cli import main

SLI_KEYS = [
    "yield_pct",
    "ttfp_p50_ms",
    "ttfp_p95_ms",
    "cache_hit_pct",
    "rate_delay_p95_ms",
    "http_429_ratio",
    "breaker_opens_per_hour",
    "corruption_count",
    "identity_mismatch_per_1k",
]


@pytest.fixture(scope="module")
def crafted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_store(tmp_path_factory.mktemp("slo"))


def _report(db: Path, run: str, **kwargs: object) -> slo.SloReport:
    with contextlib.closing(store.open_readonly(db)) as conn:
        return slo.evaluate_run(
            conn,
            run,
            slo.SloTargets(),
            out_dir=db.parent,
            **kwargs,  # type: ignore[arg-type]
        )


def _json(capsys: pytest.CaptureFixture[str], argv: list[str]) -> tuple[int, dict[str, object]]:
    code = main(argv)
    return code, json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("key", SLI_KEYS)
def test_good_run_passes_each_sli(crafted: Path, key: str) -> None:
    """Every SLI of the passing run has its hand-computed value and passes."""
    result = {r.key: r for r in _report(crafted, "good").results}[key]
    assert result.value == pytest.approx(GOOD[key])
    assert result.passed is True


@pytest.mark.parametrize("key", SLI_KEYS)
def test_bad_run_fails_each_sli(crafted: Path, key: str) -> None:
    """Every SLI of the failing run has its hand-computed value and fails."""
    result = {r.key: r for r in _report(crafted, "bad").results}[key]
    assert result.value == pytest.approx(BAD[key])
    assert result.passed is False


def test_sparse_run_reports_na_and_passes(crafted: Path) -> None:
    """SLIs with no data are n/a and do not fail the run."""
    report = _report(crafted, "sparse")
    verdicts = {r.key: r.passed for r in report.results}
    assert verdicts == {
        "yield_pct": True,
        "ttfp_p50_ms": None,
        "ttfp_p95_ms": None,
        "cache_hit_pct": None,
        "rate_delay_p95_ms": None,
        "http_429_ratio": None,
        "breaker_opens_per_hour": True,
        "corruption_count": True,
        "identity_mismatch_per_1k": True,
    }
    assert report.passed


def test_running_run_is_computed_live(crafted: Path) -> None:
    """A run without finished_at is judged from its rows, its duration up to now."""
    report = _report(crafted, "live", now=LIVE_START + 3600.0)
    assert report.running and report.duration_s == 3600.0
    values = {r.key: r.value for r in report.results}
    assert values["yield_pct"] == pytest.approx(200 / 3)
    assert values["breaker_opens_per_hour"] == pytest.approx(2.0)  # 2 opens in 1 h
    assert values["http_429_ratio"] == pytest.approx(1 / 3)


@pytest.mark.parametrize(
    ("opens", "duration", "expected"),
    [(0, None, 0.0), (0, 10.0, 0.0), (3, 7200.0, 1.5), (1, 0.2, 3600.0), (2, None, None)],
)
def test_breaker_opens_per_hour(opens: int, duration: float | None, expected: float | None) -> None:
    """Opens are normalised by the run's duration (at least 1 s); unknown duration is n/a."""
    assert slo.breaker_opens_per_hour(opens, duration) == expected


def test_boundaries_pass() -> None:
    """A value exactly at its target passes (targets are inclusive)."""
    t = slo.SloTargets()
    at_target = {
        "yield_pct": t.yield_pct_min,
        "ttfp_p50_ms": t.ttfp_p50_ms_max,
        "ttfp_p95_ms": t.ttfp_p95_ms_max,
        "cache_hit_pct": t.cache_hit_pct_min,
        "rate_delay_p95_ms": t.rate_delay_p95_ms_max,
        "http_429_ratio": t.http_429_ratio_max,
        "breaker_open_events": 12,
        "corruption_count": 0,
        "identity_mismatch_per_1k": t.identity_mismatch_per_1k_max,
    }
    results = slo.evaluate(at_target, t, duration_s=3600.0)
    assert all(r.passed for r in results)


def test_verify_files_recounts_corruption(tmp_path: Path) -> None:
    """--verify-files replaces the stored corruption count with a fresh check by hash."""
    db = build_store(tmp_path)
    target = tmp_path / "pdf" / "good-W3.pdf"
    target.write_bytes(bytes(b ^ 1 for b in target.read_bytes()))
    assert _report(db, "good").passed
    report = _report(db, "good", verify_files=True)
    assert not report.passed
    assert [c.work_id for c in report.corrupt] == ["W3"]


# -- targets files ------------------------------------------------------------------------------


def test_targets_from_oafetch_toml(tmp_path: Path) -> None:
    """The [slo] table of oafetch.toml overrides the defaults it names; other tables are ignored."""
    toml = tmp_path / "oafetch.toml"
    toml.write_text(
        '[http]\nmailto = "me@example.org"\n\n[slo]\nyield_pct_min = 95\n'
        "http_429_ratio_max = 0.05\n"
    )
    targets = slo.load_targets(toml)
    assert targets.yield_pct_min == 95.0 and targets.http_429_ratio_max == 0.05
    assert targets.ttfp_p50_ms_max == slo.SloTargets().ttfp_p50_ms_max


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("[slo]\nyield_min = 90\n", "unknown key slo.yield_min; expected one of: yield_pct_min"),
        ("[slo]\nyield_pct_min = 'high'\n", "slo.yield_pct_min must be a finite number"),
        ("[slo]\nyield_pct_min = 120\n", "slo.yield_pct_min must be between 0 and 100 (got 120)"),
        ("[slo]\nhttp_429_ratio_max = 2\n", "slo.http_429_ratio_max must be between 0 and 1"),
        ("[slo]\nttfp_p50_ms_max = -1\n", "slo.ttfp_p50_ms_max must be >= 0 (got -1)"),
        ("[slo]\ncorruption_max = true\n", "slo.corruption_max must be a finite number"),
        ("[http]\nx = 1\n", "has no [slo] table"),
        ("[slo\n", "is not valid TOML"),
    ],
)
def test_bad_targets_file(tmp_path: Path, content: str, message: str) -> None:
    """A bad targets file is refused with the file, key, rule and value."""
    toml = tmp_path / "t.toml"
    toml.write_text(content)
    with pytest.raises(slo.TargetsError) as info:
        slo.load_targets(toml)
    assert message in str(info.value)
    assert str(toml) in str(info.value)


# -- the CLI ------------------------------------------------------------------------------------


def test_cli_exit_0_when_all_pass(crafted: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """slo exits 0 and prints a table naming every SLI when the run meets them all."""
    assert main(["slo", "--db", str(crafted), "--run", "good"]) == 0
    out = capsys.readouterr().out
    assert "PASS" in out and "FAIL" not in out
    for label in ("Yield", "Time to first PDF p95", "HTTP 429 ratio", "Corrupt artifacts"):
        assert label in out
    assert "90.0 %" in out and "1.67 %" in out


def test_cli_exit_1_when_any_fails(crafted: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """slo exits 1 when an SLI misses its target, and names it."""
    assert main(["slo", "--db", str(crafted), "--run", "bad"]) == 1
    out = capsys.readouterr().out
    assert "FAIL: 9 of 9 SLIs missed" in out


def test_cli_json(crafted: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--json gives every SLI with value, target and verdict, and the summary row."""
    code, payload = _json(capsys, ["slo", "--db", str(crafted), "--run", "bad", "--json"])
    assert code == 1 and payload["passed"] is False and payload["running"] is False
    slis = {s["key"]: s for s in payload["slis"]}  # type: ignore[attr-defined]
    assert set(slis) == set(SLI_KEYS)
    assert slis["http_429_ratio"] == {
        "key": "http_429_ratio",
        "label": "HTTP 429 ratio",
        "value": 0.3,
        "unit": "ratio",
        "op": "<=",
        "target": 0.02,
        "passed": False,
    }
    assert payload["summary"]["corruption_count"] == 3  # type: ignore[index]
    assert payload["targets"]["yield_pct_min"] == 85.0  # type: ignore[index]


def test_cli_targets_file_can_turn_fail_into_pass(
    crafted: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--targets oafetch.toml: looser targets make the failing run pass."""
    toml = tmp_path / "oafetch.toml"
    toml.write_text(
        "[slo]\nyield_pct_min = 50\nttfp_p50_ms_max = 5000\nttfp_p95_ms_max = 30000\n"
        "cache_hit_pct_min = 25\nrate_delay_p95_ms_max = 400\nhttp_429_ratio_max = 0.3\n"
        "breaker_opens_per_hour_max = 14\ncorruption_max = 3\n"
        "identity_mismatch_per_1k_max = 500\n"
    )
    argv = ["slo", "--db", str(crafted), "--run", "bad", "--targets", str(toml), "--json"]
    code, payload = _json(capsys, argv)
    assert code == 0 and payload["passed"] is True


def test_cli_latest_is_default(crafted: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Without --run (or with --latest) the newest run is judged."""
    _, default = _json(capsys, ["slo", "--db", str(crafted), "--json"])
    _, latest = _json(capsys, ["slo", "--db", str(crafted), "--latest", "--json"])
    assert default["run_id"] == latest["run_id"] == "live"


def test_cli_accepts_run_directory(crafted: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--db may name the run's output directory instead of its telemetry.sqlite."""
    assert main(["slo", "--db", str(crafted.parent), "--run", "good"]) == 0
    capsys.readouterr()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["slo", "--db", "{tmp}/nope.sqlite"], "telemetry store not found: {tmp}/nope.sqlite"),
        (
            ["slo", "--db", "{db}", "--run", "zzz"],
            "unknown run 'zzz' in {db}; runs in this store (newest first): live (running), "
            "sparse (finished), bad (finished), good (finished)",
        ),
        (
            ["slo", "--db", "{db}", "--targets", "{tmp}/missing.toml"],
            "cannot read SLO targets file {tmp}/missing.toml",
        ),
        (["slo", "--db", "{db}", "--run", "good", "--latest"], "not allowed with argument"),
        (["slo"], "the following arguments are required: --db"),
        ([], "the following arguments are required: COMMAND"),
    ],
)
def test_cli_usage_errors_exit_2(
    crafted: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    message: str,
) -> None:
    """Usage errors exit 2 with a message on stderr saying what is wrong."""
    fill = {"tmp": str(tmp_path), "db": str(crafted)}
    assert main([a.format(**fill) for a in argv]) == 2
    assert message.format(**fill) in capsys.readouterr().err


def test_cli_not_a_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A file that is not an oafetch store is a usage error, said plainly."""
    other = tmp_path / "other.sqlite"
    other.write_bytes(b"this is not a database, just text" * 100)
    assert main(["slo", "--db", str(other)]) == 2
    assert "cannot read telemetry store" in capsys.readouterr().err


def test_cli_empty_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A store without runs is a usage error."""
    import sqlite3

    db = tmp_path / "telemetry.sqlite"
    with contextlib.closing(sqlite3.connect(db)) as conn:
        conn.executescript(store.schema_sql())
    assert main(["slo", "--db", str(db)]) == 2
    assert "has no runs yet" in capsys.readouterr().err


def test_register_adds_the_telemetry_group(
    crafted: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """register() plugs the group into a parent parser; handlers are args.func(args) -> int."""
    import argparse

    from oafetch.telemetry.analytics_cli import register

    parser = argparse.ArgumentParser(prog="oafetch")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["telemetry", "slo", "--db", str(crafted), "--run", "good"])
    assert args.func(args) == 0
    for command in ("query", "export", "serve"):
        with pytest.raises(SystemExit):
            parser.parse_args(["telemetry", command, "--help"])
    capsys.readouterr()
