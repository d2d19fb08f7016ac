"""One run per work dir: an exclusive lock, and no new run on top of an earlier one without ``--resume``.

``train``, ``prune`` and ``finetune`` run inside ``claim_work_dir(cfg, command, resume)``. On rank 0 it

1. locks ``work_dir/.rtmprune.lock``: an ``flock`` held for the whole run (the kernel drops it when the
   process dies, however it dies), the file naming the holder (pid, host, start time, command). A lock
   held by a live run refuses this one, naming the holder; a lock left by a run that is gone is taken over
   with a notice. Where ``flock`` is unsupported, the holder counts as gone when it ran on this host and
   its pid is gone;
2. refuses a work dir that already holds a run (``last.pth``, ``log.jsonl``, ...) unless ``resume``: logs
   would interleave and checkpoints mix two runs;
3. removes the temp files a killed atomic write left (``.NAME.XXXXXXXX.tmp``; up to a checkpoint's size).

Every rank then receives rank 0's verdict, so under torchrun all ranks raise the same line or all go on.
The lock is released when the run ends (removed only while it is still ours).
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rtmprune.engine import dist
from rtmprune.engine.config import Config
from rtmprune.engine.notices import say
from rtmprune.errors import RtmpruneError
from rtmprune.files import TEMP_FILE_PATTERN

__all__ = ["LOCK_NAME", "RUN_FILES", "WorkDirLock", "claim_work_dir", "remove_stale_temp_files"]

LOCK_NAME = ".rtmprune.lock"
# What an earlier run leaves behind; any of them makes the work dir "used".
RUN_FILES = ("last.pth", "best.pth", "log.jsonl", "prune_log.jsonl")


def _holder_line(holder: dict[str, Any]) -> str:
    return (f"{holder.get('command', '?')} (pid {holder.get('pid', '?')} on {holder.get('host', '?')}, "
            f"started {holder.get('started', '?')})")


def _pid_gone(holder: dict[str, Any]) -> bool:
    """True when the holder ran on this host and its process no longer exists."""
    pid = holder.get("pid")
    if holder.get("host") != socket.gethostname() or not isinstance(pid, int):
        return False
    if pid == os.getpid():  # a container restarted with the same pid: that run is gone
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    return False


class WorkDirLock:
    """The exclusive lock of one work dir (``acquire`` / ``release``); see the module docstring."""

    def __init__(self, work_dir: str | os.PathLike, command: str) -> None:
        self.path = Path(work_dir) / LOCK_NAME
        self.command = command
        self._fd: int | None = None

    def acquire(self) -> str | None:
        """Take the lock; returns a notice when it took over a dead run's lock. ``RtmpruneError`` if held."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            while True:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
                holder = self._lock_or_refuse(fd)
                if os.path.exists(self.path) and os.path.samestat(os.fstat(fd), os.stat(self.path)):
                    break
                os.close(fd)  # the holder removed the file between our open and our lock: try the new one
            self._fd = fd
            self._write_holder(fd)
        except OSError as err:
            where = f"work_dir {self.path.parent}"
            raise RtmpruneError(f"{where}: cannot take the lock {self.path} ({err})") from None
        if holder:
            return f"{self.path}: took over the lock of a run that is gone, {_holder_line(holder)}"
        return None

    def _lock_or_refuse(self, fd: int) -> dict[str, Any] | None:
        """Lock ``fd`` (the file stays as it is); the previous holder's record, or the refusal."""
        holder = _read_holder(fd)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise self._refusal(holder) from None
        except OSError:  # no flock on this file system (some network ones): judge the holder by its pid
            if holder and not _pid_gone(holder):
                os.close(fd)
                raise self._refusal(holder, by_pid=True) from None
        return _read_holder(fd)

    def _refusal(self, holder: dict[str, Any] | None, by_pid: bool = False) -> RtmpruneError:
        who = _holder_line(holder) if holder else "another process (starting up)"
        gone = f"; if that run is gone, delete {self.path}" if by_pid else ""
        return RtmpruneError(f"work_dir {self.path.parent} is in use by {who}: wait for it to end, or use "
                             f"another work_dir (--set work_dir=...){gone}")

    def _write_holder(self, fd: int) -> None:
        record = {"pid": os.getpid(), "host": socket.gethostname(), "command": self.command,
                  "started": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
        data = (json.dumps(record) + "\n").encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, data, 0)
        os.fsync(fd)

    def release(self) -> None:
        """Remove the lock file while still holding it (so no one else can have taken it), then unlock."""
        if self._fd is None:
            return
        try:
            if (_read_holder(self._fd) or {}).get("pid") == os.getpid():
                self.path.unlink(missing_ok=True)
        finally:
            os.close(self._fd)  # closing drops the flock
            self._fd = None


def _read_holder(fd: int) -> dict[str, Any] | None:
    try:
        text = os.pread(fd, 4096, 0).decode("utf-8", "replace").strip()
        record = json.loads(text) if text else None
    except (OSError, json.JSONDecodeError):
        return None
    return record if isinstance(record, dict) else None


def _used_refusal(work_dir: Path) -> RtmpruneError | None:
    """Why a fresh run may not start in ``work_dir`` (it holds an earlier run), or None."""
    found = [name for name in RUN_FILES if (work_dir / name).is_file()]
    if not found:
        return None
    held = f"work_dir {work_dir} already holds a run ({', '.join(found)})"
    if "last.pth" in found:
        return RtmpruneError(f"{held}: continue it with --resume, or start afresh in another work_dir "
                             "(--set work_dir=...)")
    return RtmpruneError(f"{held} but no last.pth to resume from: use another work_dir "
                         "(--set work_dir=...), or remove those files")


def remove_stale_temp_files(work_dir: Path) -> str | None:
    """Delete what a killed ``atomic_write`` left in ``work_dir`` (only our own ``.NAME.XXXXXXXX.tmp``)."""
    stale = [p for p in work_dir.iterdir() if p.is_file() and TEMP_FILE_PATTERN.match(p.name)]
    size = 0
    for path in stale:
        size += path.stat().st_size
        path.unlink(missing_ok=True)
    if not stale:
        return None
    mib = size / 2**20
    return f"{work_dir}: removed {len(stale)} temp file(s) ({mib:.1f} MiB) left by an interrupted write"


def _claim_on_main(lock: WorkDirLock, work_dir: Path, resume: bool) -> str | None:
    """Rank 0's part: lock, check, clean. Returns the refusal's message (the lock then released) or None."""
    try:
        notice = lock.acquire()
        refusal = None if resume else _used_refusal(work_dir)
        if refusal is not None:
            lock.release()
            raise refusal
    except RtmpruneError as err:
        return str(err)
    for line in (notice, remove_stale_temp_files(work_dir)):
        if line:
            say(line)
    return None


@contextmanager
def claim_work_dir(cfg: Config, command: str, resume: bool) -> Iterator[None]:
    """Hold ``cfg.work_dir`` for one ``command`` run (see the module docstring); collective under torchrun."""
    work_dir = Path(cfg.work_dir)
    info = dist.setup(cfg.train.device)
    lock = WorkDirLock(work_dir, command)
    refusal = _claim_on_main(lock, work_dir, resume) if info.is_main else None
    refusal = dist.broadcast_object(refusal)
    if refusal is not None:
        raise RtmpruneError(str(refusal))
    try:
        yield
    finally:
        lock.release()
