"""gzip between nats-py and nats-actors, both ways.

Usage:
  compressed.py NATS_URL send SUBJECT REQUEST_SUBJECT
      publishes {"id": 7, "note": "x" * 4096} gzip-compressed (Content-Encoding: gzip) on
      SUBJECT, then requests REQUEST_SUBJECT with the same and prints the reply's JSON.
  compressed.py NATS_URL receive SUBJECT
      prints "ready", takes one message on SUBJECT and prints
      {"encoding": <its Content-Encoding>, "wire": <bytes on the wire>, "value": <its JSON>},
      gunzipping it as its header says.
"""
import asyncio
import gzip
import json
import sys

import nats


async def send(nc, subject: str, request_subject: str) -> None:
    body = gzip.compress(json.dumps({"id": 7, "note": "x" * 4096}).encode())
    headers = {"Content-Encoding": "gzip", "Content-Type": "application/json"}
    await nc.publish(subject, body, headers=headers)
    reply = await nc.request(request_subject, body, headers=headers, timeout=5)
    print(json.dumps(json.loads(reply.data)), flush=True)


async def receive(nc, subject: str) -> None:
    sub = await nc.subscribe(subject)
    await nc.flush()
    print("ready", flush=True)
    msg = await sub.next_msg(timeout=15)
    encoding = (msg.headers or {}).get("Content-Encoding")
    data = gzip.decompress(msg.data) if encoding == "gzip" else msg.data
    print(
        json.dumps({"encoding": encoding, "wire": len(msg.data), "value": json.loads(data)}),
        flush=True,
    )


async def main(url: str, mode: str, *args: str) -> None:
    nc = await nats.connect(url, connect_timeout=5)
    try:
        if mode == "send":
            await send(nc, *args)
        else:
            await receive(nc, *args)
    finally:
        await nc.close()


if __name__ == "__main__":
    asyncio.run(asyncio.wait_for(main(*sys.argv[1:]), timeout=30))
