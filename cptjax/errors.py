"""The errors cptjax raises on purpose.

Bad input — an argument, a schedule, a law or fit file, a log — raises `InputError` (a
``ValueError``) whose message names the argument, file, column or row; bad *types* raise
`InputTypeError` (also a ``TypeError``). Anything else that escapes cptjax is a bug. The
command line relies on this split: it prints an ``InputError`` (or an ``OSError``) as one
``cptjax: error:`` line with exit code 2, and anything else as an internal error, exit code 1.
"""

from __future__ import annotations

__all__ = ["InputError", "InputTypeError", "DataError", "DataWarning", "FitError"]


class InputError(ValueError):
    """Bad input to cptjax; the message names the argument, file, column or row."""


class InputTypeError(InputError, TypeError):
    """An argument of the wrong type (also a ``TypeError``)."""


class DataError(InputError):
    """Bad user data in a log or run file; the message names the file, column and row."""


class FitError(InputError):
    """A fit that did not reach finite parameters and statistics (raised by ``fit(throw=True)``);
    its cause is the data (an LR in the wrong units, losses no law describes)."""


class DataWarning(UserWarning):
    """Data that was repaired (dropped rows, rebuilt LR) and how."""
