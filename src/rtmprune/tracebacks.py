"""Recover an exception's own message when its whole traceback was folded into another exception's message.

torch's DataLoader re-raises a worker's exception in the main process with the worker's traceback as the
message ("Caught RtmpruneError in DataLoader worker process 0.\\nOriginal Traceback (most recent call last):
..."). Users must see the line they would see with ``num_workers: 0``: the loader (``data/loader.py``) and
the CLI's error printer (``cli.py``) both read it back with ``unfold``.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["FoldedError", "unfold"]

_HEADER = "Traceback (most recent call last):"


@dataclass(frozen=True)
class FoldedError:
    type_name: str  # the class name of the exception that was raised, without its module
    message: str  # its message, whitespace folded onto one line


def unfold(text: str) -> FoldedError | None:
    """The last exception of the traceback inside ``text``; None when ``text`` holds no traceback.

    A chained traceback ("During handling of the above exception ...") ends with the exception that was
    raised last, so only the text after the last header counts. Its frames are the indented lines; the first
    line that is not indented starts ``module.Type: message`` (the message may run over several lines).
    """
    start = text.rfind(_HEADER)
    if start < 0:
        return None
    lines = text[start + len(_HEADER) :].splitlines()
    tail = next((i for i, line in enumerate(lines) if line and not line[0].isspace()), None)
    if tail is None:
        return None
    head, _, message = "\n".join(lines[tail:]).partition(":")
    return FoldedError(head.strip().rsplit(".", 1)[-1], " ".join(message.split()))
