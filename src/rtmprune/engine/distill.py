"""Distillation finetune: the pruned student learns from a teacher (by default the network it was cut from).

DWPose's recipe (MMPose ``DWPoseDistiller``) in plain PyTorch, plugged into ``fit`` through ``TrainHooks``:

* the teacher (any RTMPose size, from ``finetune.distill.teacher``, else the prune's ``pretrained_path``) is
  loaded on every rank, kept in eval mode with ``requires_grad`` off and run under ``no_grad`` inside the
  student's autocast context (the same AMP); it is never part of the student's checkpoints: ``meta.distill``
  records its path and sha256, ``--resume`` loads it again from the config and refuses a changed file;
* the loss is ``gt_weight · labels + logit_weight · KD(SimCC) + feature_weight · MSE(P(f_s), f_t)``
  (`engine.distill_loss`); ``gt_weight: 0`` is the label-free mode (DWPose's second stage, where ours trains
  the whole student, not only its head: a pruned backbone cannot feed the teacher's head);
* the student's last-stage features come from a forward hook on ``model.backbone`` (the model's forward
  stays single and unchanged); the 1x1 projection P (only when the channel counts differ, as DWPose) is
  training-only: optimised as ``TrainHooks.trainable``, its gradients averaged across ranks after backward,
  saved under the checkpoint's ``extra``, never in ``state_dict``, so export and deploy never see it.

DWPose also fades both distillation terms linearly to 0 over stage 1; this module keeps them constant.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch
from torch import nn

from rtmprune.engine import dist
from rtmprune.engine.config import Config, DistillConfig
from rtmprune.engine.distill_loss import SIMCC_BETA, feature_mse, simcc_kd_loss
from rtmprune.engine.loss import KLDiscretLoss
from rtmprune.engine.model_loading import load_model_from_checkpoint
from rtmprune.engine.prune_result import sha256_of
from rtmprune.engine.train import TrainHooks
from rtmprune.errors import RtmpruneError

__all__ = [
    "distill_enabled",
    "resolve_teacher_path",
    "load_teacher",
    "build_projection",
    "Distiller",
    "build_distiller",
]

_KEY = "finetune.distill.teacher"


def distill_enabled(settings: DistillConfig) -> bool:
    """Distillation is on when a teacher term has weight (``gt_weight`` alone only rescales the labels)."""
    return settings.logit_weight > 0 or settings.feature_weight > 0


def resolve_teacher_path(cfg: Config, pruned_meta: dict[str, Any] | None = None) -> Path:
    """``finetune.distill.teacher``, else the pruned file's ``meta.pretrained_path``, else the config's
    ``prune.pretrained_path`` (the finetune configs inherit the prune's: the model the prune started from)."""
    candidates = (
        cfg.finetune.distill.teacher,
        (pruned_meta or {}).get("pretrained_path"),
        cfg.prune.pretrained_path,
    )
    path = next((p for p in candidates if p), None)
    if path is None:
        raise RtmpruneError(
            f"{_KEY} is not set and neither is prune.pretrained_path: name the teacher checkpoint"
        )
    return Path(path)  # a missing file or a URL is reported by load_teacher, as every checkpoint read is


def load_teacher(cfg: Config, path: Path, student: nn.Module) -> nn.Module:
    """The teacher model, frozen in eval mode; its keypoints and input size must be the student's."""
    arch = cfg.finetune.distill.teacher_arch
    teacher_cfg = (
        cfg if arch is None else dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, name=arch))
    )
    try:
        teacher, meta = load_model_from_checkpoint(path, cfg=teacher_cfg)
    except RtmpruneError as err:
        raise RtmpruneError(f"{_KEY}: {err}") from None
    if arch is not None and meta.get("arch") not in (None, arch):
        raise RtmpruneError(
            f"{_KEY}: {path} is a {meta['arch']} (meta.arch), finetune.distill.teacher_arch says {arch}"
        )
    mismatches = {
        "keypoints": (teacher.num_keypoints, student.num_keypoints),
        "input size (w, h)": (tuple(teacher.input_size), tuple(student.input_size)),
    }
    for what, (theirs, ours) in mismatches.items():
        if theirs != ours:
            raise RtmpruneError(
                f"{_KEY}: {path} has {what} {theirs}, the student {ours}: a teacher must see "
                "the same input and predict the same keypoints"
            )
    for param in teacher.parameters():
        param.requires_grad_(False)
    return teacher.eval()


def build_projection(student_channels: int, teacher_channels: int, seed: int) -> nn.Conv2d | None:
    """DWPose's 1x1 ``align`` conv, or None when the channel counts agree. Seeded: equal on every rank."""
    if student_channels == teacher_channels:
        return None
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return nn.Conv2d(student_channels, teacher_channels, kernel_size=1)


def _last_stage_channels(model: nn.Module) -> int:
    return int(model.head.final_layer.in_channels)  # the head reads the backbone's last stage


class Distiller:
    """The teacher, the projection and the combined loss; ``install(hooks)`` plugs them into ``fit``.

    Args:
        student: the model ``fit`` trains (unwrapped; a forward hook on ``student.backbone`` keeps its last
            stage when ``feature_weight > 0``).
        teacher: a frozen model in eval mode on the student's device (`load_teacher`).
        settings: ``finetune.distill``.
        projection: the 1x1 conv from the student's last-stage channels to the teacher's, or None.
        record: what ``meta.distill`` of every checkpoint says (teacher path, sha256, arch, weights).
    """

    def __init__(
        self,
        student: nn.Module,
        teacher: nn.Module,
        settings: DistillConfig,
        projection: nn.Module | None = None,
        record: dict[str, Any] | None = None,
    ) -> None:
        self.teacher, self.settings, self.projection = teacher, settings, projection
        self.record = dict(record or {})
        self.label_loss = KLDiscretLoss(beta=SIMCC_BETA, label_softmax=True, use_target_weight=True)
        self.terms: dict[str, torch.Tensor] = {}
        self._feature: torch.Tensor | None = None
        if settings.feature_weight > 0:
            student.backbone.register_forward_hook(self._keep_feature)

    def _keep_feature(self, module: nn.Module, args: Any, output: tuple[torch.Tensor, ...]) -> None:
        if module.training:  # validation forwards leave the training feature alone
            self._feature = output[-1]  # [N, C_student, h, w]

    def loss(
        self, inputs: torch.Tensor, pred: tuple[torch.Tensor, torch.Tensor], batch: dict[str, Any]
    ) -> torch.Tensor:
        """``TrainHooks.loss``: the weighted sum of the active terms (their values stay in ``self.terms``)."""
        s, device = self.settings, inputs.device
        with torch.no_grad():
            teacher_feats = self.teacher.backbone(inputs)
            teacher_pred = self.teacher.head(teacher_feats)
        terms = {
            "loss_gt": (
                s.gt_weight,
                lambda: self.label_loss(
                    pred,
                    (batch["target_x"].to(device), batch["target_y"].to(device)),
                    batch["keypoint_weights"].to(device),
                ),
            ),
            "loss_logit": (s.logit_weight, lambda: simcc_kd_loss(pred, teacher_pred, s.temperature)),
            "loss_feature": (s.feature_weight, lambda: feature_mse(self._projected(), teacher_feats[-1])),
        }
        values = {name: weight * term() for name, (weight, term) in terms.items() if weight > 0}
        self.terms = {name: value.detach() for name, value in values.items()}
        return torch.stack(list(values.values())).sum()

    def _projected(self) -> torch.Tensor:
        if self._feature is None:
            raise RuntimeError("no student feature: the backbone hook did not run in training mode")
        feature, self._feature = self._feature, None  # one use per forward: no stale feature, no kept graph
        return feature if self.projection is None else self.projection(feature)

    def average_projection_grads(self, iteration: int, grad_scale: float) -> None:
        """``TrainHooks.after_backward``: DDP averages the model's gradients, this the projection's."""
        if self.projection is None or dist.get_world_size() == 1:
            return
        for param in self.projection.parameters():
            if param.grad is not None:
                param.grad.copy_(dist.all_reduce_sum(param.grad) / dist.get_world_size())

    def state_dict(self) -> dict[str, Any]:
        """``TrainHooks.extra_state``: the projection (training-only) and the teacher's hash."""
        projection = None if self.projection is None else self.projection.state_dict()
        return {"distill": {"teacher_sha256": self.record.get("teacher_sha256"), "projection": projection}}

    def load_state_dict(self, extra: dict[str, Any]) -> None:
        """``TrainHooks.load_extra_state`` on ``--resume``: the same teacher file, the projection restored."""
        state = extra.get("distill")
        if state is None:
            raise RtmpruneError(
                "--resume: last.pth was written without distillation; resume with the run's own "
                "finetune.distill settings or start a new work_dir"
            )
        if state["teacher_sha256"] != self.record.get("teacher_sha256"):
            raise RtmpruneError(
                f"--resume: {_KEY} {self.record.get('teacher')} is not the file this run started "
                f"with (sha256 {state['teacher_sha256']})"
            )
        if (state["projection"] is None) != (self.projection is None):
            raise RtmpruneError("--resume: finetune.distill.feature_weight was changed since the run started")
        if self.projection is not None:
            self.projection.load_state_dict(state["projection"])

    def log_terms(self) -> dict[str, float]:
        """``TrainHooks.log_extra``: this rank's weighted terms of the last iteration."""
        return {name: float(value) for name, value in self.terms.items()}

    def install(self, hooks: TrainHooks) -> TrainHooks:
        """Fill ``hooks``' loss, trainable, after_backward and state fields; ``meta.distill`` = the record."""
        fields = {
            "loss": self.loss,
            "trainable": self.projection,
            "after_backward": self.average_projection_grads,
            "extra_state": self.state_dict,
            "load_extra_state": self.load_state_dict,
            "log_extra": self.log_terms,
        }
        taken = [name for name in fields if getattr(hooks, name) is not None]
        if taken:
            raise ValueError(f"distillation needs TrainHooks.{taken[0]}, which is already set")
        for name, value in fields.items():
            setattr(hooks, name, value)
        hooks.meta = {**hooks.meta, "distill": self.record}
        return hooks


def build_distiller(
    cfg: Config,
    student: nn.Module,
    pruned_meta: dict[str, Any] | None = None,
    device: torch.device | str = "cpu",
) -> Distiller | None:
    """The distiller ``cfg.finetune.distill`` asks for (teacher on ``device``); None when it is off."""
    settings = cfg.finetune.distill
    if not distill_enabled(settings):
        return None
    path = resolve_teacher_path(cfg, pruned_meta)
    teacher = load_teacher(cfg, path, student).to(device)
    projection = None
    if settings.feature_weight > 0:
        projection = build_projection(
            _last_stage_channels(student), _last_stage_channels(teacher), cfg.train.seed
        )
    weights = {k: v for k, v in dataclasses.asdict(settings).items() if k not in ("teacher", "teacher_arch")}
    record = {
        "teacher": str(path),
        "teacher_sha256": sha256_of(path),
        "teacher_arch": teacher.arch,
        **weights,
    }
    return Distiller(student, teacher, settings, projection, record)
