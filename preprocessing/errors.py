"""Errors with one-line messages naming the file and the problem; the CLI prints them as they are."""


class PreprocessingError(Exception):
    """Bad raw input, a bad configuration, or nothing left after filtering."""


class DownloadError(PreprocessingError):
    """Raw files could not be fetched; the message says which file to place where."""
