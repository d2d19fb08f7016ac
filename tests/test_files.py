"""Atomic writes get the mode any other tool gives a file; the log rewinds to a checkpoint's iteration."""

from __future__ import annotations

import json
import os
import stat
import subprocess

import pytest

from rtmprune.files import atomic_write_json, atomic_write_text
from rtmprune.jsonlog import JsonlLogger


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_new_files_follow_the_umask_like_touch(tmp_path, umask):
    old = os.umask(umask)
    try:
        atomic_write_text(tmp_path / "ours.txt", "x")
        subprocess.run(["touch", str(tmp_path / "touched.txt")], check=True)  # what other tools do
        assert _mode(tmp_path / "ours.txt") == _mode(tmp_path / "touched.txt") == 0o666 & ~umask
    finally:
        os.umask(old)


def test_an_overwritten_file_keeps_its_mode(tmp_path):
    path = tmp_path / "fix_subnet.json"
    path.write_text("{}")
    os.chmod(path, 0o640)
    atomic_write_json(path, {"units": {}})
    assert _mode(path) == 0o640 and json.loads(path.read_text()) == {"units": {}}


def test_the_log_rewinds_to_the_checkpoints_iteration(tmp_path):
    logger = JsonlLogger(tmp_path / "log.jsonl")
    for it in (1, 2, 3, 4):
        logger.log(mode="train", iteration=it)
    logger.log(mode="val", iteration=4, AP=0.5)
    with open(logger.path, "a") as f:
        f.write('{"mode": "train", "itera')  # a line cut by a kill
    assert logger.rewind(2) == 4
    assert [json.loads(line)["iteration"] for line in logger.path.read_text().splitlines()] == [1, 2]
    assert logger.rewind(2) == 0
