"""Many SSE watchers of one deployment, in a process of their own (bench/scale.py starts it).

Each watcher is one signed `GET /v1/deployments/{id}/events` (Server-Sent Events) on its own
connection, read to its end. Prints `{"connected": N, "at": t}` once every watcher has its
response headers, then, when every stream has ended, writes to --out one JSON document:
`{"watchers": [{"connected": t, "events": [[id, type, t_received], ...], "error": str|null}],
"cpu_s": this process's CPU seconds}` (a watcher process near 100 % CPU would delay what it
measures: bench/scale.py spreads the watchers over several processes and reports their CPU).

    python bench/scale_watchers.py --url URL --secret-file F --deployment ID --watchers 500 --out F
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from dispatcher.core import signing


class Stamps:
    """Strictly rising signature timestamps: no two watchers share a signature."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last = 0.0

    def next(self) -> float:
        with self._lock:
            self._last = max(time.time(), self._last + 1e-6)
            return self._last


async def watch(
    client: httpx.AsyncClient,
    url: str,
    secret: bytes,
    stamps: Stamps,
    record: dict[str, Any],
    connected: asyncio.Event,
    count: list[int],
    total: int,
) -> None:
    headers = {**signing.sign(secret, b"", stamps.next()), "Accept": "text/event-stream"}
    try:
        async with client.stream("GET", url, headers=headers) as response:
            response.raise_for_status()
            record["connected"] = time.time()
            count[0] += 1
            if count[0] == total:
                connected.set()
            event_id: int | None = None
            kind = ""
            async for line in response.aiter_lines():
                if line.startswith("id:"):
                    event_id = int(line[3:].strip())
                elif line.startswith("event:"):
                    kind = line[6:].strip()
                elif line == "" and event_id is not None:
                    record["events"].append([event_id, kind, time.time()])
                    event_id, kind = None, ""
    except (httpx.HTTPError, ValueError) as e:
        record["error"] = f"{type(e).__name__}: {e}"
        count[0] += 1
        if count[0] == total:
            connected.set()


async def run(args: argparse.Namespace) -> None:
    secret = args.secret_file.read_text().strip().encode()
    url = f"{args.url}/v1/deployments/{args.deployment}/events"
    stamps = Stamps()
    records: list[dict[str, Any]] = [
        {"connected": None, "events": [], "error": None} for _ in range(args.watchers)
    ]
    connected = asyncio.Event()
    count = [0]
    limits = httpx.Limits(max_connections=args.watchers + 10, max_keepalive_connections=0)
    timeout = httpx.Timeout(connect=60, read=None, write=60, pool=None)
    async with httpx.AsyncClient(limits=limits, timeout=timeout, trust_env=False) as client:
        tasks = [
            asyncio.create_task(
                watch(client, url, secret, stamps, rec, connected, count, args.watchers)
            )
            for rec in records
        ]
        await connected.wait()
        print(json.dumps({"connected": count[0], "at": time.time()}), flush=True)
        await asyncio.gather(*tasks)
    cpu = sum(os.times()[:2])
    args.out.write_text(json.dumps({"watchers": records, "cpu_s": cpu}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--secret-file", type=Path, required=True)
    parser.add_argument("--deployment", required=True)
    parser.add_argument("--watchers", type=int, default=500)
    parser.add_argument("--out", type=Path, required=True)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
