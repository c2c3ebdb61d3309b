"""Sampling that governs export, never the local store.

oafetch's own ``TracerProvider`` samples every span (``ALWAYS_ON``): each one becomes schema
rows. ``OTEL_TRACES_SAMPLER[_ARG]`` then decides what the *exporters* (OTLP, console) receive:
:class:`ExportSampler` wraps their span processor and passes on only spans of traces the
configured sampler keeps. The decision is made once per trace, at its first span, by the
configured SDK sampler (so ``traceidratio`` keeps the same traces any other process with the
same ratio keeps, and ``parentbased_*`` follows a remote parent's sampled flag — ``TRACEPARENT``
or an application's span); every later span of that trace follows it.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import TYPE_CHECKING

from opentelemetry import trace
from opentelemetry.context import Context, get_current
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.sdk.trace import sampling as sdk_sampling

if TYPE_CHECKING:
    from oafetch.telemetry.otel_env import Sampling

#: Trace decisions remembered (a work's trace is short-lived; older ones are decided again,
#: identically for every built-in sampler).
MAX_TRACES = 65_536


def sampler_for(setting: Sampling) -> sdk_sampling.Sampler:
    """The SDK sampler ``OTEL_TRACES_SAMPLER[_ARG]`` names."""
    ratio = sdk_sampling.TraceIdRatioBased(setting.ratio)
    root: dict[str, sdk_sampling.Sampler] = {
        "always_on": sdk_sampling.ALWAYS_ON,
        "always_off": sdk_sampling.ALWAYS_OFF,
        "traceidratio": ratio,
        "parentbased_always_on": sdk_sampling.ParentBased(sdk_sampling.ALWAYS_ON),
        "parentbased_always_off": sdk_sampling.ParentBased(sdk_sampling.ALWAYS_OFF),
        "parentbased_traceidratio": sdk_sampling.ParentBased(ratio),
    }
    return root[setting.name]


class ExportSampler(SpanProcessor):
    """Pass to ``inner`` (an exporting processor) only the spans of sampled traces."""

    def __init__(self, inner: SpanProcessor, sampler: sdk_sampling.Sampler) -> None:
        self._inner = inner
        self._sampler = sampler
        self._decisions: OrderedDict[int, bool] = OrderedDict()
        self._lock = threading.Lock()
        self.exported = 0
        self.sampled_out = 0

    def _decide(self, span: Span, parent_context: Context | None) -> bool:
        trace_id = span.context.trace_id
        with self._lock:
            known = self._decisions.get(trace_id)
        if known is not None:
            return known
        ctx = parent_context if parent_context is not None else get_current()
        parent = trace.get_current_span(ctx).get_span_context()
        if parent.is_valid and parent.trace_id == trace_id and not parent.is_remote:
            # a local parent whose trace was forgotten: decide as for the trace's root
            ctx = trace.set_span_in_context(trace.INVALID_SPAN, ctx)
        result = self._sampler.should_sample(
            ctx, trace_id, span.name, span.kind, span.attributes, span.links
        )
        keep = result.decision is sdk_sampling.Decision.RECORD_AND_SAMPLE
        with self._lock:
            self._decisions[trace_id] = keep
            while len(self._decisions) > MAX_TRACES:
                self._decisions.popitem(last=False)
        return keep

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        if self._decide(span, parent_context):
            self._inner.on_start(span, parent_context)

    def on_end(self, span: ReadableSpan) -> None:
        with self._lock:
            keep = self._decisions.get(span.context.trace_id, True)
        if keep:
            self.exported += 1
            self._inner.on_end(span)
        else:
            self.sampled_out += 1

    def shutdown(self) -> None:
        self._inner.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self._inner.force_flush(timeout_millis)
