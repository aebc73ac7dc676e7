"""Send pipeline outputs to their downstream topics (shared by every agent)."""

from __future__ import annotations

from collections.abc import Iterable

from app.faust_app import output_topics
from app.outputs import Output


async def send_outputs(outputs: Iterable[Output]) -> None:
    """Send each output to its logical topic, keyed as the logic chose."""
    for out in outputs:
        await output_topics[out.topic].send(key=out.key, value=out.value)
