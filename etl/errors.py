"""Errors raised by the ETL layer.

The command line maps :class:`EtlInputError` to exit code 2 (bad input) and every other
exception to exit code 1, as INTERFACES.md requires.
"""

from __future__ import annotations


class EtlInputError(ValueError):
    """An input file is structurally unusable (unreadable, wrong format, missing required column).

    Row-level problems (a bad id, a rating out of range, a duplicate) never raise: those rows are
    quarantined with a reason instead. This error is for problems that make a whole file unusable.

    Args:
        file: path (or name) of the offending file.
        line: 1-based line number in that file (1 = header line); 0 when the problem is not tied
            to a line (e.g. the file cannot be opened).
        field: column / key concerned, or ``""`` when none.
        message: what is wrong, in words a shop operator can act on.
    """

    def __init__(self, file: str, line: int, field: str, message: str):
        self.file = str(file)
        self.line = int(line)
        self.field = str(field)
        self.message = str(message)
        where = f"{self.file}:{self.line}" if self.line else self.file
        what = f" field {self.field!r}:" if self.field else ""
        super().__init__(f"{where}:{what} {self.message}")


class DownloadError(RuntimeError):
    """A dataset file could not be downloaded, or its bytes do not match the pinned SHA-256."""
