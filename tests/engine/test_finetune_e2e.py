"""The four steps end to end on a tiny synthetic set, through the CLI: prune → finetune → test → deploy,
then predict (torch == ONNX Runtime) and report (table + both plots)."""

from __future__ import annotations

import json

import pytest
import torch

from rtmprune.cli import main
from rtmprune.engine.finetune_recipe import resolve_pruned_path
from rtmprune.errors import RtmpruneError
from shared_paths import ROOT

CONFIG = str(ROOT / "configs" / "synthetic" / "rtmpose-t_synthetic-128x96.yaml")


def _common(data_root, work_dir):
    return [
        "--set",
        f"work_dir={work_dir}",
        f"data_root={data_root}",
        "data.batch_size=4",
        "data.val_batch_size=4",
        "data.num_workers=0",
        "train.ema=false",
        "train.device=cpu",
        "train.warmup_iters=2",
        "train.log_interval=1",
        "prune.input_shape=[1,3,128,96]",
    ]


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    out = tmp_path_factory.mktemp("synthetic")
    assert main(["synth", "--out", str(out), "--num-train", "8", "--num-val", "2", "--seed", "0"]) == 0
    return out


def test_prune_finetune_test_deploy_predict_report(data_root, tmp_path, capsys):
    prune_dir, ft_dir = tmp_path / "prune", tmp_path / "finetune"
    # 1. prune: 8 channels at a time (divisor-aware) until 93 % of the FLOPs remain
    prune_set = ["train.max_epochs=40", "train.val_interval=1000", "prune.interval=1", "prune.divisor=8"]
    prune_set += ["prune.target_flop_ratio=0.93", "prune.normalization_type=act"]
    assert main(["prune", CONFIG, *_common(data_root, prune_dir), *prune_set]) == 0
    pruned = resolve_pruned_path(prune_dir)  # the prune's manifest names its checkpoint
    subnet = json.loads((prune_dir / "fix_subnet.json").read_text())
    assert any(len(u["kept"]) < u["channels"] for u in subnet["units"].values())
    assert all(len(u["kept"]) % 8 == 0 or len(u["kept"]) == u["channels"] for u in subnet["units"].values())

    # 2. finetune: the slim model, one epoch with validation; checkpoints carry the structure
    ft_set = [f"finetune.pruned_path={prune_dir}", "train.max_epochs=1", "train.val_interval=1"]
    assert main(["finetune", CONFIG, *_common(data_root, ft_dir), *ft_set]) == 0
    best = ft_dir / "best.pth"
    ckpt = torch.load(best, weights_only=True)
    assert ckpt["meta"]["subnet"] == subnet and ckpt["meta"]["pruned_from"] == str(pruned)
    assert json.loads((ft_dir / "fix_subnet.json").read_text()) == subnet
    full_width = ckpt["state_dict"]["backbone.stage4.0.conv.weight"].shape[0]  # slim shapes on disk
    assert full_width == len(subnet["units"]["backbone.stage4.0.conv_(0, 384)_384"]["kept"])

    # 3. test the pruned checkpoint directly (structure from meta.subnet); it lands in results.json
    capsys.readouterr()
    assert main(["test", CONFIG, str(best), "--json", *_common(data_root, ft_dir)]) == 0
    metrics = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    results = json.loads((ft_dir / "results.json").read_text())["models"]
    assert results["rtmpose-t pruned (best)"]["metrics"]["AP"] == metrics["AP"]

    # 4. deploy with padding to 16: ONNX checked against torch inside the command, metadata beside it
    onnx_path = tmp_path / "pruned.onnx"
    args = ["deploy", CONFIG, str(best), "--divisor", "16", "--out", str(onnx_path)]
    assert main([*args, *_common(data_root, ft_dir)]) == 0
    info = json.loads(onnx_path.with_suffix(".json").read_text())
    assert info["divisor"] == 16 and info["max_abs_diff_vs_torch"] <= 1e-4 and info["subnet"] == subnet
    assert info["input_shape"] == [1, 3, 128, 96] and info["params"] > 0 and info["flops"] > 0

    # 5. predict: ONNX Runtime and torch give the same keypoints
    image = sorted((data_root / "images" / "val").iterdir())[0]
    outputs = []
    for runtime in (["--checkpoint", str(best)], ["--onnx", str(onnx_path)]):
        capsys.readouterr()
        assert main(["predict", *runtime, "--image", str(image), "--bboxes", "10,10,80,100", "--json"]) == 0
        outputs.append(json.loads(capsys.readouterr().out.strip().splitlines()[-1])["people"][0])
    torch_out, ort_out = outputs
    assert torch.allclose(torch.tensor(torch_out["keypoints"]), torch.tensor(ort_out["keypoints"]), atol=0.02)
    assert torch.allclose(torch.tensor(torch_out["scores"]), torch.tensor(ort_out["scores"]), atol=2e-4)

    # 6. report: the table of both runs and the two plots
    capsys.readouterr()
    assert main(["report", str(prune_dir), "--with", str(ft_dir), "--divisor", "16", "--target", "0.93"]) == 0
    table = (prune_dir / "report.md").read_text()
    assert "| rtmpose-t pruned (best) |" in table and "| Model | AP | AP50 | AP75 | AR | AR50 |" in table
    for png in ("flops_ratio.png", "unit_widths.png"):
        assert (prune_dir / png).read_bytes()[:4] == b"\x89PNG"


def test_pruned_path_resolution(tmp_path):
    for name in ("flops_0.60.pth", "flops_0.51.pth", "flops_0.55.pth"):
        (tmp_path / name).write_bytes(b"")
    # several results (another run's may be stale): an error listing them, never a silent pick
    listed = r"matches 3 files \(flops_0\.51\.pth, flops_0\.55\.pth, flops_0\.60\.pth\)"
    with pytest.raises(RtmpruneError, match=listed):
        resolve_pruned_path(str(tmp_path / "flops_*.pth"))
    assert resolve_pruned_path(str(tmp_path / "flops_0.6*.pth")).name == "flops_0.60.pth"
    assert resolve_pruned_path(tmp_path / "flops_0.60.pth").name == "flops_0.60.pth"
    with pytest.raises(RtmpruneError, match="no prune_result.json, the prune there has not finished"):
        resolve_pruned_path(tmp_path)
    with pytest.raises(RtmpruneError, match="no file matches"):
        resolve_pruned_path(str(tmp_path / "nothing_*.pth"))
    with pytest.raises(RtmpruneError, match="not set"):
        resolve_pruned_path(None)
