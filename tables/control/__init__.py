"""Control: silence and policy commands applied to state, and their audit chain."""
