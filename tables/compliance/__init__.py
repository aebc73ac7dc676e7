"""Compliance: the rule pack and posture per control, and configuration drift."""
