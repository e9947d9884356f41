"""Exceptions with one-line messages that name the file and the fix."""

from __future__ import annotations


class EyepurifyError(Exception):
    """Base class: the CLI prints ``str(err)`` on one line and exits non-zero."""


class DataError(EyepurifyError):
    """A bad input file (corrupt, wrong format, wrong size, unknown labels)."""

    def __init__(self, path: object, problem: str, fix: str = "") -> None:
        self.path = str(path)
        self.problem = problem
        self.fix = fix
        msg = f"{self.path}: {problem}"
        if fix:
            msg += f" ({fix})"
        super().__init__(msg.replace("\n", " "))


class WeightsError(EyepurifyError):
    """Model weights missing, of the wrong shape or failing a checksum."""
