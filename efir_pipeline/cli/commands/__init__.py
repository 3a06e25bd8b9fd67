"""The subcommands of ``efir-pipeline``, one module per area; each ``register`` adds its
parsers to the command line with their handlers."""
