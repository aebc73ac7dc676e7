"""Worker entry point: the Faust app with every agent, table and web view registered.

Run with `vigil worker` (or `faust -A app.main worker`).
"""

from __future__ import annotations

import asyncio

from agents import clock_ticks as _clock_ticks
from agents import control as _control
from agents import ingest as _ingest
from agents import process as _process
from agents import risk as _risk
from agents import sinks as _sinks
from app import metrics
from app.faust_app import app, settings
from app.runtime import gc_tuning
from app.web import views as _views
from app.worker_logging import restore_root_level

metrics.install(app, lean=settings.faust_sensor == "lean")


@app.task
async def _restore_root_log_level() -> None:
    """Undo Faust's DEBUG root logger once the worker runs (app/worker_logging.py)."""
    restore_root_level()


@app.task
async def _tune_garbage_collection() -> None:
    """Fewer young collections, full ones that scan only what is new (app/runtime/gc_tuning.py)."""
    if settings.gc_tuning:
        gc_tuning.install(asyncio.get_running_loop())


__all__ = ["_clock_ticks", "_control", "_ingest", "_process", "_risk", "_sinks", "_views", "app"]
