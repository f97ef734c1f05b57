"""Receives one message and continues its trace: extracts the W3C context from the headers and
starts a CONSUMER span under it.

Usage: consume_in_span.py NATS_URL SUBJECT
Prints "ready" once subscribed, then {"trace_id": ..., "parent_span_id": ...} (hex) of its span.
"""
import asyncio
import json
import sys

import nats
from opentelemetry import propagate, trace
from opentelemetry.sdk.trace import TracerProvider


async def main(url: str, subject: str) -> None:
    trace.set_tracer_provider(TracerProvider())
    tracer = trace.get_tracer("python-interop")
    nc = await nats.connect(url, connect_timeout=5)
    sub = await nc.subscribe(subject)
    await nc.flush()
    print("ready", flush=True)
    msg = await sub.next_msg(timeout=15)
    parent = propagate.extract(msg.headers or {})
    with tracer.start_as_current_span("py-process", context=parent, kind=trace.SpanKind.CONSUMER) as span:
        ctx = span.get_span_context()
        parent_id = span.parent.span_id if span.parent else 0
    await nc.close()
    print(json.dumps({"trace_id": format(ctx.trace_id, "032x"), "parent_span_id": format(parent_id, "016x")}), flush=True)


if __name__ == "__main__":
    asyncio.run(asyncio.wait_for(main(sys.argv[1], sys.argv[2]), timeout=20))
