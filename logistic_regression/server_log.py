"""Why the team server did not start, read from its log: one line for the kit's error."""

from __future__ import annotations

import re

# A Python exception's last line: `ValueError: ...`, `sqlalchemy.exc.OperationalError: ...`.
_EXCEPTION_LINE = re.compile(
    r"^(?:[A-Za-z_]\w*\.)*[A-Za-z_]\w*(?:Error|Exception|Exit|Failure|Refused)\b(?::|$)"
)
_ERROR_LINE = re.compile(r"\b(?:ERROR|CRITICAL|FATAL)\b|\bError\b|error:")


_CHAINED = ("During handling of the above exception", "The above exception was the direct")


def cause_from_log(text: str) -> str:
    """The line of a server log that says why it did not start: the exception that ended
    its first traceback (the last of a chain: the one MLflow raised about it), else its
    first error line, else its last line. Never the shutdown lines that follow."""
    lines = [line.rstrip() for line in text.splitlines() if line.strip()]
    start = next((i for i, line in enumerate(lines) if line.startswith("Traceback (")), None)
    if start is not None:
        cause = ""
        for line in lines[start:]:
            if _EXCEPTION_LINE.match(line):
                cause = line
            elif not (line.startswith((" ", "\t", "Traceback (")) or line.startswith(_CHAINED)):
                break
        if cause:
            return cause
    for line in lines:
        if _ERROR_LINE.search(line):
            return line
    return lines[-1] if lines else "(nothing in the log)"
