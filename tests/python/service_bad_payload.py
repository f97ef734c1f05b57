"""Calls a nats-actors service endpoint from Python with a payload it cannot decode.

Usage: service_bad_payload.py NATS_URL SUBJECT SERVICE_NAME
Prints {"code": ..., "error": ..., "body": ..., "info_type": ..., "subjects": [...]}: the error
headers of the reply, its body, and what $SRV.INFO.<name> says (read with plain nats-py).
"""
import asyncio
import json
import sys

import nats


async def main(url: str, subject: str, name: str) -> None:
    nc = await nats.connect(url, connect_timeout=5)
    reply = await nc.request(subject, b"{not json", timeout=5)
    headers = reply.headers or {}
    info = json.loads((await nc.request(f"$SRV.INFO.{name}", b"", timeout=5)).data)
    await nc.close()
    print(
        json.dumps(
            {
                "code": headers.get("Nats-Service-Error-Code"),
                "error": headers.get("Nats-Service-Error"),
                "body": reply.data.decode(),
                "info_type": info["type"],
                "subjects": [e["subject"] for e in info["endpoints"]],
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    asyncio.run(asyncio.wait_for(main(*sys.argv[1:4]), timeout=20))
