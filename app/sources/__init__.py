"""Source adapters: raw telemetry records in, canonical events out (Faust-free)."""
