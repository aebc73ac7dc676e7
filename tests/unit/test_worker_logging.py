"""The worker's root logger level (app/worker_logging.py)."""

from __future__ import annotations

import logging

from faust.utils.terminal.spinners import Spinner, SpinnerHandler

from app.worker_logging import restore_root_level


def test_root_logger_goes_back_to_the_worker_level_after_the_spinner() -> None:
    """Faust leaves the root logger at DEBUG for its spinner; the worker restores the level."""
    root = logging.Logger("root-under-test")
    default = logging.StreamHandler()
    default.setLevel(logging.WARNING)
    root.addHandler(default)
    root.addHandler(SpinnerHandler(Spinner(), level=logging.DEBUG))
    root.setLevel(logging.DEBUG)  # what faust.worker.Worker._setup_spinner_handler does
    assert restore_root_level(root) == logging.WARNING
    assert root.handlers == [default]
    assert not root.isEnabledFor(logging.DEBUG)
