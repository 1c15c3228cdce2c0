"""CLI subcommands: thin parse-build-run wrappers over the library."""
