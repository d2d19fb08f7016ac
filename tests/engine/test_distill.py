"""Distillation finetune: KD losses against closed forms, a frozen teacher, masking, resume, two processes."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import subprocess
import sys
import textwrap

import pytest
import torch
import yaml

from rtmprune.data.loader import build_dataset
from rtmprune.data.transforms import build_pipeline
from rtmprune.engine.checkpoint import load_state
from rtmprune.engine.config import DistillConfig, config_from_dict, config_to_dict
from rtmprune.engine.distill import Distiller, build_distiller, load_teacher
from rtmprune.engine.distill_loss import feature_mse, simcc_kd_loss
from rtmprune.engine.finetune_recipe import finetune
from rtmprune.engine.model_loading import analyze_rtmpose, load_model_from_checkpoint
from rtmprune.engine.prune_result import sha256_of
from rtmprune.errors import RtmpruneError
from rtmprune.models import build_model, save_checkpoint
from rtmprune.pruning.subnet import export_subnet

SIZE = (64, 64)  # (w, h): the tiny configs' input


def _save_teacher(path, name="rtmpose-t", size=SIZE, keypoints=17, seed=0):
    torch.manual_seed(seed)
    model = build_model(name, num_keypoints=keypoints, input_size=size)
    meta = {"arch": name, "num_keypoints": keypoints, "input_size": list(size)}
    save_checkpoint(path, model.state_dict(), meta)
    return path


@pytest.fixture(scope="module")
def pruned(tmp_path_factory):
    """A teacher file and the prune step's file cut from it (about 60 % of the channels kept everywhere)."""
    out = tmp_path_factory.mktemp("distill")
    teacher = _save_teacher(out / "teacher.pth")
    full, _ = load_model_from_checkpoint(teacher)
    analysis = analyze_rtmpose(full)
    active = torch.rand(analysis.num_channels, generator=torch.Generator().manual_seed(1)) < 0.6
    meta = {
        "arch": "rtmpose-t",
        "num_keypoints": 17,
        "input_size": list(SIZE),
        "subnet": export_subnet(analysis.units, active),
    }
    save_checkpoint(out / "flops_0.60.pth", full.state_dict(), meta)
    return out


def _config(tiny_config, tiny_set, pruned, work_dir, settings, **train):
    cfg = tiny_config(tiny_set, work_dir, **train)
    cfg.prune.pretrained_path = str(pruned / "teacher.pth")  # the default teacher: what the prune cut
    cfg.finetune.pruned_path = str(pruned / "flops_0.60.pth")
    cfg.finetune.distill = settings
    return cfg


def _logits(*shape, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=gen)


# ------------------------------------------------------------------------------------------------ losses


def test_kd_loss_is_zero_when_student_equals_teacher():
    pred = (_logits(3, 17, 128), _logits(3, 17, 128, seed=1))
    for temperature in (0.5, 1.0, 4.0):
        assert simcc_kd_loss(pred, pred, temperature).abs().item() < 1e-6
    other = (_logits(3, 17, 128, seed=2), pred[1])
    assert simcc_kd_loss(other, pred).item() > 1e-3


def test_kd_loss_temperature_matches_the_closed_form():
    """Two bins, student uniform, teacher logits (a, 0): q = sigmoid(10 a / T) and per row
    KL = q log 2q + (1-q) log 2(1-q); mean over the 2 bins, summed over N x K rows, / K, two axes, x T²."""
    n, k, a = 3, 5, 0.3
    student = (torch.zeros(n, k, 2), torch.zeros(n, k, 2))
    row = torch.tensor([a, 0.0]).expand(n, k, 2)
    teacher = (row, row)
    for temperature in (0.5, 1.0, 2.0, 8.0):
        q = 1.0 / (1.0 + math.exp(-10.0 * a / temperature))
        kl = q * math.log(2 * q) + (1 - q) * math.log(2 * (1 - q))
        want = temperature**2 * 2 * (n * k * kl / 2) / k
        assert simcc_kd_loss(student, teacher, temperature).item() == pytest.approx(want, rel=1e-5)


def test_feature_mse_is_the_sum_over_the_batch_size():
    s, t = _logits(2, 4, 3, 3), _logits(2, 4, 3, 3, seed=1)
    assert feature_mse(s, t).item() == pytest.approx(((s - t) ** 2).sum().item() / 2, rel=1e-6)
    with pytest.raises(ValueError, match="shapes differ"):
        feature_mse(s, t[:, :3])


# --------------------------------------------------------------------------------------- teacher, masking


def _distiller(pruned, settings):
    """(student in training mode, frozen teacher, config) from the module's files."""
    student, _ = load_model_from_checkpoint(pruned / "flops_0.60.pth")
    cfg = config_from_dict({"model": {"name": "rtmpose-t", "input_size": list(SIZE)}})
    cfg.finetune.distill = settings
    return student.train(), load_teacher(cfg, pruned / "teacher.pth", student), cfg


def _batch(n=2, seed=0):
    gen = torch.Generator().manual_seed(seed)
    weights = torch.ones(n, 17)
    weights[:, :5] = 0.0  # keypoints 0-4 invisible
    return {
        "inputs": torch.randn(n, 3, SIZE[1], SIZE[0], generator=gen),
        "target_x": torch.rand(n, 17, 2 * SIZE[0], generator=gen),
        "target_y": torch.rand(n, 17, 2 * SIZE[1], generator=gen),
        "keypoint_weights": weights,
    }


def test_invisible_keypoints_are_masked_in_the_label_term_only(pruned):
    student, teacher, _ = _distiller(pruned, DistillConfig())
    batch = _batch()
    for weights, invisible_grad in (
        ({"gt_weight": 1.0, "logit_weight": 0.0}, False),
        ({"gt_weight": 0.0, "logit_weight": 1.0}, True),
    ):
        distiller = Distiller(student, teacher, DistillConfig(**weights))
        pred = tuple(p.detach().requires_grad_(True) for p in student(batch["inputs"]))
        distiller.loss(batch["inputs"], pred, batch).backward()
        for axis in pred:
            assert axis.grad[:, 5:].abs().sum() > 0  # visible keypoints learn from both terms
            assert (axis.grad[:, :5].abs().sum() > 0) == invisible_grad


def test_no_gradient_reaches_the_teacher(pruned):
    settings = DistillConfig(logit_weight=1.0, feature_weight=1e-3, gt_weight=0.5)
    student, teacher, _ = _distiller(pruned, settings)
    s_ch, t_ch = student.head.final_layer.in_channels, teacher.head.final_layer.in_channels
    assert s_ch < t_ch  # the cut student needs the projection
    projection = torch.nn.Conv2d(s_ch, t_ch, 1)
    distiller = Distiller(student, teacher, settings, projection)
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    batch = _batch()
    loss = distiller.loss(batch["inputs"], student(batch["inputs"]), batch)
    loss.backward()
    assert set(distiller.terms) == {"loss_gt", "loss_logit", "loss_feature"}
    assert loss.item() == pytest.approx(sum(v.item() for v in distiller.terms.values()), rel=1e-6)
    assert not teacher.training and all(p.grad is None and not p.requires_grad for p in teacher.parameters())
    assert projection.weight.grad is not None and student.backbone.stem[0].conv.weight.grad is not None
    assert all(torch.equal(before[k], v) for k, v in teacher.state_dict().items())


@pytest.mark.parametrize(
    ("kind", "saved"), [("keypoints", {"keypoints": 5}), ("input size", {"size": (64, 96)})]
)
def test_a_teacher_of_other_keypoints_or_input_size_is_a_one_line_error(pruned, tmp_path, kind, saved):
    student, _, cfg = _distiller(pruned, DistillConfig())
    other = _save_teacher(tmp_path / "other.pth", **saved)
    with pytest.raises(RtmpruneError, match=f"finetune.distill.teacher: .*{kind}") as err:
        load_teacher(cfg, other, student)
    assert "\n" not in str(err.value)


def test_teacher_arch_that_contradicts_the_file_is_refused(pruned):
    student, _, cfg = _distiller(pruned, DistillConfig())
    cfg.finetune.distill = DistillConfig(teacher_arch="rtmpose-s")
    with pytest.raises(RtmpruneError, match="rtmpose-t .*teacher_arch says rtmpose-s"):
        load_teacher(cfg, pruned / "teacher.pth", student)


# ----------------------------------------------------------------------------------- recipe and resume


def test_off_by_default_and_label_free_needs_a_teacher_term(tiny_set, tiny_config, pruned, tmp_path):
    cfg = _config(tiny_config, tiny_set, pruned, tmp_path, DistillConfig())
    student, _ = load_model_from_checkpoint(pruned / "flops_0.60.pth")
    assert build_distiller(cfg, student) is None
    with pytest.raises(RtmpruneError, match="finetune.distill.gt_weight' is 0"):
        config_from_dict({"finetune": {"distill": {"gt_weight": 0}}})


def test_resume_with_a_teacher_is_bitwise_identical(tiny_set, tiny_config, pruned, tmp_path):
    settings = DistillConfig(logit_weight=1.0, feature_weight=1e-4, temperature=2.0)
    finetune(_config(tiny_config, tiny_set, pruned, tmp_path / "full", settings))
    finetune(_config(tiny_config, tiny_set, pruned, tmp_path / "cut", settings, max_iters=3))
    finetune(_config(tiny_config, tiny_set, pruned, tmp_path / "cut", settings), resume=True)
    a, b = load_state(tmp_path / "full" / "last.pth"), load_state(tmp_path / "cut" / "last.pth")
    assert a["iteration"] == b["iteration"] > 3  # the cut run resumed to the end
    for key in ("state_dict", "ema_state_dict"):
        assert all(torch.equal(a[key][k], b[key][k]) for k in a[key]), key
    proj_a, proj_b = a["extra"]["distill"]["projection"], b["extra"]["distill"]["projection"]
    assert all(torch.equal(proj_a[k], proj_b[k]) for k in proj_a)
    # the teacher is recorded, never saved: the weights are exactly the slim student's
    teacher = pruned / "teacher.pth"
    assert a["meta"]["distill"]["teacher"] == str(teacher)
    assert a["meta"]["distill"]["teacher_sha256"] == sha256_of(teacher)
    student, _ = load_model_from_checkpoint(pruned / "flops_0.60.pth")
    assert {k: tuple(v.shape) for k, v in a["state_dict"].items()} == {
        k: tuple(v.shape) for k, v in student.state_dict().items()
    }
    # a changed teacher file is refused on resume
    changed = dataclasses.replace(settings, teacher=str(_save_teacher(tmp_path / "t2.pth", seed=9)))
    with pytest.raises(RtmpruneError, match="not the file this run started with"):
        finetune(_config(tiny_config, tiny_set, pruned, tmp_path / "cut", changed, max_iters=7), resume=True)


# ------------------------------------------------------------------------------------- two processes

WORKER = textwrap.dedent(
    """
    import copy, sys, torch
    from rtmprune.data.loader import build_dataset, collate
    from rtmprune.data.transforms import build_pipeline
    from rtmprune.engine import dist
    from rtmprune.engine.config import config_to_dict, load_config
    from rtmprune.engine.distill import Distiller, build_distiller
    from rtmprune.engine.model_loading import load_model_from_checkpoint
    from rtmprune.engine.train import EpochSampler, TrainHooks, fit

    cfg = load_config(sys.argv[1])
    info = dist.setup("cpu")
    student, meta = load_model_from_checkpoint(cfg.finetune.pruned_path, cfg=cfg)
    reference = copy.deepcopy(student).train()
    distiller = build_distiller(cfg, student, meta)
    # this rank's first batch (plain crops: no augmentation) and its loss in one plain process
    pipeline = build_pipeline("val", tuple(cfg.model.input_size), tuple(cfg.model.sigma), with_targets=True)
    data = build_dataset(config_to_dict(cfg)["data"]["train"], cfg.data_root, pipeline=pipeline)
    sampler = EpochSampler(len(data), cfg.data.batch_size, cfg.train.seed, info.rank, info.world_size)
    batch = collate([data[i] for i in list(sampler)[: cfg.data.batch_size]])
    ref = Distiller(reference, distiller.teacher, cfg.finetune.distill, copy.deepcopy(distiller.projection))
    expected = ref.loss(batch["inputs"], reference(batch["inputs"]), batch).item()

    hooks, local = TrainHooks(validate=False), []
    distiller.install(hooks)
    inner = hooks.loss
    def recording(inputs, pred, batch):
        loss = inner(inputs, pred, batch)
        local.append(loss.item())
        return loss
    hooks.loss = recording
    fit(student.train(), cfg, hooks)
    gathered = [None] * info.world_size
    torch.distributed.all_gather_object(gathered, local)
    torch.save({"expected": expected, "local": local, "gathered": gathered, "world": info.world_size,
                "projection": distiller.projection.state_dict(),
                "params": {k: v.detach().clone() for k, v in student.named_parameters()}},
               f"{sys.argv[2]}/rank{info.rank}.pt")
    dist.cleanup()
    """
)


@pytest.mark.dist
def test_two_processes_distil_like_one(tiny_set, tiny_config, pruned, tmp_path):
    """Under torchrun each rank's loss is the one-process loss of its batch, the logged loss is their
    mean, and the student and the projection stay identical on both ranks (the projection's gradients are
    averaged by the distiller, DDP averages the model's)."""
    settings = DistillConfig(logit_weight=1.0, feature_weight=1e-4)
    cfg = _config(
        tiny_config, tiny_set, pruned, tmp_path / "run", settings, max_iters=2, ema=False, augment=False
    )
    config = tmp_path / "cfg.yaml"
    config.write_text(yaml.safe_dump(config_to_dict(cfg)))
    (tmp_path / "worker.py").write_text(WORKER)
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "worker.py",
        str(config),
        str(tmp_path),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    assert r0["world"] == r1["world"] == 2 and r0["gathered"] == r1["gathered"]
    for r in (r0, r1):
        assert r["local"][0] == pytest.approx(r["expected"], rel=1e-5)
    assert r0["local"][0] != r1["local"][0]  # two different batches
    first = json.loads((tmp_path / "run" / "log.jsonl").read_text().splitlines()[0])
    assert first["loss"] == pytest.approx((r0["local"][0] + r1["local"][0]) / 2, rel=1e-6)
    for key in r0["projection"]:
        assert torch.equal(r0["projection"][key], r1["projection"][key]), key
    for key in r0["params"]:
        assert torch.equal(r0["params"][key], r1["params"][key]), key


def test_keep_unlabeled_keeps_persons_without_keypoints_for_the_label_free_mode(tiny_set, tmp_path):
    """COCO persons with num_keypoints 0 are dropped (MMPose) unless keep_unlabeled: then every keypoint of
    theirs has weight 0, so only a teacher term can teach from them."""
    coco = json.loads((tiny_set / "annotations" / "train.json").read_text())
    image = coco["images"][0]
    unlabeled = {
        "id": 10**6,
        "image_id": image["id"],
        "category_id": 1,
        "iscrowd": 0,
        "num_keypoints": 0,
        "bbox": [4.0, 4.0, 40.0, 60.0],
        "area": 2400.0,
        "keypoints": [0] * 51,
    }
    coco["annotations"].append(unlabeled)
    (tmp_path / "train.json").write_text(json.dumps(coco))
    spec = {
        "type": "coco",
        "ann_file": str(tmp_path / "train.json"),
        "img_dir": str(tiny_set / "images/train"),
    }
    pipeline = build_pipeline("val", SIZE, (2.5, 2.5), with_targets=True)
    plain = build_dataset(spec, pipeline=pipeline)
    kept = build_dataset({**spec, "keep_unlabeled": True}, pipeline=pipeline)
    assert len(kept) == len(plain) + 1
    ids = [inst["id"] for inst in kept.instances]
    sample = kept[ids.index(unlabeled["id"])]
    assert sample["keypoint_weights"].sum() == 0 and sample["inputs"].shape == (3, SIZE[1], SIZE[0])
    with pytest.raises(RtmpruneError, match="keep_unlabeled is only supported for type coco"):
        build_dataset({**spec, "type": "aic", "keep_unlabeled": True})
