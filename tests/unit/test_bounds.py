"""Memory bounds configured from settings (docs/backpressure.md)."""

from __future__ import annotations

import pytest

from app.settings import Settings


def test_rocksdb_tables_get_bounded_memtables_and_cache():
    options = Settings.from_env(
        {"VIGIL_ROCKSDB_WRITE_BUFFER_MB": "2", "VIGIL_ROCKSDB_BLOCK_CACHE_MB": "16"}
    ).store_options()
    assert options["write_buffer_size"] == 2 * 1024 * 1024
    assert options["max_write_buffer_number"] == 2
    assert options["block_cache_size"] == 16 * 1024 * 1024
    assert Settings.from_env({"VIGIL_STORE": "memory://"}).store_options() == {}


def test_every_table_opens_with_those_options():
    from app.faust_app import app, settings
    from tables import definitions  # noqa: F401  (registers the tables)

    assert settings.store.startswith("rocksdb:")  # the default store
    for table in app.tables.values():
        options = table.data.rocksdb_options
        assert options.block_cache_size == settings.rocksdb_block_cache_mb * 1024**2, table.name
        assert options.write_buffer_size == settings.rocksdb_write_buffer_mb * 1024**2
    assert app.conf.stream_buffer_maxsize == settings.stream_buffer
    assert app.producer.buffer.max_messages == settings.producer_buffer == 2000


@pytest.mark.parametrize(
    "env",
    [
        {"VIGIL_STREAM_BUFFER": "0"},
        {"VIGIL_PRODUCER_BUFFER": "0"},
        {"VIGIL_ROCKSDB_WRITE_BUFFER_MB": "0"},
        {"VIGIL_ROCKSDB_BLOCK_CACHE_MB": "-1"},
        {"VIGIL_TABLE_CACHE_KEYS": "-1"},
    ],
)
def test_a_bound_below_one_is_refused_with_its_name(env):
    with pytest.raises(ValueError, match=next(iter(env))):
        Settings.from_env(env)
