"""Worker entry point: the Faust app with every agent, table and web view registered.

Run with `vigil worker` (or `faust -A app.main worker`).
"""

from __future__ import annotations

from agents import control as _control
from agents import ingest as _ingest
from agents import process as _process
from agents import risk as _risk
from agents import sinks as _sinks
from app import metrics
from app.faust_app import app
from app.web import views as _views

metrics.install(app)

__all__ = ["_control", "_ingest", "_process", "_risk", "_sinks", "_views", "app"]
