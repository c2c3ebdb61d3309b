"""The shape of oafetch's traces: a run span, and one trace per work linked to it.

A batch of 10⁶ works as one trace cannot be opened in Jaeger or Tempo; OpenTelemetry's
convention for batch processing is one trace per item, with a span link to the batch. So:

- the ``oafetch.run`` span is the child of whatever the caller's context holds (an application
  span), or else of ``TRACEPARENT``/``TRACESTATE`` in the environment (the specification's
  environment carrier: a CI job or a workflow engine that launched the process), or a root;
- each ``oafetch.work`` span starts a trace of its own with a link to the run span — unless
  ``fetch()`` was called inside an application span, which then is its parent (link kept);
- a work parked for a host's next slot and resumed later continues its own trace: the resumed
  work span is the child of the parked one, so one work is one trace whatever the scheduling.

Only the OpenTelemetry API is used; the identity entries of the context (run/work ids) are kept
when a work starts its own trace, so the stamping processor still finds them.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import (
    INVALID_SPAN,
    Link,
    NonRecordingSpan,
    Span,
    SpanContext,
    TraceFlags,
)
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

#: The environment carrier's variables (the specification's names, upper case).
ENV_TRACEPARENT = "TRACEPARENT"
ENV_TRACESTATE = "TRACESTATE"
#: Attribute on the work span's link that says what it points to.
LINK_KIND = "oafetch.link"


def _has_span(ctx: Context) -> bool:
    return trace.get_current_span(ctx).get_span_context().is_valid


def run_parent(environ: Mapping[str, str] | None = None) -> Context:
    """The context the run span starts in: the caller's span, else ``TRACEPARENT``, else none.

    A malformed ``TRACEPARENT`` is ignored, as the specification asks of propagators.
    """
    ctx = otel_context.get_current()
    if _has_span(ctx):
        return ctx
    env = os.environ if environ is None else environ
    carrier = {
        name.lower(): env[name] for name in (ENV_TRACEPARENT, ENV_TRACESTATE) if env.get(name)
    }
    if "traceparent" not in carrier:
        return ctx
    return TraceContextTextMapPropagator().extract(carrier, context=ctx)


def caller_context() -> Context | None:
    """The calling thread's context if it holds a span (``fetch()`` inside an app span)."""
    ctx = otel_context.get_current()
    return ctx if _has_span(ctx) else None


def work_parent(
    run_span: Span, *, caller: Context | None = None, resumed_from: SpanContext | None = None
) -> tuple[Context, list[Link]]:
    """The context a work span starts in, and its links.

    Args:
        run_span: the run's span (linked, never the parent).
        caller: the caller's context when the work is fetched inside an application span.
        resumed_from: the span context of the work's parked span, when it is resumed.

    Returns:
        (parent context, links): identity entries of the current context are kept.
    """
    ctx = otel_context.get_current()
    if resumed_from is not None and resumed_from.is_valid:
        parent = trace.set_span_in_context(NonRecordingSpan(resumed_from), ctx)
    elif caller is not None and _has_span(caller):
        parent = trace.set_span_in_context(trace.get_current_span(caller), ctx)
    else:
        parent = trace.set_span_in_context(INVALID_SPAN, ctx)  # a trace of its own
    run = run_span.get_span_context()
    links = [Link(run, {LINK_KIND: "run"})] if run.is_valid else []
    return parent, links


def new_trace_carrier() -> dict[str, str]:
    """W3C trace headers for every shard of an engine's run: the caller's span, ``TRACEPARENT``,
    or a fresh trace id, so all of a run's shards (and their works) share one trace."""
    carrier: dict[str, str] = {}
    propagator = TraceContextTextMapPropagator()
    propagator.inject(carrier, context=run_parent())
    if "traceparent" not in carrier:
        span = NonRecordingSpan(
            SpanContext(
                trace_id=int.from_bytes(secrets.token_bytes(16), "big") or 1,
                span_id=int.from_bytes(secrets.token_bytes(8), "big") or 1,
                is_remote=True,
                trace_flags=TraceFlags(TraceFlags.SAMPLED),
            )
        )
        propagator.inject(carrier, context=trace.set_span_in_context(span))
    return carrier
