"""Entities: the per-entity activity summary."""
