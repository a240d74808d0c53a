"""Errors the user can act on. The CLI prints them as one line, never as a traceback."""


class KitError(Exception):
    """A problem the user can fix; its message is the whole story, on one line."""


class ConfigError(KitError):
    """A configuration value is not allowed (found before any run is created)."""


class DataError(KitError):
    """The input data cannot be used: missing file, unknown column, unsupported target."""
