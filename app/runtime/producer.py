"""The worker's Kafka producer, for records Vigil encodes and partitions itself."""

from __future__ import annotations

from typing import Any


def kafka_producer(faust_app: Any) -> Any:
    """The worker's aiokafka producer itself: the one Faust's `Producer.send` hands a record
    to when it has no transactional id, as outputs and changelog records here have not.
    Faust's wrapper adds, per record, a signal (`on_produce_message`), header and timestamp
    handling and the re-wrapping of Kafka errors (~2 % of a worker's samples), for records that
    carry no headers and no timestamp of their own."""
    return faust_app.producer._ensure_producer()
