"""One run per work dir: a live holder refuses, a dead one's lock is taken over, a used dir needs --resume."""

from __future__ import annotations

import fcntl
import json
import os
import socket
import subprocess
import sys

import pytest

from rtmprune.engine.config import config_from_dict
from rtmprune.engine.work_dir import LOCK_NAME, claim_work_dir
from rtmprune.errors import RtmpruneError

# A second process that takes the lock of argv[1] and holds it until its stdin closes (or it is killed).
HOLDER = """
import sys
from rtmprune.engine.work_dir import WorkDirLock
lock = WorkDirLock(sys.argv[1], "prune")
lock.acquire()
print("locked", flush=True)
sys.stdin.read()
lock.release()
"""


def _cfg(work_dir):
    return config_from_dict({"work_dir": str(work_dir), "train": {"device": "cpu"}})


def _refusal(work_dir, resume: bool = False) -> str:
    """The one line with which a run in ``work_dir`` is refused."""
    with pytest.raises(RtmpruneError) as err, claim_work_dir(_cfg(work_dir), "train", resume):
        pass
    assert "\n" not in str(err.value)
    return str(err.value)


def _start_holder(work_dir):
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(work_dir)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    return holder


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_live_holder_refuses_and_a_killed_one_is_taken_over(tmp_path, capsys):
    holder = _start_holder(tmp_path)
    try:
        message = _refusal(tmp_path, resume=True)
        assert f"is in use by prune (pid {holder.pid} on {socket.gethostname()}, started " in message
        assert "another work_dir (--set work_dir=...)" in message
    finally:
        holder.kill()  # kill -9: no release, the lock file stays behind
        holder.wait()
    assert json.loads((tmp_path / LOCK_NAME).read_text())["pid"] == holder.pid
    with claim_work_dir(_cfg(tmp_path), "train", resume=True):
        mine = json.loads((tmp_path / LOCK_NAME).read_text())
        assert mine["pid"] == os.getpid() and mine["command"] == "train"
    notice = capsys.readouterr().err
    assert f"took over the lock of a run that is gone, prune (pid {holder.pid} " in notice
    assert not (tmp_path / LOCK_NAME).exists()  # released at the end


def test_a_holder_that_ended_releases_the_lock(tmp_path, capsys):
    holder = _start_holder(tmp_path)
    holder.stdin.close()
    holder.wait()
    assert not (tmp_path / LOCK_NAME).exists()
    with claim_work_dir(_cfg(tmp_path), "train", resume=False):
        pass
    assert "took over" not in capsys.readouterr().err


def test_without_flock_the_holder_is_judged_by_its_pid(tmp_path, monkeypatch, capsys):
    def no_flock(fd, operation):
        raise OSError(37, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_flock)
    lock = tmp_path / LOCK_NAME
    alive = {"pid": os.getppid(), "host": socket.gethostname(), "command": "finetune", "started": "then"}
    lock.write_text(json.dumps(alive))
    message = _refusal(tmp_path)
    assert f"in use by finetune (pid {os.getppid()} " in message
    assert message.endswith(f"if that run is gone, delete {lock}")
    dead = {**alive, "pid": _dead_pid()}
    lock.write_text(json.dumps(dead))
    with claim_work_dir(_cfg(tmp_path), "train", resume=False):
        assert json.loads(lock.read_text())["pid"] == os.getpid()
    notice = capsys.readouterr().err
    assert f"took over the lock of a run that is gone, finetune (pid {dead['pid']} " in notice


def test_a_used_work_dir_needs_resume(tmp_path):
    (tmp_path / "last.pth").write_bytes(b"an earlier run")
    (tmp_path / "log.jsonl").write_text("{}\n")
    assert _refusal(tmp_path) == (f"work_dir {tmp_path} already holds a run (last.pth, log.jsonl): "
                                  "continue it with --resume, or start afresh in another work_dir "
                                  "(--set work_dir=...)")
    assert not (tmp_path / LOCK_NAME).exists()  # the refused run does not keep the lock
    entered = []
    with claim_work_dir(_cfg(tmp_path), "train", resume=True):
        entered.append(True)
    assert entered == [True]
    (tmp_path / "last.pth").unlink()
    assert _refusal(tmp_path).endswith("(log.jsonl) but no last.pth to resume from: use another work_dir "
                                       "(--set work_dir=...), or remove those files")


def test_stale_temp_files_of_atomic_writes_are_removed(tmp_path, capsys):
    from rtmprune.files import atomic_write

    def killed(tmp):  # an atomic write interrupted while writing its temp file
        with open(tmp, "wb") as f:
            f.write(b"x" * 1000)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(tmp_path / "last.pth", killed)  # cleans up after itself: a kill -9 would not
    (tmp_path / ".last.pth.k3x_9q0a.tmp").write_bytes(b"x" * 3000)  # what a kill -9 leaves
    keep = [".hidden.tmp", "notes.tmp", ".last.pth.tmp", "data.json"]  # not atomic_write's pattern
    for name in keep:
        (tmp_path / name).write_text("user's")
    with claim_work_dir(_cfg(tmp_path), "train", resume=False):
        pass
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(keep)
    assert "removed 1 temp file(s) (0.0 MiB) left by an interrupted write" in capsys.readouterr().err


# Under torchrun: rank 0 alone takes the lock and decides; every rank then raises the same line or goes on.
RANKS = """
import json, os, sys
from rtmprune.engine import dist
from rtmprune.engine.config import config_from_dict
from rtmprune.engine.work_dir import LOCK_NAME, claim_work_dir
from rtmprune.errors import RtmpruneError
rank, work_dir = os.environ["RANK"], sys.argv[1]
# One write per line: under PYTHONUNBUFFERED, print writes the text and the newline apart, and two ranks'
# lines then interleave in the shared pipe (seen: "rank 1 ran, ...rank 0 ran, ...").
say = lambda line: os.write(1, (line + "\\n").encode())
cfg = config_from_dict({"work_dir": work_dir, "train": {"device": "cpu"}})
try:
    with claim_work_dir(cfg, "train", resume=sys.argv[2] == "resume"):
        holder = json.loads(open(os.path.join(work_dir, LOCK_NAME)).read())["pid"]
        say(f"rank {rank} ran, pid {os.getpid()}, lock held by pid {holder}")
        dist.barrier()  # rank 0 releases the lock on leaving: not before every rank has read it
except RtmpruneError as err:
    say(f"rank {rank} refused: {err}")
finally:
    dist.cleanup()  # as every command does: a process group left to exit can abort ("terminate called")
"""


@pytest.mark.dist
def test_under_torchrun_rank_0_decides_for_every_rank(tmp_path):
    (tmp_path / "ranks.py").write_text(RANKS)
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "last.pth").write_bytes(b"an earlier run")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}

    def torchrun(mode: str) -> list[str]:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               str(tmp_path / "ranks.py"), str(tmp_path / "run"), mode]
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        return sorted(line for line in done.stdout.splitlines() if line.startswith("rank "))

    refused = torchrun("fresh")
    assert [line[:16] for line in refused] == ["rank 0 refused: ", "rank 1 refused: "]
    assert refused[0][16:] == refused[1][16:] and "already holds a run (last.pth)" in refused[0]
    ran = torchrun("resume")
    assert [line[:11] for line in ran] == ["rank 0 ran,", "rank 1 ran,"]
    rank0_pid = ran[0].split("pid ")[1].split(",")[0]
    assert ran[0].endswith(f"lock held by pid {rank0_pid}") and ran[1].endswith(f"by pid {rank0_pid}")
    assert not (tmp_path / "run" / LOCK_NAME).exists()
