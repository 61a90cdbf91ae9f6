"""The errors bad data raises, in a module light enough for launch.py to import
before TensorFlow: the command line turns them into one clear line, no traceback."""

from __future__ import annotations


class DataError(ValueError):
    """Data fer cannot use: the message names the file (and row or image) and why."""


class LayoutError(FileNotFoundError):
    """The manual download is missing or not in its publisher's layout."""


class LabelError(DataError):
    """A label outside the dataset's vocabulary (file and row in the message)."""


class CorruptFileError(DataError):
    """A file that cannot be read to its end (truncated or damaged compression)."""


class NothingSurvivedError(DataError):
    """Every example of a split was skipped; the message gives the first reasons."""


USER_ERRORS = (DataError, LayoutError)  # What a command reports in one line.
