"""Configuration: one precedence (flags > env > file > defaults), frozen, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from oafetch.config import Config
from oafetch.errors import ConfigError
from oafetch.rates import parse_rate


def test_precedence_flags_over_env_over_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    file = tmp_path / "oafetch.toml"
    file.write_text(
        'mailto = "file@x.org"\nworkers = 3\n[http]\nread_timeout_s = 11\n'
        '[rates]\n"api.crossref.org" = "1/3s"\n'
    )
    monkeypatch.setenv("OAFETCH_WORKERS", "5")
    monkeypatch.setenv("OAFETCH_HTTP__CONNECT_TIMEOUT_S", "7")
    config = Config.load(file, mailto="flag@x.org")
    assert config.mailto == "flag@x.org"  # flag beats file
    assert config.workers == 5  # env beats file
    assert config.http.read_timeout_s == 11 and config.http.connect_timeout_s == 7
    assert config.rate_policy("api.crossref.org").interval_s == pytest.approx(3.0)


def test_config_is_frozen() -> None:
    config = Config()
    with pytest.raises(ValueError):
        config.workers = 4  # type: ignore[misc]


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"rates": {"api.crossref.org": "-1/s"}}, "api.crossref.org"),
        ({"workers": 0}, "workers"),
        ({"http": {"read_timout_s": 3}}, "did you mean 'read_timeout_s'"),
        ({"mailto": "not-an-email"}, "mailto"),
        ({"retry": {"attempts": 0}}, "retry.attempts"),
        ({"download": {"accept": []}}, "download.accept"),
    ],
)
def test_bad_values_name_the_key_rule_and_value(kwargs: dict[str, object], needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        Config.load(None, **kwargs)
    assert needle in str(info.value)


def test_bad_toml_file_is_reported_with_its_path(tmp_path: Path) -> None:
    file = tmp_path / "bad.toml"
    file.write_text("workers = = 3\n")
    with pytest.raises(ConfigError, match=r"bad\.toml"):
        Config.load(file)


@pytest.mark.parametrize(
    ("text", "intervals"),
    [("10/s", [0.1]), ("1/3s", [3.0]), ("60/min, 2000/h", [1.0, 1.8]), ("1/2.5s", [2.5])],
)
def test_rate_strings(text: str, intervals: list[float]) -> None:
    policy = parse_rate(text)
    assert [round(w.interval_s, 3) for w in policy.windows] == intervals


@pytest.mark.parametrize("text", ["fast", "0/s", "10/fortnight", "-2/s", ""])
def test_bad_rate_strings(text: str) -> None:
    with pytest.raises(ValueError):
        parse_rate(text)


def test_user_agent_carries_mailto() -> None:
    assert "mailto:me@x.org" in Config(mailto="me@x.org").user_agent
