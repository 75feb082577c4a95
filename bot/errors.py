"""The project's own small error hierarchy, raised at layer boundaries.

Each message starts with the layer that raised it (``config:``, ``fetch:``,
``storage:``) so a log line says where a problem came from without a traceback.
"""

from __future__ import annotations


class NewsbotError(Exception):
    """Base of every error newsbot raises on purpose."""


class ConfigError(NewsbotError):
    """The configuration file is missing, unreadable or invalid."""

    def __str__(self) -> str:
        return f"config: {self.args[0]}" if self.args else "config: invalid"


class StorageError(NewsbotError):
    """The database could not do what was asked (wraps sqlite3 errors)."""


class FetchError(NewsbotError):
    """A feed could not be retrieved.

    ``retry_after`` carries a server-requested delay in seconds (429/503);
    ``permanent`` marks failures that will not heal by retrying soon (410).
    """

    def __init__(
        self, message: str, *, retry_after: float | None = None, permanent: bool = False
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.permanent = permanent


class ParseError(NewsbotError):
    """A fetched body is not a feed (an HTML page, an empty or garbage body)."""


class InputError(NewsbotError):
    """Input from an operator or a user that names nothing or is refused: a
    feed URL that is not http(s), an unknown feed or category, an OPML file
    that is hostile or not OPML. The message says which."""
