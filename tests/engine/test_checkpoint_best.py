"""reconcile_best: on resume, the best that last.pth records and the best.pth on disk are made to agree."""

from __future__ import annotations

import pytest
import torch

from rtmprune.engine.checkpoint import Progress, reconcile_best, save_state


def _checkpoint(path, epoch, best_ap, best_epoch, batch_in_epoch=0):
    state = {"state_dict": {"w": torch.full((2,), float(epoch))}, "optimizer": {}, "epoch": epoch,
             "iteration": 10 * epoch + batch_in_epoch, "batch_in_epoch": batch_in_epoch, "config": {},
             "meta": {}, "best": {"AP": best_ap, "epoch": best_epoch}}
    save_state(path, state)
    return Progress(epoch, state["iteration"], batch_in_epoch, best_ap, best_epoch)


def test_a_best_one_save_ahead_of_last_is_adopted(tmp_path):
    progress = _checkpoint(tmp_path / "last.pth", 2, 0.3, 1)  # killed after best.pth of epoch 3
    _checkpoint(tmp_path / "best.pth", 3, 0.5, 3)
    reconcile_best(tmp_path, progress)
    assert (progress.best_ap, progress.best_epoch) == (0.5, 3)


def test_a_missing_best_of_last_pths_epoch_is_re_created(tmp_path, capsys):
    progress = _checkpoint(tmp_path / "last.pth", 2, 0.3, 2)
    reconcile_best(tmp_path, progress)
    assert (tmp_path / "best.pth").read_bytes() == (tmp_path / "last.pth").read_bytes()
    assert (progress.best_ap, progress.best_epoch) == (0.3, 2)
    assert "was missing: re-created from" in capsys.readouterr().err


@pytest.mark.parametrize("best_file_epoch", [None, 1])  # missing, or holding an older epoch than recorded
def test_a_best_that_cannot_be_re_created_is_dropped_with_a_notice(tmp_path, capsys, best_file_epoch):
    progress = _checkpoint(tmp_path / "last.pth", 3, 0.3, 2, batch_in_epoch=4)
    if best_file_epoch is not None:
        _checkpoint(tmp_path / "best.pth", best_file_epoch, 0.1, best_file_epoch)
    reconcile_best(tmp_path, progress)
    assert (progress.best_ap, progress.best_epoch) == (None, None)  # the next validation writes best.pth
    assert "the best epoch 2 (AP 0.3000) recorded in" in capsys.readouterr().err


def test_an_agreeing_best_is_left_alone(tmp_path, capsys):
    progress = _checkpoint(tmp_path / "last.pth", 3, 0.3, 2)
    _checkpoint(tmp_path / "best.pth", 2, 0.3, 2)
    before = (tmp_path / "best.pth").read_bytes()
    reconcile_best(tmp_path, progress)
    assert (progress.best_ap, progress.best_epoch) == (0.3, 2)
    assert (tmp_path / "best.pth").read_bytes() == before and capsys.readouterr().out == ""
