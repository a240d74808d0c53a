"""Errors the user can act on. The CLI prints them as one line, never as a traceback."""

from __future__ import annotations


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
    run ends KILLED and the process exits with 128 + the signal's number.

    The owner of a run, once it has ended it, raises `ended(...)`: a new exception for the
    same stop that also says which run ended KILLED (`run_id`) and which spool folder
    keeps its files not yet stored (`kept`) or only files it never logged (`unlogged`)."""

    def __init__(self, signum: int, run_id: str = "", kept: str = "", unlogged: str = "") -> None:
        import signal

        self.signum, self.run_id, self.kept, self.unlogged = signum, run_id, kept, unlogged
        super().__init__(f"interrupted by {signal.Signals(signum).name}")

    def ended(self, run_id: str, kept: str = "", unlogged: str = "") -> Interrupted:
        """This stop, reported by the owner of run `run_id`, which ended it KILLED."""
        return Interrupted(self.signum, run_id, kept, unlogged).with_traceback(self.__traceback__)


# The stop signals this process received inside a `cli.stop_on_signals` block that has
# not ended yet. Process-wide, as signal handlers themselves are: the block records each
# one and forgets it when it ends. The owner of a run asks before it ends the run
# FINISHED (`lifecycle.open_run`): the Interrupted raised for a stop can be swallowed on
# its way up (a library's `except BaseException` without a raise), and a run must not
# then finish as if nothing had been asked.
_STOPS: list[int] = []


def record_stop(signum: int) -> None:
    _STOPS.append(signum)


def forget_stops(signums: list[int]) -> None:
    for signum in signums:
        if signum in _STOPS:
            _STOPS.remove(signum)


def raise_if_stopped() -> None:
    """Interrupted for the first stop received and not yet acted on to its end."""
    if _STOPS:
        raise Interrupted(_STOPS[0])
