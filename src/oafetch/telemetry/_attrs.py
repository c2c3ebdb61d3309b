"""Setting attributes that are already valid on a live SDK span, without re-validating them.

``Span.set_attributes`` runs every value through the SDK's validation
(``_clean_attribute_value``: type dispatch, sequence checks, truncation) under two locks. For the
few attributes oafetch sets on every span — identity strings stamped at start, the facts the
request/response hooks copy — that costs more than the rest of the work (measured: the stamping
``on_start`` 38 → 12 µs per span). The values are plain ``str``/``bool``/``int``/``float``, checked
by the caller, so they go straight into the span's attribute dict, with the SDK's own semantics
kept: the span must be live (attributes not yet frozen), no value-length limit may be configured
(``OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT`` would truncate strings), the attribute-count limit must
leave room (else the SDK's oldest-first eviction applies), and a key that exists moves to the end
as with the SDK. Anything else — another SDK version, a non-SDK span, a configured limit — takes
``span.set_attributes``.

Imports nothing from the SDK: the hot path stays API-only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from opentelemetry.util.types import AttributeValue

__all__ = ["set_valid_attributes"]


def set_valid_attributes(span: Any, attributes: Mapping[str, AttributeValue]) -> None:
    """``span.set_attributes(attributes)`` for values that are already valid primitives.

    Only for values of type ``str``, ``bool``, ``int`` or ``float`` and non-empty ``str`` keys;
    the caller guarantees it. Thread-safety: for a span that only the calling thread mutates at
    that moment (a span being started, or the CLIENT span inside its own request), as in oafetch.
    """
    bounded = getattr(span, "_attributes", None)
    inner = getattr(bounded, "_dict", None)
    if (
        type(inner) is dict
        and getattr(bounded, "_immutable", True) is False
        and getattr(bounded, "max_value_len", 0) is None
    ):
        maxlen = getattr(bounded, "maxlen", 0)
        if maxlen is None or len(inner) + len(attributes) <= maxlen:
            if not inner.keys().isdisjoint(attributes):
                for key in attributes:  # the SDK re-inserts an existing key at the end
                    inner.pop(key, None)
            inner.update(attributes)
            return
    span.set_attributes(attributes)
