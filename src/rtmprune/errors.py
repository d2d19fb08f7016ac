"""The one exception type that the CLI shows to users as a single line (no traceback)."""

__all__ = ["RtmpruneError"]


class RtmpruneError(Exception):
    """A user-facing error: bad input, a bad file, a bad config value.

    The message must name the file, key or value at fault and fit on one line.
    """
