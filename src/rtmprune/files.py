"""Atomic file writes: a crash or a kill never leaves a half-written checkpoint, log or JSON behind."""

from __future__ import annotations

import json
import os
import re
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rtmprune.errors import RtmpruneError

__all__ = [
    "TEMP_FILE_PATTERN", "atomic_write", "atomic_write_text", "atomic_write_json", "read_json", "remove_file",
]


# The temporary file of ``atomic_write``: ``.NAME.XXXXXXXX.tmp`` beside NAME (mkstemp's 8 random characters).
TEMP_FILE_PATTERN = re.compile(r"^\..+\.[A-Za-z0-9_]{8}\.tmp$")


def _umask() -> int:
    """The process umask, read without changing it where Linux allows (``os.umask`` is a set-and-return)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _mode_for(path: Path) -> int:
    """The mode ``open(path, "w")`` would give: an existing file keeps its own, a new one 0666 & ~umask."""
    try:
        return stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        return 0o666 & ~_umask()


def _sync_dir(folder: Path) -> None:
    """Make a rename durable: callers order multi-file saves (best.pth before last.pth) and rely on it."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # not every platform opens folders
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: str | os.PathLike, write: Callable[[str], Any]) -> Path:
    """Call ``write(tmp_path)`` on a temporary file beside ``path``, fsync it, then rename over ``path``.

    The file gets the mode any other tool would give it (mkstemp creates 0600, which is not what users expect
    of a checkpoint or a log): an existing file's mode, else 0666 filtered by the umask.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        os.chmod(tmp, _mode_for(path))
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _sync_dir(path.parent)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def remove_file(path: str | os.PathLike) -> None:
    """Delete ``path`` if it exists, durably: a later write in the same folder cannot outlive the deletion."""
    path = Path(path)
    try:
        path.unlink()
    except FileNotFoundError:
        return
    _sync_dir(path.parent)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)

    return atomic_write(path, write)


def atomic_write_json(path: str | os.PathLike, obj: Any, indent: int | None = 1) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=indent) + "\n")


def read_json(path: str | os.PathLike, what: str = "JSON file") -> Any:
    """Parse a JSON file; a missing or unreadable one is a one-line ``RtmpruneError`` naming it."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise RtmpruneError(f"{what} not found: {path}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise RtmpruneError(f"{path}: not a readable {what} ({' '.join(str(err).split())})") from None
