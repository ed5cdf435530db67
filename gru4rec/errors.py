"""Exceptions raised for user mistakes and training failures.

GRU4RecError is the base of every error the project reports as one line (the preprocessing and
experiment packages derive theirs from it): each message names the file, column or parameter at
fault and what was expected, and the command lines print it without a traceback.
"""


class GRU4RecError(Exception):
    """Base class of the errors reported as one line (also of preprocessing's errors)."""


class ParameterError(GRU4RecError, ValueError):
    """A training or evaluation parameter is unknown or has a bad value."""


class DataError(GRU4RecError, ValueError):
    """An input file or DataFrame is missing, malformed or empty."""


class TrainingDivergedError(GRU4RecError, RuntimeError):
    """The loss became NaN or infinite; the model is not usable."""


def first_line(e: BaseException) -> str:
    """The first line of an exception's message (parsers' messages run to several lines), or its type."""
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__
