"""The errors a command reports as one line, and the exit status each one means."""


class BadInput(ValueError):
    """Input that cannot work (config, data, a baseline); the message names it and the fix. Exit 2."""


class ConfigError(BadInput):
    """A config value that cannot work; the message names the key and the fix."""


class DataError(BadInput):
    """Input data that cannot be used; the message names the dataset and the fix."""


class StageFailed(RuntimeError):
    """The command ran but its work failed (training interrupted, a metric regressed). Exit 1."""


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so that cleanup runs (cli.py installs it). Exit 143."""
