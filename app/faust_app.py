"""The Faust app: one instance per worker process, configured entirely from app/settings/.

Only modules under agents/ and tables/definitions.py (and the web views) import this; the
processing logic never does. The app's topics are bound in app/faust_topics.py.
"""

from __future__ import annotations

from pathlib import Path

import faust
from faust.transport.producer import ProducerBuffer

from app.codecs import register_codecs
from app.runtime import eager_delivery, fetch_wait
from app.settings import Settings
from app.topics import TopicCatalog, kafka_partitioner

settings = Settings.from_env()
catalog = TopicCatalog(settings)
register_codecs()
Path(settings.datadir).mkdir(parents=True, exist_ok=True)  # Faust creates only the last level

app = faust.App(
    settings.app_id,
    broker=settings.broker_url,
    broker_credentials=settings.kafka.faust_credentials(),  # TLS/SASL: VIGIL_KAFKA_*
    store=settings.store,
    datadir=settings.datadir,
    web_bind=settings.web_bind,
    web_host=settings.web_host,
    web_port=settings.web_port,
    topic_partitions=settings.partitions,
    topic_replication_factor=settings.replicas,
    processing_guarantee=settings.processing_guarantee,
    key_serializer="utf8",
    value_serializer="orjson",
    # Bounded input buffers (docs/backpressure.md).
    stream_buffer_maxsize=settings.stream_buffer,
    # Batches of produced records (docs/performance.md): a linger, and batches of up to
    # 256 KiB per partition (Faust's 16 KiB is smaller than an average journal record).
    producer_linger=settings.producer_linger_ms / 1000,
    producer_max_batch_size=256 * 1024,
    # Kafka's default partitioner with each key's murmur2 remembered (pure Python, per record).
    producer_partitioner=kafka_partitioner,
    # Faust's /table/ endpoints serve table contents to anyone: off. Vigil's own API is authed.
    web_tables_enabled=False,
    web_graph_enabled=False,
    # /router/ lists workers and partitions to anyone: off. Vigil routes with app.router's
    # in-process methods (the assignor's metadata), never through these endpoints.
    web_router_enabled=False,
    autodiscover=False,
)

# The producer buffer's bound is a class attribute in Faust (one app per worker process).
ProducerBuffer.max_messages = settings.producer_buffer
# Fetched messages reach their streams without four tasks each (docs/performance.md).
eager_delivery.install(settings.eager_delivery)
# Partitions drained during a fetch's long poll, or while another partition's fetched records
# wait for their agent, are fetched again sooner (docs/performance.md).
fetch_wait.install(settings.fetch_max_wait_ms, settings.fetch_backoff_ms)
