"""Notices: the one way the engine tells the user something happened (a load, a take-over, a repair).

Every notice is one line on stderr, so that stdout carries only a command's results (``--json`` stays
parseable), and only rank 0 speaks under torchrun (eight copies of one line say nothing more).
"""

from __future__ import annotations

import sys

from rtmprune.engine import dist

__all__ = ["say"]


def say(line: str) -> None:
    """Print ``line`` on stderr (rank 0 only)."""
    if dist.is_main():
        print(line, file=sys.stderr, flush=True)
