"""Config fragments shared by tests."""

#: Single-frame ranking (sequence matching and standardisation off): for tests of the stages
#: that sequence matching composes with (brute-force orders, re-rankers, score scales).
SINGLE_FRAME = {"sequence_length": 1, "standardize_window": 0}
