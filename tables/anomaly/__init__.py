"""Anomaly detection: the online metric and rate detectors that score a series."""
