"""unfold: the last exception of a traceback folded into a message, as torch's DataLoader folds it."""

from __future__ import annotations

import traceback

from rtmprune.tracebacks import FoldedError, unfold


def _folded(raise_it) -> str:
    """The text torch's ExceptionWrapper puts into the re-raised exception's message."""
    try:
        raise_it()
    except Exception as err:
        text = "".join(traceback.format_exception(type(err), err, err.__traceback__))
        return f"Caught {type(err).__name__} in DataLoader worker process 0.\nOriginal {text}"
    raise AssertionError("did not raise")


def test_chained_and_multi_line_messages():
    def chained():
        try:
            {}["missing"]
        except KeyError:
            raise ValueError("bad annotation 3:\n  keypoints: 'x'") from None

    def caused():  # two tracebacks in the text: the last one is the exception raised
        try:
            raise OSError("first")
        except OSError as err:
            raise RuntimeError("second: with a colon") from err

    assert unfold(_folded(chained)) == FoldedError("ValueError", "bad annotation 3: keypoints: 'x'")
    assert unfold(_folded(caused)) == FoldedError("RuntimeError", "second: with a colon")


def test_no_traceback_and_no_message():
    assert unfold("an ordinary message: with a colon") is None

    def bare():
        raise StopIteration

    assert unfold(_folded(bare)) == FoldedError("StopIteration", "")
