"""Errors with one-line messages naming the file and the problem; the CLI prints them as they are."""


class PreprocessingError(Exception):
    """Bad raw input, a bad configuration, or nothing left after filtering."""


class DownloadError(PreprocessingError):
    """Raw files could not be fetched; the message says which file to place where."""


def first_line(e: BaseException) -> str:
    """The first line of an exception's message (Arrow's and the APIs' run to several lines), or its type."""
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__
