"""Exceptions raised for user mistakes and training failures.

Every message is one line that names the file, column or parameter at fault
and what was expected; the CLI prints it without a traceback.
"""


class GRU4RecError(Exception):
    """Base class of the errors the CLI reports as one line."""


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
