"""Errors the user can act on. The CLI prints them as one line, never as a traceback."""


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message, or its type name when it has none."""
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


class KitError(Exception):
    """A problem the user can fix; its message is the whole story, on one line."""


class ConfigError(KitError):
    """A configuration value is not allowed (found before any run is created)."""


class DataError(KitError):
    """The input data cannot be used: missing file, unknown column, unsupported target."""


class StorageError(KitError):
    """The artifact or output store cannot be used: no bucket, no access, no endpoint."""
