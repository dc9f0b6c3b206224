"""Error types shared by the whole package.

``UserError`` marks a problem with what the user asked for (a missing file, a bad
option, labels out of range). The CLI turns it into a one-line message and exit
code 2; the Python API lets it propagate. It subclasses ``ValueError`` so callers
that catch ``ValueError`` keep working.
"""

from __future__ import annotations


class UserError(ValueError):
    """Bad user input. The message names the parameter, its value, what is allowed and a fix."""


def bad_value(param: str, value: object, allowed: str, fix: str | None = None) -> UserError:
    """Build a ``UserError`` in the house style.

    >>> str(bad_value("--depth", 9, "0..7 for this model", "pass a smaller depth"))
    '--depth=9 is invalid: allowed is 0..7 for this model; pass a smaller depth'
    """
    msg = f"{param}={value!r} is invalid: allowed is {allowed}"
    if fix:
        msg += f"; {fix}"
    return UserError(msg)
