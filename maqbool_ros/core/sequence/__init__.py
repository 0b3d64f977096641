"""Sequence matching (SeqSLAM-style line search over runs of stored keyframes), descriptor
standardisation and the stage that merges both into the pipeline (docs/sequence.md)."""
