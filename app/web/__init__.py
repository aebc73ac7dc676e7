"""Vigil's web view, served by each worker's own Faust web server."""
