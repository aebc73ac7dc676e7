"""`vigil worker` with the sink agents, for tests/integration/test_alertmanager_sink.py.

Until app/main.py imports agents.sinks, the sink agents are only registered when something
imports them; this entry point does, then runs the same worker as `vigil worker`.
"""

from __future__ import annotations

import sys

from agents import sinks as _sinks  # noqa: F401  (registers the sink agents)
from app.main import app

if __name__ == "__main__":
    sys.argv = ["vigil", "worker", "--loglevel", "info"]
    app.main()
