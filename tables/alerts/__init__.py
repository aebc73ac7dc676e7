"""Alerts: Alertmanager-style dedup, grouping, silences, inhibition, scoring and notification."""
