"""One exception type for user mistakes, so the CLI can print one line and exit 2."""

from __future__ import annotations


class UserError(Exception):
    """A mistake the user can fix: the message says what is wrong and what to do.

    The CLI prints it as a single line on stderr with exit status 2 (no traceback
    unless ``--debug``). Library callers get an ordinary exception.
    """
