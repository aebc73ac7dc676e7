"""The event model's own vocabulary: pure helpers that adapters and the domain share.

Nothing here imports Vigil; everything above (adapters in app/sources, the domain in tables)
may import it.
"""
