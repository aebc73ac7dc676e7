"""The event model at the bottom of the house: canonical events, event time and severities
(events.py), what a stage emits (outputs.py), and the vocabulary adapters and the domain share.

Nothing here imports Vigil; everything above (adapters in app/sources, the domain in tables)
may import it.
"""
