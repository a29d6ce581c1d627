"""The errors a stage reports as one line, and the exit status each one means."""


class ConfigError(ValueError):
    """A config value that cannot work; the message names the key and the fix. Exit 2."""


class DataError(ValueError):
    """Input data that cannot be used; the message names the dataset and the fix. Exit 2."""


class StageFailed(RuntimeError):
    """The stage ran but did not finish its work (e.g. training interrupted). Exit 1."""
