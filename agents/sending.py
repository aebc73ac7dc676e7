"""Send pipeline outputs to their downstream topics (shared by every agent)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from app.faust_app import output_topics
from app.outputs import Output


async def send_outputs(outputs: Iterable[Output]) -> None:
    """Send each output to its logical topic, keyed as the logic chose (no wait for acks)."""
    for out in outputs:
        await output_topics[out.topic].send(key=out.key, value=out.value)


async def send_and_confirm(outputs: Iterable[Output]) -> None:
    """Send the outputs and wait until the broker acknowledged every one of them.

    Used before committing the state writes that produced them: a crash can then repeat an
    output (same id) but never lose one.
    """
    pending = [await output_topics[out.topic].send(key=out.key, value=out.value) for out in outputs]
    if pending:
        await asyncio.gather(*pending)
