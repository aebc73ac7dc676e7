"""The runtime: what runs the stages, apart from what they compute.

Offsets, acknowledgements and commits, the step journal and its recovery, records read or
sent again, the partition clocks and the timers that follow them. The stages (tables/) get an
event and their state and return outputs; they never see an offset.
"""
