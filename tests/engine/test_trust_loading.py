"""Loads that say what they loaded, artifacts that say what they are: each fault injected, each refusal seen.

Issue 11 classes 1 (silent partial loads), 2 (artifacts that lie), 4 (a resume of a finished prune) and 6 (a
latency profile reused for another model, input or thread count).
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

from rtmprune.cli import main
from rtmprune.engine import recipes
from rtmprune.engine.config import load_config
from rtmprune.engine.finetune_recipe import finetune, resolve_pruned_path
from rtmprune.engine.latency_profile import PROFILE, module_times_for, profile_identity
from rtmprune.engine.model_loading import load_model_from_checkpoint
from rtmprune.engine.prune_recipe import prune
from rtmprune.engine.recipes import build_from_config, load_initial_weights, train
from rtmprune.errors import RtmpruneError
from rtmprune.models import build_model, load_checkpoint, save_checkpoint
from rtmprune.pruning import GroupFisherPruner
from shared_paths import ROOT

CONFIG = ROOT / "configs" / "synthetic" / "rtmpose-t_synthetic-128x96.yaml"
SIZE = (64, 64)  # (w, h)


def _prune_config(data_root: Path, work_dir: Path, *extra: str):
    """RTMPose-T at 64x64 on the tiny set, pruned 8 channels a step to 97 % of the FLOPs (a few seconds)."""
    return load_config(CONFIG, [
        f"work_dir={work_dir}", f"data_root={data_root}", "model.input_size=[64,64]", "data.batch_size=4",
        "data.num_workers=0", "train.max_epochs=50", "train.val_interval=1000", "train.warmup_iters=2",
        "train.deterministic=true", "train.device=cpu", "train.log_interval=1", "prune.interval=1",
        "prune.divisor=8", "prune.target_flop_ratio=0.97", "prune.input_shape=[1,3,64,64]", *extra,
    ])


def _first_mismatch(mine: dict, theirs: dict) -> tuple[str, tuple, tuple]:
    """The first key of ``mine`` (model order) whose shape differs in ``theirs``: the expected error."""
    key = next(k for k, v in mine.items() if tuple(theirs[k].shape) != tuple(v.shape))
    return key, tuple(theirs[key].shape), tuple(mine[key].shape)


def _tree_bytes(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.fixture(scope="module")
def finished(tiny_set, tmp_path_factory):
    """One finished prune: (config, result)."""
    cfg = _prune_config(tiny_set, tmp_path_factory.mktemp("prune") / "run")
    result = prune(cfg)
    assert result.done and result.checkpoint is not None
    return cfg, result


# ---------------------------------------------------------------------------------- class 1: partial loads


@pytest.mark.parametrize("other", [{"num_keypoints": 26}, {"input_size": (96, 64)}])
@pytest.mark.parametrize("recipe", ["train", "prune"])
def test_a_checkpoint_of_another_head_is_refused_naming_key_and_shapes(tiny_set, tmp_path, other, recipe):
    theirs = build_model("rtmpose-t", **{"input_size": SIZE, **other}).state_dict()
    path = save_checkpoint(tmp_path / "other.pth", theirs)
    cfg = _prune_config(tiny_set, tmp_path / "work")
    if recipe == "train":
        cfg.model.checkpoint = str(path)
    else:
        cfg.prune.pretrained_path = str(path)
    mine = build_model("rtmpose-t", input_size=SIZE).state_dict()
    key, file_shape, model_shape = _first_mismatch(mine, theirs)
    expected = rf"{re.escape(key)} has shape {re.escape(str(file_shape))} in the file but " \
        rf"{re.escape(str(model_shape))} in the model.*checkpoint_prefix"
    with pytest.raises(RtmpruneError, match=expected):
        train(cfg) if recipe == "train" else prune(cfg)
    assert not (tmp_path / "work").exists()  # refused before anything was written


def test_prefix_loads_the_backbone_and_says_what_it_skipped(tiny_set, tmp_path, capsys):
    theirs = build_model("rtmpose-t", num_keypoints=26, input_size=SIZE).state_dict()
    path = save_checkpoint(tmp_path / "k26.pth", theirs)
    cfg = _prune_config(tiny_set, tmp_path / "work")
    cfg.model.checkpoint_prefix = "backbone."
    fresh = build_from_config(cfg).state_dict()  # what the head keeps: the seeded initialisation
    model = build_from_config(cfg)
    capsys.readouterr()
    load_initial_weights(model, path, cfg.model.checkpoint_prefix)
    got = model.state_dict()
    backbone = [k for k in theirs if k.startswith("backbone.")]
    assert all(torch.equal(got[k], theirs[k]) for k in backbone)
    assert all(torch.equal(got[k], fresh[k]) for k in got if not k.startswith("backbone."))
    lines = capsys.readouterr().err.strip().splitlines()
    head = len(theirs) - len(backbone)
    assert f"{len(backbone)} tensors loaded" in lines[-1] and "prefix 'backbone.'" in lines[-1]
    assert f"{head} tensors of the file skipped (head.*)" in lines[-1]
    assert f"{head} tensors of the model kept as initialised (head.*)" in lines[-1]


@pytest.mark.parametrize("prefix", ["backbone", ".", ""])
def test_a_prefix_that_names_no_module_is_refused(prefix):
    with pytest.raises(RtmpruneError, match=r"'model\.checkpoint_prefix' must name a module and end with"):
        load_config(CONFIG, [f"model.checkpoint_prefix={prefix!r}"])


@pytest.mark.parametrize(
    "fault, message",
    [
        ("extra", r"1 unexpected keys \(first: neck\.extra\.weight, \(3,\) in the file\)"),
        ("missing", r"1 missing keys \(first: head\.cls_y\.weight, \(\d+, \d+\) in the model\)"),
    ],
)
def test_a_tensor_left_out_on_either_side_is_refused(tmp_path, fault, message):
    state = build_model("rtmpose-t", input_size=SIZE).state_dict()
    if fault == "extra":
        state["neck.extra.weight"] = torch.zeros(3)
    else:
        state.pop("head.cls_y.weight")
    path = save_checkpoint(tmp_path / f"{fault}.pth", state, {"arch": "rtmpose-t", "input_size": list(SIZE)})
    loaders = [
        lambda: load_initial_weights(build_model("rtmpose-t", input_size=SIZE), path),  # train, prune
        lambda: load_model_from_checkpoint(path),  # test, info, predict, deploy, finetune, ...
        lambda: load_checkpoint(build_model("rtmpose-t", input_size=SIZE), path),  # the library call
    ]
    for load in loaders:
        with pytest.raises(RtmpruneError, match=message):
            load()


def test_a_pruned_checkpoint_is_no_starting_point(finished, tmp_path):
    cfg, result = finished
    model = build_model("rtmpose-t", input_size=SIZE)
    with pytest.raises(RtmpruneError, match=r"is pruned \(meta\.subnet\)"):
        load_initial_weights(model, result.checkpoint)


@pytest.mark.parametrize("key, value", [("model.input_size", "[96,64]"), ("model.num_keypoints", "26")])
def test_finetune_and_test_refuse_a_checkpoint_the_data_would_not_fit(finished, tmp_path, key, value):
    cfg, result = finished
    other = _prune_config(Path(cfg.data_root), tmp_path / "ft", f"{key}={value}",
                          f"finetune.pruned_path={cfg.work_dir}")
    held = r"holds rtmpose-t for input \[64, 64\] \(w, h\) with 17 keypoints, but .* has model\.input_size"
    with pytest.raises(RtmpruneError, match=held):
        finetune(other)
    with pytest.raises(RtmpruneError, match=held):
        recipes.test(other, result.checkpoint)  # rtmprune test
    assert not (tmp_path / "ft").exists()


def test_every_load_says_what_it_loaded(finished, tmp_path, capsys):
    _, result = finished
    state = build_model("rtmpose-t", input_size=SIZE).state_dict()
    plain = save_checkpoint(tmp_path / "plain.pth", state, {"arch": "rtmpose-t"})
    capsys.readouterr()
    load_model_from_checkpoint(plain)
    load_model_from_checkpoint(result.checkpoint, divisor=16)
    units = len(result.subnet["units"])
    assert capsys.readouterr().err.splitlines() == [
        f"loaded {plain}: rtmpose-t (17 keypoints, input 64x64), no subnet, {len(state)} tensors",
        f"loaded {result.checkpoint}: rtmpose-t (17 keypoints, input 64x64), subnet from meta.subnet "
        f"({units} units, padded to multiples of 16), {len(state)} tensors",
    ]


def test_a_config_subnet_that_contradicts_the_file_is_named(finished, capsys):
    _, result = finished
    name, unit = next((n, u) for n, u in result.subnet["units"].items() if len(u["kept"]) < u["channels"])
    unpruned = {**unit, "kept": list(range(unit["channels"]))}
    other = {"format": result.subnet["format"], "units": {name: unpruned}}
    capsys.readouterr()
    model, meta = load_model_from_checkpoint(result.checkpoint, fix_subnet=other)
    assert meta["subnet"] == result.subnet  # the file describes itself; the config's subnet is not used
    notice = f"{result.checkpoint}: its meta.subnet is used; the given fix_subnet describes another structure"
    assert notice in capsys.readouterr().err
    load_model_from_checkpoint(result.checkpoint, fix_subnet=result.subnet)
    assert "another structure" not in capsys.readouterr().err


# ---------------------------------------------------------------------------------- class 2: artifacts


def _masked_reference(path: Path, subnet: dict) -> tuple[torch.nn.Module, torch.nn.Module]:
    """(the masked network the prune trained, the same weights unmasked), built without the loading path."""
    full = build_model("rtmpose-t", input_size=SIZE)
    full.load_state_dict(torch.load(path, weights_only=True)["state_dict"])
    masked = build_model("rtmpose-t", input_size=SIZE)
    masked.load_state_dict(full.state_dict())
    GroupFisherPruner(masked, torch.zeros(1, 3, SIZE[1], SIZE[0])).apply_subnet(subnet)
    return masked.eval(), full.eval()


def test_prune_checkpoints_build_the_masked_network(finished, tmp_path):
    cfg, result = finished
    work = Path(cfg.work_dir)
    subnet = json.loads((work / "fix_subnet.json").read_text())
    last = work / "last.pth"
    meta = torch.load(last, weights_only=True)["meta"]
    assert meta["subnet"] == subnet and meta["run_id"] == result.run_id
    masked, unmasked = _masked_reference(last, subnet)
    x = torch.randn(2, 3, SIZE[1], SIZE[0], generator=torch.Generator().manual_seed(0))
    model, _ = load_model_from_checkpoint(last)  # what test, info, predict and deploy build
    with torch.no_grad():
        want, got, full = masked(x), model(x), unmasked(x)
    assert max((a - b).abs().max().item() for a, b in zip(want, got, strict=True)) < 1e-5
    assert max((a - b).abs().max().item() for a, b in zip(want, full, strict=True)) > 1e-3  # masks matter
    onnx_path = tmp_path / "last.onnx"
    assert main(["deploy", str(work / "config.yaml"), str(last), "--out", str(onnx_path)]) == 0
    assert json.loads(onnx_path.with_suffix(".json").read_text())["subnet"] == subnet
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    outputs = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    assert max(float(np.abs(a - b.numpy()).max()) for a, b in zip(outputs, want, strict=True)) < 1e-4


def test_manifest_names_exactly_this_runs_result(finished, tmp_path):
    cfg, result = finished
    work = Path(cfg.work_dir)
    manifest = json.loads((work / "prune_result.json").read_text())
    assert manifest["checkpoint"] == result.checkpoint.name and manifest["run_id"] == result.run_id
    assert manifest["sha256"] == hashlib.sha256(result.checkpoint.read_bytes()).hexdigest()
    assert json.loads((work / manifest["fix_subnet"]).read_text()) == result.subnet
    assert torch.load(result.checkpoint, weights_only=True)["meta"]["subnet"] == result.subnet
    log = [json.loads(line) for line in (work / "prune_log.jsonl").read_text().splitlines()]
    assert log and {r["run_id"] for r in log} == {result.run_id}  # the log is this run's
    # A stale result of another run beside this one: the work dir still names this run's.
    copy = tmp_path / "copy"
    shutil.copytree(work, copy)
    stale = copy / "flops_0.50.pth"
    shutil.copy(copy / result.checkpoint.name, stale)
    assert resolve_pruned_path(copy) == copy / result.checkpoint.name
    assert resolve_pruned_path(copy / "prune_result.json") == copy / result.checkpoint.name
    listed = rf"matches 2 files \(flops_0\.50\.pth, {re.escape(result.checkpoint.name)}\)"
    with pytest.raises(RtmpruneError, match=listed):
        resolve_pruned_path(str(copy / "flops_*.pth"))
    save_checkpoint(copy / result.checkpoint.name, build_model("rtmpose-t", input_size=SIZE).state_dict())
    with pytest.raises(RtmpruneError, match=r"SHA-256 differs"):
        resolve_pruned_path(copy)
    with pytest.raises(RtmpruneError, match=r"no prune_result\.json, the prune there has not finished"):
        resolve_pruned_path(tmp_path)


def test_a_second_prune_in_the_same_work_dir_is_refused(finished):
    cfg, _ = finished
    before = _tree_bytes(Path(cfg.work_dir))
    refused = r"holds another prune's outputs \(.*prune_result\.json.*--resume"
    with pytest.raises(RtmpruneError, match=refused):
        prune(_prune_config(Path(cfg.data_root), Path(cfg.work_dir), "prune.target_flop_ratio=0.9"))
    assert _tree_bytes(Path(cfg.work_dir)) == before


# ---------------------------------------------------------------------------------- class 4: resume


def test_resume_of_a_finished_prune_changes_nothing(finished, tmp_path, capsys):
    cfg, result = finished
    work = tmp_path / "copy"
    shutil.copytree(cfg.work_dir, work)
    before = _tree_bytes(work)
    again = prune(_prune_config(Path(cfg.data_root), work), resume=True)
    assert _tree_bytes(work) == before
    assert again.checkpoint == work / result.checkpoint.name and again.subnet == result.subnet
    assert (again.run_id, again.flop_ratio, again.fit.iteration) == (result.run_id, result.flop_ratio,
                                                                     result.fit.iteration)
    assert "nothing to resume, nothing written" in capsys.readouterr().err


def test_resume_after_a_kill_before_the_final_files(finished, tmp_path):
    """Killed after the last ``last.pth`` but before the checkpoint, subnet and manifest were written."""
    cfg, result = finished
    work = tmp_path / "copy"
    shutil.copytree(cfg.work_dir, work)
    for name in ("prune_result.json", "fix_subnet.json", result.checkpoint.name):
        (work / name).unlink()
    kept = {n: b for n, b in _tree_bytes(work).items() if n != "config.yaml"}
    again = prune(_prune_config(Path(cfg.data_root), work), resume=True)
    assert {n: b for n, b in _tree_bytes(work).items() if n in kept} == kept  # no training step, no log line
    want = torch.load(result.checkpoint, weights_only=True)
    got = torch.load(again.checkpoint, weights_only=True)
    assert again.checkpoint.name == result.checkpoint.name and got["meta"] == want["meta"]
    assert all(torch.equal(got["state_dict"][k], v) for k, v in want["state_dict"].items())
    manifest = json.loads((work / "prune_result.json").read_text())
    assert manifest["run_id"] == result.run_id and manifest["iteration"] == result.fit.iteration


# ---------------------------------------------------------------------------------- class 6: latency profile


@pytest.mark.parametrize(
    "change, key",
    [
        ({"threads": 4}, "threads"),
        ({"input_shape": [1, 3, 96, 64]}, "input_shape"),
        ({"model": build_model("rtmpose-t", num_keypoints=26, input_size=SIZE)}, "structure"),
        ({"model": build_model("rtmpose-s", input_size=SIZE)}, "arch"),
    ],
)
def test_a_latency_profile_of_another_run_is_refused(tmp_path, change, key):
    model = build_model("rtmpose-t", input_size=SIZE)
    shape, times = [1, 3, SIZE[1], SIZE[0]], {"backbone.stem.0.conv": 12.5}
    profile = {**profile_identity(model, shape, 2), "module_times_us": times}
    (tmp_path / PROFILE).write_text(json.dumps(profile))
    assert module_times_for(tmp_path, model, shape, 2) == times  # the same run: read, never re-measured
    other = {"model": model, "input_shape": shape, "threads": 2, **change}
    with pytest.raises(RtmpruneError, match=rf"{PROFILE} was measured for {key} .*delete it to re-measure"):
        module_times_for(tmp_path, other["model"], other["input_shape"], other["threads"])


def test_a_latency_profile_that_records_nothing_is_refused(tmp_path):
    model = build_model("rtmpose-t", input_size=SIZE)
    (tmp_path / PROFILE).write_text(json.dumps({"input_shape": [1, 3, 64, 64], "threads": 2,
                                                "module_times_us": {"backbone.stem.0.conv": 1.0}}))
    with pytest.raises(RtmpruneError, match=r"measured for arch None"):
        module_times_for(tmp_path, model, [1, 3, 64, 64], 2)
