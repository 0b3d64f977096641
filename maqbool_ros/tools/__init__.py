"""The ``maqbool`` command line: one importable ``main()`` per subcommand (eval, fit,
export, train-pdl, build-vocab, bag, demo, dump-config), options built from the config
schema."""
