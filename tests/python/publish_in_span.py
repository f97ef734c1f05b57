"""Publishes one message inside an OpenTelemetry span, with W3C trace context in the headers.

Usage: publish_in_span.py NATS_URL SUBJECT
Prints {"trace_id": ..., "span_id": ...} of its span (hex), then exits.
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
    with tracer.start_as_current_span("py-publish", kind=trace.SpanKind.PRODUCER) as span:
        headers: dict = {}
        propagate.inject(headers)
        await nc.publish(subject, b'{"from":"python"}', headers=headers)
        ctx = span.get_span_context()
    await nc.flush()
    await nc.close()
    print(json.dumps({"trace_id": format(ctx.trace_id, "032x"), "span_id": format(ctx.span_id, "016x")}), flush=True)


if __name__ == "__main__":
    asyncio.run(asyncio.wait_for(main(sys.argv[1], sys.argv[2]), timeout=20))
