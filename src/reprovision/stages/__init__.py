"""The six pipeline stages; each module: plain functions, then add_arguments() and run()."""
