"""Re-ranking the database's top-K: the protocol every method implements, the factory
that builds one from config, and the methods themselves — ``maqbool`` (region
correlation + decision layer), ``landmarks`` (ConvNet landmarks) and the region
proposals they share (``regions``)."""
