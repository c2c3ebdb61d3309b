"""Prometheus' own checks, run on what oafetch serves: ``promtool check metrics`` (names, units,
types) and ``promtool test rules`` (PromQL evaluated on given series, exact comparison).

``promtool`` comes with the Debian package ``prometheus`` (``apt-get install -y prometheus``);
tests that need it are skipped, with that reason, when it is missing.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

PROMTOOL = shutil.which("promtool")

needs_promtool = pytest.mark.skipif(
    PROMTOOL is None,
    reason="promtool not found: install the Debian package 'prometheus' "
    "(apt-get install -y prometheus) to check the exposition with Prometheus' own linter",
)


def check_metrics(text: str) -> tuple[int, str]:
    """``promtool check metrics`` on an exposition: its exit code and everything it printed."""
    assert PROMTOOL is not None
    done = subprocess.run(
        [PROMTOOL, "check", "metrics"],
        input=text.encode(),
        capture_output=True,
        timeout=60,
        check=False,
    )
    return done.returncode, (done.stdout + done.stderr).decode().strip()


def samples(text: str, names: Iterable[str]) -> list[tuple[str, dict[str, str], float]]:
    """The samples of ``text`` whose name is one of ``names``: (name, labels, value)."""
    wanted = set(names)
    return [
        (s.name, dict(s.labels), s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name in wanted
    ]


def _selector(name: str, labels: Mapping[str, str]) -> str:
    inner = ",".join(f"{k}={json.dumps(v)}" for k, v in sorted(labels.items()))
    return f"{name}{{{inner}}}"


def evaluate(
    tmp: Path,
    series: Iterable[tuple[str, Mapping[str, str], float]],
    expectations: Iterable[tuple[str, Mapping[tuple[tuple[str, str], ...], float]]],
) -> tuple[int, str]:
    """Evaluate PromQL on ``series`` (one value each, at t = 0) with ``promtool test rules``.

    Args:
        tmp: a directory for the test file.
        series: (name, labels, value) of every input series.
        expectations: (expression, {sorted label items: value}) pairs; every result must be
            listed, and values compare exactly (write them as Python floats: ``repr`` and Go's
            ``ParseFloat`` agree to the bit).

    Returns:
        promtool's exit code (0: every expression gave exactly what was expected) and output.
    """
    assert PROMTOOL is not None
    test = {
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [
                    {"series": _selector(name, labels), "values": repr(float(value))}
                    for name, labels, value in series
                ],
                "promql_expr_test": [
                    {
                        "expr": expr,
                        "eval_time": "0m",
                        "exp_samples": [
                            {"labels": _selector("", dict(key)), "value": float(value)}
                            for key, value in sorted(expected.items())
                        ],
                    }
                    for expr, expected in expectations
                ],
            }
        ],
    }
    path = tmp / "promql_test.yml"
    path.write_text(yaml.safe_dump(test, sort_keys=False))
    done = subprocess.run(
        [PROMTOOL, "test", "rules", str(path)], capture_output=True, timeout=60, check=False
    )
    return done.returncode, (done.stdout + done.stderr).decode().strip()
