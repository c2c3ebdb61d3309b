"""Run and work identity carried in the OpenTelemetry context.

The hot path attaches ``run_id``/``work_id``/``artifact_id`` as context values (API only); the
stamping span processor copies them onto every span at start, including the CLIENT spans that
the httpx instrumentation creates, so every schema row knows its run and work.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from opentelemetry import context as otel_context

from oafetch.telemetry import names

_KEYS = {
    "run_id": names.RUN_ID,
    "work_id": names.WORK_ID,
    "artifact_id": names.ARTIFACT_ID,
}


@contextmanager
def identity(**values: str | None) -> Iterator[None]:
    """Attach run/work identity (``run_id=``, ``work_id=``, ``artifact_id=``) for the block.

    Values that are ``None`` are left as they are. Thread-local, like all OpenTelemetry context:
    a worker thread must enter its own block.
    """
    ctx = otel_context.get_current()
    for key, value in values.items():
        if key not in _KEYS:
            raise TypeError(f"identity(): unknown key {key!r}; expected one of {sorted(_KEYS)}")
        if value is not None:
            ctx = otel_context.set_value(_KEYS[key], value, ctx)
    token = otel_context.attach(ctx)
    try:
        yield
    finally:
        otel_context.detach(token)


def current_identity(ctx: otel_context.Context | None = None) -> dict[str, str]:
    """The identity attributes present in ``ctx`` (default: the current context)."""
    found: dict[str, str] = {}
    for attr in _KEYS.values():
        value = otel_context.get_value(attr, ctx)
        if isinstance(value, str):
            found[attr] = value
    return found
