"""The one exception of the data layer."""

from __future__ import annotations

__all__ = ["DataError"]


class DataError(ValueError):
    """A problem with the user's data or with how it was described (columns, policies, sizes).

    The message is one line that stands on its own: it names the file, the column, the row (and
    the file line for CSV) and what was expected against what was found, so that the CLI can print
    `str(err)` and exit with status 2.

    Example:
        >>> str(DataError("data.csv: column 'co2', row 16 (line 18): 'abc' is not a number"))
        "data.csv: column 'co2', row 16 (line 18): 'abc' is not a number"
    """

    def __init__(self, message: str) -> None:
        # Messages are built from user data (values, column names): keep them on one line.
        super().__init__(" ".join(str(message).splitlines()))
