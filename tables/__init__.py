"""State: one package per capability (the Faust-free logic that updates its tables) and the
Faust table definitions (definitions.py)."""
