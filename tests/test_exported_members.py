"""The public API of ``oafetch`` is pinned so it cannot drift silently."""

import oafetch


def test_all_is_pinned_and_sorted() -> None:
    assert oafetch.__all__ == sorted(oafetch.__all__)
    assert oafetch.__all__ == [
        "Candidate",
        "Config",
        "ConfigError",
        "DedupeAction",
        "DownloadResult",
        "Downloader",
        "FallbackOutcome",
        "FetchError",
        "IdKind",
        "InputError",
        "Kind",
        "OafetchError",
        "Outcome",
        "OutputDirLocked",
        "Reason",
        "Resolver",
        "ResolverError",
        "Role",
        "Status",
        "Work",
        "WorkIds",
        "__version__",
        "parse_work",
        "read_input",
    ]
    for name in oafetch.__all__:
        assert hasattr(oafetch, name), name
