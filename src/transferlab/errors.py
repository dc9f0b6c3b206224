"""Error types shared by the whole package.

``UserError`` marks a problem with what the user asked for (a missing file, a bad
option, labels out of range). The CLI turns it into a one-line message and exit
code 2; the Python API lets it propagate. It subclasses ``ValueError`` so callers
that catch ``ValueError`` keep working. ``TrialsFailed`` (a ``UserError``) says that every
trial of a sweep or study failed, with the count and each kind of cause; the CLI exits 3.
"""

from __future__ import annotations


class UserError(ValueError):
    """Bad user input. The message names the parameter, its value, what is allowed and a fix."""


class TrialsFailed(UserError):
    """Every trial of a sweep or study failed: the message gives how many and the first
    error of each kind (``54 of 54 trials failed: RuntimeError: ...``). CLI exit code 3,
    so a script tells "my trials crashed" from "my options were wrong" (2); when every
    failure is itself a ``UserError`` (bad input found inside the trials, e.g. a target
    the source cannot read) the code stays 2, as for the same check made up front."""

    exit_code = 3

    def __init__(self, message: str, exit_code: int = 3) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def bad_value(param: str, value: object, allowed: str, fix: str | None = None) -> UserError:
    """Build a ``UserError`` in the house style.

    >>> str(bad_value("--depth", 9, "0..7 for this model", "pass a smaller depth"))
    '--depth=9 is invalid: allowed is 0..7 for this model; pass a smaller depth'
    """
    msg = f"{param}={value!r} is invalid: allowed is {allowed}"
    if fix:
        msg += f"; {fix}"
    return UserError(msg)
