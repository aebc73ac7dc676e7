"""Risk: signals, per-subject risk scores, deployment scorecards and the change gate."""
