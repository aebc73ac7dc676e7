"""`make bench`'s Faust floor: the least one Faust agent hop costs on this broker.

One agent reads `FLOOR_SOURCE` (bytes), parses each record with orjson and sends it to
`FLOOR_SINK` with `await topic.send` (the naive agent of issue #10): no tables, no state, no
batching. With `FLOOR_BATCH=1` it takes batches instead (`stream.take_events`, up to 1,000
within 10 ms) and sends with `send_soon`, Faust's cheapest way to produce. Run as a worker
(`python scripts/bench_faust_floor.py worker`); `scripts/bench.py` times it from its first
record out. Vigil's rate is compared with this floor as well as with the raw aiokafka loop:
whatever Vigil adds on top of Faust, it cannot beat one such hop, and it makes about two.
"""

from __future__ import annotations

import os

import faust
import orjson

app = faust.App(
    os.environ["FLOOR_APP_ID"],
    broker=os.environ.get("FLOOR_BROKER", "kafka://127.0.0.1:9092"),
    store="memory://",
    datadir=os.environ.get("FLOOR_DATADIR", "var/bench/floor"),
    web_port=int(os.environ.get("FLOOR_WEB_PORT", "16300")),
    web_tables_enabled=False,
    topic_partitions=4,
    autodiscover=False,
)
source = app.topic(os.environ["FLOOR_SOURCE"], key_serializer="raw", value_serializer="raw")
sink = app.topic(os.environ["FLOOR_SINK"], key_serializer="raw", value_serializer="raw")


@app.agent(source)
async def forward(stream):
    """Parse each record and send it on, one `await send` per record (or batched)."""
    if os.environ.get("FLOOR_BATCH"):
        async for events in stream.take_events(1000, within=0.01):
            for event in events:
                sink.send_soon(key=event.key, value=orjson.dumps(_parsed(event.value)))
    else:
        async for event in stream.events():
            await sink.send(key=event.key, value=orjson.dumps(_parsed(event.value)))


def _parsed(value: bytes | None) -> object:
    try:
        return orjson.loads(value or b"")
    except orjson.JSONDecodeError:
        return {"raw": len(value or b"")}


if __name__ == "__main__":
    app.main()
