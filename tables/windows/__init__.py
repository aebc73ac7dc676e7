"""Event-time windows per series, closed by the watermark, feeding the anomaly detectors."""
