"""MAQBOOL re-ranking: pairwise features (eqs 1-10), decision layer (PDL), re-ranker."""
