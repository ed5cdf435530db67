"""Errors with one-line messages naming the file and the problem; the CLI prints them as they are.

They derive from gru4rec.errors.GRU4RecError, the project's one base of user-facing errors, so a
workflow job reports either package's errors the same way.
"""

from gru4rec.errors import GRU4RecError


class PreprocessingError(GRU4RecError):
    """Bad raw input, a bad configuration, or nothing left after filtering."""


class DownloadError(PreprocessingError):
    """Raw files could not be fetched; the message says which file to place where."""
