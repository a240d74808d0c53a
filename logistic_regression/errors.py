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


class Interrupted(BaseException):
    """A signal asked the process to stop: Ctrl-C (SIGINT), a scheduler or CI (SIGTERM), a
    closed terminal (SIGHUP). Not an Exception, so no `except Exception` swallows it; the
    run ends KILLED and the process exits with 128 + the signal's number."""

    def __init__(self, signum: int) -> None:
        import signal

        self.signum = signum
        self.run_id = ""  # the run it ended, once `tracking.runs.active_run` ended it
        self.spool = ""  # the spool folder that keeps the run's files not yet stored
        self.unlogged = ""  # or that keeps only files the run wrote but never logged
        super().__init__(f"interrupted by {signal.Signals(signum).name}")
