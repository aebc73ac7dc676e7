"""Faust agents, one module per stage of the flow; thin adapters over the pure logic."""
